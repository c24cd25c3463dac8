//! The small HTTP server both binaries mount their admin routes on
//! (`/metrics`, `/healthz`, `/status`...).
//!
//! Secure by default: it binds to loopback unless configured otherwise and
//! refuses to listen beyond loopback without a token; routes that change
//! state answer only to `Authorization: Bearer <token>` and are refused
//! outright when no token is configured; read routes (metrics, status) need
//! the token too when the server listens beyond loopback, except the health
//! probe; an address allowlist refuses every other client;
//! and connections, header time and body size are bounded so a stuck client
//! cannot pin resources. A binary may serve it over TLS ([`AdminTls`]).

mod secure;

pub use secure::{AdminStream, AdminTls, Handshake};

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, Registry};

/// `[admin]` section of either binary's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on; loopback and the binary's default port when unset.
    pub listen: Option<SocketAddr>,
    /// Bearer token that state-changing calls must present. Without one, such
    /// calls are refused.
    pub token: Option<String>,
    /// Concurrent connections accepted before new ones are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Whether read routes (`/metrics`, `/status`...) need the token too;
    /// the health probe never does. Default: when listening beyond loopback.
    #[serde(default)]
    pub token_for_reads: Option<bool>,
    /// Client networks allowed to use the API (e.g. `10.0.0.0/8`); others
    /// get 403 on every route. Empty: any client.
    #[serde(default)]
    pub allow: Vec<ipnet::IpNet>,
}

fn default_max_connections() -> usize {
    64
}

/// What a file without `[admin]` gets: the same as an empty section (a
/// derived default would allow one connection, not 64).
impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            max_connections: default_max_connections(),
            token_for_reads: None,
            allow: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// The address to bind: the configured one, or `127.0.0.1:default_port`.
    pub fn listen_or(&self, default_port: u16) -> SocketAddr {
        self.listen.unwrap_or(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            default_port,
        ))
    }

    /// Checks what the schema cannot: an admin reachable beyond loopback
    /// must have a token (it exposes purge, drain and the server's state).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(listen) = self.listen
            && !listen.ip().is_loopback()
            && self.token.as_deref().is_none_or(str::is_empty)
        {
            return Err(format!(
                "admin.listen: {listen} is reachable beyond loopback; set admin.token (and admin.allow to the networks that may connect)"
            ));
        }
        if self.token.as_deref() == Some("") {
            return Err("admin.token: empty; give a long random secret or remove the key".into());
        }
        Ok(())
    }

    /// Whether read routes need the token when bound to `bound`.
    fn reads_need_token(&self, bound: SocketAddr) -> bool {
        self.token_for_reads.unwrap_or(!bound.ip().is_loopback())
    }

    fn allows(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|network| network.contains(&peer))
    }
}

/// Largest request body an admin route receives.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time in-flight admin requests get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a handler sees of a request: already read, already authorised.
#[derive(Debug)]
pub struct AdminRequest {
    /// GET, POST...
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    /// Raw query string, without the `?`.
    pub query: Option<String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// The whole body (at most 64 KiB).
    pub body: Bytes,
}

impl AdminRequest {
    /// The first value of query parameter `name`, percent-decoding not applied.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }
}

/// The response type admin handlers return.
pub type AdminResponse = Response<Full<Bytes>>;

type BoxFuture = Pin<Box<dyn Future<Output = AdminResponse> + Send>>;
type Handler = Arc<dyn Fn(AdminRequest) -> BoxFuture + Send + Sync>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone who may connect: the health probe load balancers and geodns poll.
    Open,
    /// A read: the token when reads are protected.
    Read,
    /// A change of state: always the token.
    Change,
}

#[derive(Clone)]
struct Route {
    method: Method,
    access: Access,
    handler: Handler,
}

/// The set of admin routes a binary serves.
#[derive(Clone, Default)]
pub struct AdminRouter {
    routes: HashMap<String, Route>,
}

