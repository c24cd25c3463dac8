//! The upstream side: a pooled HTTP client, failover across origins,
//! timeouts; and for cache fills, the peers of the fill ring and a parent
//! edge tried before the origins.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use hyper::header::{HeaderName, HeaderValue};

use crate::config::{FillConfig, OriginConfig};

/// Set on a fill request to a peer: the peer fetches from its parent or the
/// origin itself instead of asking its own peers (no ping-pong when two
/// edges' views of the ring differ). Its value names the asking edge.
pub const FILL_FROM_PEER: HeaderName = HeaderName::from_static("x-geocdn-fill");

/// Request bodies sent to the origin.
pub type OriginBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Why the origin gave no response.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// No origin accepted a connection.
    #[error("origin unreachable: {0}")]
    Unreachable(String),
    /// The response head did not come in time.
    #[error("origin did not answer within {0:?}")]
    Timeout(Duration),
    /// The exchange failed after it started.
    #[error("origin failed: {0}")]
    Failed(String),
}

/// Who answered a fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// An edge of the region that owns the key.
    Peer,
    /// The parent edge (shield).
    Parent,
    /// An origin.
    Origin,
}

/// Where a request's response came from, noted by the proxy for the
/// access log (written once the response has been sent). Only requests
/// being logged carry one, in their extensions.
#[derive(Debug, Default)]
pub struct UpstreamNote(std::sync::OnceLock<Upstream>);

impl UpstreamNote {
    /// Notes `upstream` (the first note stands).
    pub fn note(&self, upstream: Upstream) {
        let _ = self.0.set(upstream);
    }

    /// What was noted.
    pub fn get(&self) -> Option<Upstream> {
        self.0.get().copied()
    }

    /// Notes `upstream` on the request of `parts`, if it carries a note.
    pub fn note_on(parts: &hyper::http::request::Parts, upstream: Upstream) {
        if let Some(note) = parts.extensions.get::<std::sync::Arc<Self>>() {
            note.note(upstream);
        }
    }
}

impl Upstream {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Parent => "parent",
            Self::Origin => "origin",
        }
    }
}

/// The configured origins and parent.
#[derive(Debug, Clone)]
pub struct Origin {
    client: Client<HttpsConnector<HttpConnector>, OriginBody>,
    bases: Vec<Uri>,
    parent: Option<Uri>,
    /// Marks requests to peers so that they fetch themselves, not ask
    /// their own peers: this edge's name.
    fill_marker: HeaderValue,
    peer_timeout: Duration,
    host: Option<String>,
    first_byte_timeout: Duration,
    /// Bound on the whole exchange, body included.
    pub total_timeout: Duration,
}

