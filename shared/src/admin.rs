//! The small HTTP server both binaries mount their admin routes on
//! (`/metrics`, `/healthz`, `/status`...).
//!
//! Secure by default: it binds to loopback unless configured otherwise, routes
//! that change state answer only to `Authorization: Bearer <token>` and are
//! refused outright when no token is configured, and connections, header time
//! and body size are bounded so a stuck client cannot pin resources.

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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
}

fn default_max_connections() -> usize {
    64
}

impl AdminConfig {
    /// The address to bind: the configured one, or `127.0.0.1:default_port`.
    pub fn listen_or(&self, default_port: u16) -> SocketAddr {
        self.listen.unwrap_or(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            default_port,
        ))
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

#[derive(Clone)]
struct Route {
    method: Method,
    needs_token: bool,
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

    /// A read-only route answering GET (and HEAD).
    pub fn get<F, Fut>(self, path: &str, handler: F) -> Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResponse> + Send + 'static,
    {
        self.route(Method::GET, false, path, handler)
    }

    /// A state-changing route answering POST, only with the bearer token.
    pub fn post<F, Fut>(self, path: &str, handler: F) -> Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResponse> + Send + 'static,
    {
        self.route(Method::POST, true, path, handler)
    }

    /// Serves `registry` at `/metrics`.
    pub fn metrics(self, registry: Arc<Registry>) -> Self {
        self.get("/metrics", move |_| {
            let body = metrics::encode(&registry);
            async move { respond(StatusCode::OK, metrics::CONTENT_TYPE, body) }
        })
    }

    fn route<F, Fut>(mut self, method: Method, needs_token: bool, path: &str, handler: F) -> Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResponse> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |request| Box::pin(handler(request)));
        self.routes.insert(
            path.to_string(),
            Route {
                method,
                needs_token,
                handler,
            },
        );
        self
    }
}

/// A running admin server.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Binds `addr` and serves `router` until `shutdown` is cancelled.
    pub async fn start(
        addr: SocketAddr,
        config: &AdminConfig,
        router: AdminRouter,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        if !local_addr.ip().is_loopback() && config.token.is_none() {
            tracing::warn!(
                %local_addr,
                "admin server listens beyond loopback without a token: read-only routes are open"
            );
        }
        let state = Arc::new(ServerState {
            routes: router.routes,
            token: config.token.clone(),
        });
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let task = tokio::spawn(accept_loop(listener, state, slots, shutdown));
        tracing::info!(%local_addr, "admin server listening");
        Ok(Self { local_addr, task })
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
    token: Option<String>,
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ServerState>,
    slots: Arc<Semaphore>,
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
        move |stream, _| {
            let state = state.clone();
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(dispatch(&state, request).await) }
            });
            builder.serve_connection(TokioIo::new(stream), service)
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
    if route.needs_token
        && let Some(refusal) = check_token(state.token.as_deref(), request.headers())
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
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => None,
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

/// Compares secrets without leaking through timing where the first byte differs.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
