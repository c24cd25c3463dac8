//! A real HTTP `/healthz` endpoint whose answers a test controls.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use shared::EdgeStatus;
use shared::health::{CacheFill, HealthReport, Load, Utilisation};
use tokio::sync::oneshot;

/// What the endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with `status: up`.
    Up,
    /// 200 with `status: draining`.
    Draining,
    /// 503 with `status: down`.
    Down,
    /// Accepts the request and never answers.
    Hang,
    /// 500 without a document.
    Error,
    /// 200 with `status: up` and utilisation 1.0 (every slot in use).
    Saturated,
}

impl Mode {
    fn encode(self) -> u8 {
        self as u8
    }

    fn decode(value: u8) -> Self {
        match value {
            0 => Self::Up,
            1 => Self::Draining,
            2 => Self::Down,
            3 => Self::Hang,
            4 => Self::Error,
            _ => Self::Saturated,
        }
    }
}

/// A running endpoint; stopped when dropped.
#[derive(Debug)]
pub struct HealthEndpoint {
    address: SocketAddr,
    mode: Arc<AtomicU8>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl HealthEndpoint {
    /// Serves on `address` (port 0 picks one).
    pub fn start(address: SocketAddr) -> Self {
        let mut endpoint = Self {
            address,
            mode: Arc::new(AtomicU8::new(Mode::Up.encode())),
            running: None,
        };
        endpoint.restart();
        endpoint
    }

    /// The URL geodns should check.
    pub fn url(&self) -> String {
        format!("http://{}/healthz", self.address)
    }

    /// Changes what it answers.
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode.encode(), Ordering::SeqCst);
    }

    /// Closes the listener: checks now get "connection refused".
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }

    /// Starts listening again on the same address.
    pub fn restart(&mut self) {
        self.stop();
        let std_listener = bind_reusable(self.address).expect("bind health endpoint");
        self.address = std_listener.local_addr().expect("local address");
        let (stop_tx, stop_rx) = oneshot::channel();
        let mode = self.mode.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(std_listener, mode, stop_rx));
        });
        self.running = Some((stop_tx, thread));
    }
}

impl Drop for HealthEndpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind_reusable(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    // SO_REUSEADDR lets a restarted endpoint take its port back at once.
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(64)?;
    Ok(socket.into())
}

async fn serve(
    listener: std::net::TcpListener,
    mode: Arc<AtomicU8>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        let mode = mode.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |_request| {
                let mode = Mode::decode(mode.load(Ordering::SeqCst));
                async move { Ok::<_, Infallible>(answer(mode).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    connections.shutdown().await;
}

async fn answer(mode: Mode) -> Response<Full<Bytes>> {
    let report = |status: EdgeStatus| HealthReport {
        status,
        load: Load::default(),
        cache: CacheFill::default(),
        version: "test".into(),
    };
    let (code, body) = match mode {
        Mode::Up => (StatusCode::OK, report(EdgeStatus::Up).to_json()),
        Mode::Draining => (StatusCode::OK, report(EdgeStatus::Draining).to_json()),
        Mode::Down => (
            StatusCode::SERVICE_UNAVAILABLE,
            report(EdgeStatus::Down).to_json(),
        ),
        Mode::Hang => {
            std::future::pending::<()>().await;
            (StatusCode::OK, Vec::new())
        }
        Mode::Error => (StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
        Mode::Saturated => {
            let mut saturated = report(EdgeStatus::Up);
            saturated.load = Load {
                in_flight: 10,
                utilisation: Utilisation::saturating(1.0),
                connections: 10_000,
                connection_limit: 10_000,
            };
            (StatusCode::OK, saturated.to_json())
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
}