impl Origin {
    /// Builds the client; fails on URLs that are not `http://host[:port]`.
    /// `[fill]` names the parent asked before the origins on a fill and
    /// bounds the wait for peers; `node` names this edge to its peers.
    pub fn new(config: &OriginConfig, fill: &FillConfig, node: &str) -> anyhow::Result<Self> {
        if config.urls.is_empty() {
            anyhow::bail!("origin.urls: give at least one origin URL");
        }
        let mut bases = Vec::new();
        for (index, url) in config.urls.iter().enumerate() {
            let uri =
                base_url(url).map_err(|error| anyhow::anyhow!("origin.urls[{index}]: {error}"))?;
            bases.push(uri);
        }
        let parent = fill
            .parent
            .as_deref()
            .map(|url| base_url(url).map_err(|error| anyhow::anyhow!("fill.parent: {error}")))
            .transpose()?;
        let fill_marker = HeaderValue::from_str(node)
            .map_err(|_| anyhow::anyhow!("server.name: \"{node}\" is not a valid header value"))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout.as_std()));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = https_connector(config, &bases, connector)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self {
            client,
            bases,
            parent,
            fill_marker,
            peer_timeout: fill
                .peer_timeout
                .as_std()
                .min(config.first_byte_timeout.as_std()),
            host: config.host.clone(),
            first_byte_timeout: config.first_byte_timeout.as_std(),
            total_timeout: config.total_timeout.as_std(),
        })
    }

    /// The upstream client (plain and TLS connections, verified as for the
    /// origins), for checking peers over the same connections' settings.
    pub fn client(&self) -> &Client<HttpsConnector<HttpConnector>, OriginBody> {
        &self.client
    }

    /// Sends a request whose body can be rebuilt (`body` is called per
    /// attempt) to the origins, trying the next when one refuses or times out.
    pub async fn send(
        &self,
        parts: &hyper::http::request::Parts,
        body: impl FnMut() -> Option<OriginBody>,
    ) -> Result<Response<Incoming>, OriginError> {
        let route = self.bases.iter().map(|base| (base, Upstream::Origin));
        self.send_along(route, parts, body)
            .await
            .map(|(response, _)| response)
    }

    /// A cache fill: the ring `peers` first (the key's owner, then the
    /// next), then the parent, then the origins; the first that accepts
    /// the connection and answers in time is used.
    pub async fn fill(
        &self,
        peers: &[Uri],
        parts: &hyper::http::request::Parts,
        body: impl FnMut() -> Option<OriginBody>,
    ) -> Result<(Response<Incoming>, Upstream), OriginError> {
        let route = peers
            .iter()
            .map(|peer| (peer, Upstream::Peer))
            .chain(self.parent.iter().map(|parent| (parent, Upstream::Parent)))
            .chain(self.bases.iter().map(|base| (base, Upstream::Origin)));
        self.send_along(route, parts, body).await
    }

    async fn send_along<'a>(
        &self,
        route: impl Iterator<Item = (&'a Uri, Upstream)>,
        parts: &hyper::http::request::Parts,
        mut body: impl FnMut() -> Option<OriginBody>,
    ) -> Result<(Response<Incoming>, Upstream), OriginError> {
        let mut last_error = OriginError::Unreachable("no origin tried".into());
        for (base, upstream) in route {
            let Some(attempt_body) = body() else { break };
            let request = match self.request_for(base, upstream, parts, attempt_body) {
                Ok(request) => request,
                Err(error) => return Err(OriginError::Failed(error)),
            };
            let upstream_name = upstream.as_str();
            let limit = match upstream {
                Upstream::Peer => self.peer_timeout,
                Upstream::Parent | Upstream::Origin => self.first_byte_timeout,
            };
            match tokio::time::timeout(limit, self.client.request(request)).await {
                Ok(Ok(response)) => return Ok((response, upstream)),
                // The whole chain: a TLS failure says why (expired,
                // unknown issuer, name mismatch) only in its sources.
                Ok(Err(error)) if error.is_connect() => {
                    let error = shared::report::describe(&error);
                    tracing::warn!(upstream = upstream_name, %base, %error, "refused; trying the next");
                    last_error = OriginError::Unreachable(error);
                }
                Ok(Err(error)) => {
                    return Err(OriginError::Failed(shared::report::describe(&error)));
                }
                Err(_) => {
                    tracing::warn!(upstream = upstream_name, %base, "timed out; trying the next");
                    last_error = OriginError::Timeout(limit);
                }
            }
        }
        Err(last_error)
    }

    fn request_for(
        &self,
        base: &Uri,
        upstream: Upstream,
        parts: &hyper::http::request::Parts,
        body: OriginBody,
    ) -> Result<Request<OriginBody>, String> {
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = Uri::builder()
            .scheme(base.scheme_str().unwrap_or("http"))
            .authority(base.authority().map_or("", |authority| authority.as_str()))
            .path_and_query(path)
            .build()
            .map_err(|error| error.to_string())?;
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(uri)
            .body(body)
            .map_err(|error| error.to_string())?;
        *request.headers_mut() = parts.headers.clone();
        match upstream {
            // Peers and parents key their caches on the client's Host.
            Upstream::Peer => {
                request
                    .headers_mut()
                    .insert(FILL_FROM_PEER, self.fill_marker.clone());
            }
            Upstream::Parent => {}
            Upstream::Origin => {
                if let Some(host) = &self.host
                    && let Ok(value) = host.parse()
                {
                    request.headers_mut().insert(hyper::header::HOST, value);
                }
            }
        }
        Ok(request)
    }
}

fn base_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("invalid URL \"{url}\": {error}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(format!(
            "\"{url}\" must be an http:// or https:// URL with a host"
        ));
    }
    Ok(uri)
}

/// The connector for upstream connections: plain for `http://`, rustls for
/// `https://` ([`crate::tls::origin_client`]). `origin.server_name`
/// replaces the URL's host as the TLS name of the origins (not of peers or
/// the parent, which are named by their own URLs).
fn https_connector(
    config: &OriginConfig,
    origins: &[Uri],
    connector: HttpConnector,
) -> anyhow::Result<HttpsConnector<HttpConnector>> {
    let tls = crate::tls::origin_client::client_config(config)?;
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|_| {
            anyhow::anyhow!("origin.server_name: \"{name}\" is not a host name or address")
        })?;
        let origins: Vec<String> = origins
            .iter()
            .filter_map(|origin| origin.host().map(str::to_string))
            .collect();
        builder = builder.with_server_name_resolver(move |uri: &Uri| {
            let host = uri.host().unwrap_or_default();
            if origins.iter().any(|origin| origin == host) {
                return Ok(name.clone());
            }
            let host = host.trim_start_matches('[').trim_end_matches(']');
            rustls::pki_types::ServerName::try_from(host.to_string())
        });
    }
    Ok(builder.enable_http1().wrap_connector(connector))
}

/// Parses a peer's base URL (`[[fill.peers]]` or an announced `fill_url`).
pub fn peer_url(url: &str) -> Result<Uri, String> {
    base_url(url)
}
