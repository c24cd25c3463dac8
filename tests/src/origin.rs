//! A real HTTP origin for tests: a hyper server whose answers the test
//! scripts, and which counts the requests it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// What the origin answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// Wait before answering.
    pub delay: Duration,
    /// Send this many body bytes, then wait this long before the rest.
    pub pause: Option<(usize, Duration)>,
}

impl Reply {
    /// 200 with `body` and the given headers.
    pub fn ok(body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Self {
        Self {
            status: StatusCode::OK,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            delay: Duration::ZERO,
            pause: None,
        }
    }

    /// A reply with another status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self
    }

    /// Answers after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends the first `bytes` of the body, then waits `pause` before the rest.
    pub fn paused_after(mut self, bytes: usize, pause: Duration) -> Self {
        self.pause = Some((bytes, pause));
        self
    }
}

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// The body of `reply`, paused part way if it says so.
fn body_of(reply: &Reply) -> BoxBody<Bytes, Infallible> {
    let Some((split, pause)) = reply.pause else {
        return Full::new(reply.body.clone()).boxed();
    };
    let split = split.min(reply.body.len());
    let (first, rest) = (reply.body.slice(..split), reply.body.slice(split..));
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(2);
    tokio::spawn(async move {
        let _ = sender.send(first).await;
        tokio::time::sleep(pause).await;
        let _ = sender.send(rest).await;
    });
    let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), receiver))
    });
    StreamBody::new(frames).boxed()
}

/// A running origin; stops when dropped.
pub struct Origin {
    address: SocketAddr,
    count: Arc<AtomicUsize>,
    seen: Arc<parking_lot::Mutex<Vec<Seen>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Origin {
    /// Serves `handler` on a fresh loopback port (call inside a Tokio runtime).
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address"), handler).await
    }

    /// Serves `handler` on `address`.
    pub async fn start_on(
        address: SocketAddr,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind origin");
        let address = listener.local_addr().expect("origin address");
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let (stop, mut stopped) = oneshot::channel();
        let (task_count, task_seen) = (count.clone(), seen.clone());
        tokio::spawn(async move {
            // Connections live here so that stopping also cuts kept-alive ones.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => {
                        connections.abort_all();
                        return;
                    }
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(_) => continue,
                    },
                };
                while connections.try_join_next().is_some() {}
                let (handler, count, seen) =
                    (handler.clone(), task_count.clone(), task_seen.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (handler, count, seen) = (handler.clone(), count.clone(), seen.clone());
                        async move {
                            count.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let request = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let reply = handler(&request);
                            seen.lock().push(request);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut response = Response::new(body_of(&reply));
                            *response.status_mut() = reply.status;
                            for (name, value) in reply.headers {
                                if let (Ok(name), Ok(value)) = (
                                    HeaderName::from_bytes(name.as_bytes()),
                                    HeaderValue::from_str(&value),
                                ) {
                                    response.headers_mut().append(name, value);
                                }
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            count,
            seen,
            stop: Some(stop),
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// Stops listening (connections are refused afterwards).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}
