//! The origin side: a pooled HTTP client, failover across origins, timeouts.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::OriginConfig;

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

/// The configured origins.
#[derive(Debug, Clone)]
pub struct Origin {
    client: Client<HttpConnector, OriginBody>,
    bases: Vec<Uri>,
    host: Option<String>,
    first_byte_timeout: Duration,
    /// Bound on the whole exchange, body included.
    pub total_timeout: Duration,
}

impl Origin {
    /// Builds the client; fails on URLs that are not `http://host[:port]`.
    pub fn new(config: &OriginConfig) -> anyhow::Result<Self> {
        if config.urls.is_empty() {
            anyhow::bail!("origin.urls: give at least one origin URL");
        }
        let mut bases = Vec::new();
        for (index, url) in config.urls.iter().enumerate() {
            let uri: Uri = url.parse().map_err(|error| {
                anyhow::anyhow!("origin.urls[{index}]: invalid URL \"{url}\": {error}")
            })?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                anyhow::bail!("origin.urls[{index}]: \"{url}\" must be an http:// URL with a host");
            }
            bases.push(uri);
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout.as_std()));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self {
            client,
            bases,
            host: config.host.clone(),
            first_byte_timeout: config.first_byte_timeout.as_std(),
            total_timeout: config.total_timeout.as_std(),
        })
    }

    /// Sends a request whose body can be rebuilt (`body` is called per
    /// attempt), trying the next origin when one refuses or times out.
    pub async fn send(
        &self,
        parts: &hyper::http::request::Parts,
        mut body: impl FnMut() -> Option<OriginBody>,
    ) -> Result<Response<Incoming>, OriginError> {
        let mut last_error = OriginError::Unreachable("no origin tried".into());
        for base in &self.bases {
            let Some(attempt_body) = body() else { break };
            let request = match self.request_for(base, parts, attempt_body) {
                Ok(request) => request,
                Err(error) => return Err(OriginError::Failed(error)),
            };
            match tokio::time::timeout(self.first_byte_timeout, self.client.request(request)).await
            {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(error)) if error.is_connect() => {
                    tracing::warn!(origin = %base, %error, "origin refused; trying the next");
                    last_error = OriginError::Unreachable(error.to_string());
                }
                Ok(Err(error)) => return Err(OriginError::Failed(error.to_string())),
                Err(_) => {
                    tracing::warn!(origin = %base, "origin timed out; trying the next");
                    last_error = OriginError::Timeout(self.first_byte_timeout);
                }
            }
        }
        Err(last_error)
    }

    fn request_for(
        &self,
        base: &Uri,
        parts: &hyper::http::request::Parts,
        body: OriginBody,
    ) -> Result<Request<OriginBody>, String> {
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = Uri::builder()
            .scheme("http")
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
        if let Some(host) = &self.host
            && let Ok(value) = host.parse()
        {
            request.headers_mut().insert(hyper::header::HOST, value);
        }
        Ok(request)
    }
}
