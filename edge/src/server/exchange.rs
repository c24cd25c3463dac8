//! What one request/response exchange did, recorded when its response body
//! has been sent or dropped: the client-facing metrics (responses by status
//! class and cache status, duration to the last byte, body bytes) and, when
//! configured and sampled, the access log line.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper::header::{self, HeaderMap};
use hyper::{Request, Response, Version};

use crate::access_log::{AccessLog, Entry};
use crate::metrics::EdgeMetrics;
use crate::proxy::UpstreamNote;

/// Where exchanges are recorded.
#[derive(Debug, Clone)]
pub struct Recorder {
    metrics: Arc<EdgeMetrics>,
    access_log: Option<AccessLog>,
}

/// An exchange in progress.
#[derive(Debug)]
pub struct Exchange {
    recorder: Recorder,
    started: Instant,
    first_byte: Duration,
    status: u16,
    cache: &'static str,
    /// Only for requests being logged.
    logged: Option<Box<Logged>>,
}

/// What the access log needs beyond the metrics.
#[derive(Debug)]
struct Logged {
    at: SystemTime,
    client: IpAddr,
    method: String,
    target: String,
    protocol: &'static str,
    host: String,
    referer: String,
    user_agent: String,
    upstream: Arc<UpstreamNote>,
}

/// Before the proxy sees the request: what to log of it, if anything.
#[derive(Debug)]
pub struct Arrival {
    started: Instant,
    logged: Option<Box<Logged>>,
}

impl Recorder {
    /// Records to `metrics` and, when given, `access_log`.
    pub fn new(metrics: Arc<EdgeMetrics>, access_log: Option<AccessLog>) -> Self {
        Self {
            metrics,
            access_log,
        }
    }

    /// Notes a request's arrival; a logged request gets an
    /// [`UpstreamNote`] in its extensions for the proxy to fill.
    pub fn arrived<B>(&self, request: &mut Request<B>, client: IpAddr) -> Arrival {
        let started = Instant::now();
        let logged = self
            .access_log
            .as_ref()
            .filter(|log| log.sampled())
            .map(|_| {
                let upstream = Arc::new(UpstreamNote::default());
                request.extensions_mut().insert(upstream.clone());
                let headers = request.headers();
                let host = request
                    .uri()
                    .authority()
                    .map(|authority| authority.as_str().to_string())
                    .or_else(|| text(headers, header::HOST))
                    .unwrap_or_else(|| "-".into());
                Box::new(Logged {
                    at: SystemTime::now(),
                    client,
                    method: request.method().as_str().to_string(),
                    target: request
                        .uri()
                        .path_and_query()
                        .map_or("/", |target| target.as_str())
                        .to_string(),
                    protocol: protocol(request.version()),
                    host,
                    referer: text(headers, header::REFERER).unwrap_or_else(|| "-".into()),
                    user_agent: text(headers, header::USER_AGENT).unwrap_or_else(|| "-".into()),
                    upstream,
                })
            });
        Arrival { started, logged }
    }

    /// The response head is ready: the exchange goes on with its body.
    pub fn answered<B>(&self, arrival: Arrival, response: &Response<B>) -> Exchange {
        let cache = match response
            .headers()
            .get("x-cache")
            .map(|value| value.as_bytes())
        {
            Some(b"HIT") => "HIT",
            Some(b"MISS") => "MISS",
            Some(b"STALE") => "STALE",
            Some(b"REVALIDATED") => "REVALIDATED",
            Some(b"BYPASS") => "BYPASS",
            _ => "-",
        };
        Exchange {
            recorder: self.clone(),
            started: arrival.started,
            first_byte: arrival.started.elapsed(),
            status: response.status().as_u16(),
            cache,
            logged: arrival.logged,
        }
    }
}

impl Exchange {
    /// The body is done: `bytes` sent, all of it when `completed`.
    pub fn finish(self, bytes: u64, completed: bool) {
        let duration = self.started.elapsed();
        self.recorder
            .metrics
            .responded(self.status, self.cache, duration, bytes);
        let (Some(logged), Some(log)) = (self.logged, &self.recorder.access_log) else {
            return;
        };
        let logged = *logged;
        log.record(Entry {
            at: logged.at,
            client: logged.client,
            method: logged.method,
            target: logged.target,
            protocol: logged.protocol,
            host: logged.host,
            status: self.status,
            bytes,
            cache: self.cache,
            upstream: logged
                .upstream
                .get()
                .map_or("-", crate::proxy::Upstream::as_str),
            duration,
            first_byte: self.first_byte,
            completed,
            referer: logged.referer,
            user_agent: logged.user_agent,
        });
    }
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}