impl AdminRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// A read-only route answering GET (and HEAD); it needs the token when
    /// reads are protected (`admin.token_for_reads`).
    pub fn get<F, Fut>(self, path: &str, handler: F) -> Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResponse> + Send + 'static,
    {
        self.route(Method::GET, Access::Read, path, handler)
    }

    /// A health probe answering GET (and HEAD) to anyone allowed to
    /// connect: it says only whether to send traffic here.
    pub fn probe<F, Fut>(self, path: &str, handler: F) -> Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResponse> + Send + 'static,
    {
        self.route(Method::GET, Access::Open, path, handler)
    }

    /// A state-changing route answering POST, only with the bearer token.
    pub fn post<F, Fut>(self, path: &str, handler: F) -> Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResponse> + Send + 'static,
    {
        self.route(Method::POST, Access::Change, path, handler)
    }

    /// Serves `registry` at `/metrics`, as OpenMetrics or the classic
    /// Prometheus text format by the request's `Accept`.
    pub fn metrics(self, registry: Arc<Registry>) -> Self {
        self.get("/metrics", move |request| {
            let response = metrics_response(&request, &registry);
            async move { response }
        })
    }

    fn route<F, Fut>(mut self, method: Method, access: Access, path: &str, handler: F) -> Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResponse> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |request| Box::pin(handler(request)));
        self.routes.insert(
            path.to_string(),
            Route {
                method,
                access,
                handler,
            },
        );
        self
    }
}

/// A running admin server.
pub struct AdminServer {
    local_addr: SocketAddr,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl AdminServer {
    /// Binds `addr` and serves `router` until `shutdown` is cancelled.
    pub async fn start(
        addr: SocketAddr,
        config: &AdminConfig,
        router: AdminRouter,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        Self::start_with_tls(addr, config, router, None, shutdown).await
    }

    /// Like [`AdminServer::start`], over TLS when `tls` is given.
    pub async fn start_with_tls(
        addr: SocketAddr,
        config: &AdminConfig,
        router: AdminRouter,
        tls: Option<Arc<dyn AdminTls>>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        config
            .validate()
            .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
        let listener = crate::handover::bind_tokio(addr)?;
        let local_addr = listener.local_addr()?;
        let permissions = Permissions::of(config, local_addr)
            .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
        let state = Arc::new(ServerState {
            routes: router.routes,
            permissions: parking_lot::RwLock::new(Arc::new(permissions)),
        });
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let over_tls = tls.is_some();
        let task = tokio::spawn(accept_loop(listener, state.clone(), slots, tls, shutdown));
        tracing::info!(%local_addr, tls = over_tls, "admin server listening");
        Ok(Self {
            local_addr,
            state,
            task,
        })
    }

    /// Applies a reloaded `[admin]`: the token, whether reads need it, and
    /// the allowed networks, for the next request. The address and the
    /// connection limit stay. A section that fails its checks (a token
    /// removed while listening beyond loopback) changes nothing.
    pub fn reconfigure(&self, config: &AdminConfig) -> Result<(), String> {
        config.validate()?;
        let permissions = Permissions::of(config, self.local_addr)?;
        *self.state.permissions.write() = Arc::new(permissions);
        Ok(())
    }

    /// The bound address (useful when the port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has stopped after shutdown.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

struct ServerState {
    routes: HashMap<String, Route>,
    permissions: parking_lot::RwLock<Arc<Permissions>>,
}

impl ServerState {
    fn permissions(&self) -> Arc<Permissions> {
        self.permissions.read().clone()
    }
}

/// Who may do what: replaced whole by [`AdminServer::reconfigure`].
struct Permissions {
    token: Option<String>,
    reads_need_token: bool,
    config: AdminConfig,
}

impl Permissions {
    fn of(config: &AdminConfig, local_addr: SocketAddr) -> Result<Self, String> {
        if !local_addr.ip().is_loopback() && config.token.is_none() {
            return Err(format!(
                "{local_addr} is reachable beyond loopback; set admin.token"
            ));
        }
        Ok(Self {
            token: config.token.clone(),
            reads_need_token: config.reads_need_token(local_addr),
            config: config.clone(),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ServerState>,
    slots: Arc<Semaphore>,
    tls: Option<Arc<dyn AdminTls>>,
    shutdown: CancellationToken,
) {
    let builder = {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        builder
    };
    crate::listener::accept_until_shutdown(
        listener,
        slots,
        shutdown,
        DRAIN_TIMEOUT,
        move |stream, peer| {
            let state = state.clone();
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move {
                    // Per request: a reload may have changed the networks.
                    if !state.permissions().config.allows(peer.ip()) {
                        return Ok::<_, Infallible>(respond(
                            StatusCode::FORBIDDEN,
                            "text/plain",
                            "this address may not use the admin API\n",
                        ));
                    }
                    Ok(dispatch(&state, request).await)
                }
            });
            let io = match &tls {
                Some(tls) => secure::AdminIo::Handshaking(tls.handshake(stream)),
                None => secure::AdminIo::Plain(stream),
            };
            builder.serve_connection(TokioIo::new(io), service)
        },
    )
    .await;
}

async fn dispatch(state: &ServerState, request: Request<Incoming>) -> AdminResponse {
    let path = request.uri().path().to_string();
    let Some(route) = state.routes.get(&path) else {
        return respond(StatusCode::NOT_FOUND, "text/plain", "not found\n");
    };
    let method = request.method().clone();
    let head_of_get = method == Method::HEAD && route.method == Method::GET;
    if method != route.method && !head_of_get {
        let mut response = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
        if let Ok(allow) = HeaderValue::from_str(route.method.as_str()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return response;
    }
    let permissions = state.permissions();
    let needs_token = match route.access {
        Access::Open => false,
        Access::Read => permissions.reads_need_token,
        Access::Change => true,
    };
    if needs_token
        && let Some(refusal) = check_token(permissions.token.as_deref(), request.headers())
    {
        return refusal;
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "request body too large or unreadable\n",
            );
        }
    };
    let admin_request = AdminRequest {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    let mut response = (route.handler)(admin_request).await;
    if head_of_get {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

/// `None` when the request carries the configured token; else the refusal to send.
fn check_token(expected: Option<&str>, headers: &HeaderMap) -> Option<AdminResponse> {
    let Some(expected) = expected else {
        return Some(respond(
            StatusCode::FORBIDDEN,
            "text/plain",
            "state-changing admin calls are disabled: configure admin.token\n",
        ));
    };
    match bearer(headers) {
        Some(token) if secrets_match(token, expected.as_bytes()) => None,
        _ => {
            let mut response = respond(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "missing or wrong bearer token\n",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(response)
        }
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is
/// case-insensitive (RFC 9110 section 11.1).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at(value.iter().position(|&byte| byte == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Compares a presented secret with the expected one in time that depends
/// only on the presented length: neither the position of the first
/// difference nor the expected length leaks.
fn secrets_match(presented: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    if expected.is_empty() {
        return false;
    }
    let mut equal = presented.len().ct_eq(&expected.len());
    for (index, byte) in presented.iter().enumerate() {
        equal &= byte.ct_eq(&expected[index % expected.len()]);
    }
    equal.into()
}

/// `registry` as OpenMetrics or the classic Prometheus text format, by the
/// request's `Accept` (see [`metrics::Exposition::negotiate`]).
pub fn metrics_response(request: &AdminRequest, registry: &Registry) -> AdminResponse {
    let accept = request
        .headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let exposition = metrics::Exposition::negotiate(accept);
    respond(
        StatusCode::OK,
        exposition.content_type(),
        exposition.encode(registry),
    )
}

/// A response with the given status, content type and body.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> AdminResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON response.
pub fn respond_json<T: serde::Serialize>(status: StatusCode, value: &T) -> AdminResponse {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            respond(status, "application/json", body)
        }
        Err(error) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("cannot encode response: {error}\n"),
        ),
    }
}

#[cfg(test)]
mod tests;
