//! The client-facing listeners: HTTP/1.1 and cleartext HTTP/2 on each
//! `server.listen` address, HTTPS ([`crate::tls`]) on each `tls.listen`
//! address, every connection held in a [`connections::ConnectionTable`]
//! (bounds per client and in all, idle and header deadlines, longest-idle
//! closed first), and a graceful stop. Behind a TCP load balancer, a PROXY
//! protocol header ([`proxy_protocol`]) names the client. Connections write
//! through [`io::ClientStream`], which sends large cached bodies with
//! `sendfile`.

pub mod connections;
mod exchange;
mod io;
mod proxy_protocol;
mod tracked_body;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::connections::{Admitted, CloseReason, ConnectionTable, Limits, REAP_INTERVAL};
use self::io::ClientStream;
use self::tracked_body::TrackedBody;
use crate::config::ServerConfig;
use crate::metrics::EdgeMetrics;
use crate::proxy::Edge;
use crate::tls::{Accepted, TlsSession, TlsTermination};

/// Time a connection told to close (idle, evicted) gets to finish its
/// graceful close (an HTTP/2 GOAWAY) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long connections keep serving as usual once a stop begins, before
/// they are closed when idle; see [`serve_http`].
const DRAIN_LINGER: Duration = Duration::from_millis(500);

/// Streams one HTTP/2 connection may have in flight.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Interval of HTTP/2 keep-alive PINGs on a connection with streams in
/// flight; a peer that does not answer within [`H2_PING_TIMEOUT`] is gone.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Running listeners.
#[derive(Debug)]
pub struct HttpServer {
    addresses: Vec<SocketAddr>,
    connections: Arc<ConnectionTable>,
    tasks: tokio::task::JoinSet<()>,
}

/// What every accept loop shares.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    edge: Edge,
    table: Arc<ConnectionTable>,
    metrics: Arc<EdgeMetrics>,
    shutdown: CancellationToken,
    /// With the PROXY protocol: the balancers that may send headers, and
    /// the connections still sending theirs (bounded like the table).
    proxy_protocol: Option<ProxyProtocol>,
    header_timeout: Duration,
    recorder: exchange::Recorder,
}

struct ProxyProtocol {
    from: Vec<ipnet::IpNet>,
    reading: Arc<tokio::sync::Semaphore>,
}

impl HttpServer {
    /// Binds every address and serves `edge` until `shutdown`: plain HTTP
    /// on `server.listen`, HTTPS on `tls_listen` with `tls`.
    pub async fn start(
        config: &ServerConfig,
        tls: Option<(&[SocketAddr], Arc<TlsTermination>)>,
        edge: Edge,
        metrics: Arc<EdgeMetrics>,
        access_log: Option<crate::access_log::AccessLog>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let table = ConnectionTable::new(Limits::from(config));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout.as_std())
            .max_buf_size(
                usize::try_from(config.max_header_size.bytes())
                    .unwrap_or(usize::MAX)
                    .max(8192),
            );
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .max_header_list_size(u32::try_from(config.max_header_size.bytes()).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams(20)
            .max_local_error_reset_streams(64)
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT);
        let proxy_protocol = config.proxy_protocol.then(|| ProxyProtocol {
            from: config.proxy_protocol_from.clone(),
            reading: Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1))),
        });
        let shared = Arc::new(Shared {
            builder,
            edge,
            table: table.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            proxy_protocol,
            header_timeout: config.header_timeout.as_std(),
            recorder: exchange::Recorder::new(metrics.clone(), access_log),
        });
        let mut tasks = tokio::task::JoinSet::new();
        let mut addresses = Vec::new();
        let plain = config.listen.iter().map(|&address| (address, None));
        let secure = tls.into_iter().flat_map(|(listen, termination)| {
            listen
                .iter()
                .map(move |&address| (address, Some(termination.clone())))
        });
        for (address, tls) in plain.chain(secure) {
            let key = if tls.is_some() {
                "tls.listen"
            } else {
                "server.listen"
            };
            let listener = shared::handover::bind_tokio(address)
                .map_err(|error| anyhow::anyhow!("{key}: cannot listen on {address}: {error}"))?;
            let bound = listener.local_addr()?;
            tracing::info!(
                address = %bound,
                protocol = if tls.is_some() { "HTTPS" } else { "HTTP" },
                "serving"
            );
            addresses.push(bound);
            tasks.spawn(accept(
                listener,
                shared.clone(),
                tls,
                config.shutdown_timeout.as_std(),
            ));
        }
        tasks.spawn(reap(shared.clone()));
        Ok(Self {
            addresses,
            connections: table,
            tasks,
        })
    }

    /// The bound addresses: `server.listen`'s, then `tls.listen`'s.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The open connections (for health and metrics).
    pub fn connections(&self) -> &Arc<ConnectionTable> {
        &self.connections
    }

    /// Waits until every listener has stopped and drained.
    pub async fn stopped(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

impl From<&ServerConfig> for Limits {
    fn from(config: &ServerConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            max_per_client: config.max_connections_per_client,
            header_timeout: config.header_timeout.as_std(),
            idle_timeout: config.idle_timeout.as_std(),
            send_timeout: config.send_timeout.as_std(),
            max_abandoned_requests: config.max_abandoned_requests,
        }
    }
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<Arc<TlsTermination>>,
    drain_timeout: Duration,
) {
    let tracker = TaskTracker::new();
    let mut closed = Vec::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of descriptors, usually: back off rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Some(proxy_protocol) = &shared.proxy_protocol {
            let balancer = peer.ip().to_canonical();
            let trusted = proxy_protocol
                .from
                .iter()
                .any(|network| network.contains(&balancer));
            match proxy_protocol.reading.clone().try_acquire_owned() {
                Ok(permit) if trusted => {
                    tracker.spawn(serve_proxied(
                        stream,
                        peer,
                        permit,
                        shared.clone(),
                        tls.clone(),
                    ));
                }
                _ => {
                    shared.metrics.connection_closed(CloseReason::ProxyHeader);
                    tracing::debug!(%peer, "connection without a trusted PROXY header closed");
                }
            }
            continue;
        }
        if let Some(admitted) = admit(&shared, peer, &mut closed) {
            tracker.spawn(serve(
                stream,
                peer,
                admitted,
                shared.clone(),
                Bytes::new(),
                tls.clone(),
            ));
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

/// A slot in the table for `client`, or `None` (counted) when refused.
fn admit(shared: &Shared, client: SocketAddr, closed: &mut Vec<CloseReason>) -> Option<Admitted> {
    let admitted = shared.table.admit(client.ip(), closed);
    for reason in closed.drain(..) {
        shared.metrics.connection_closed(reason);
    }
    match admitted {
        Ok(admitted) => Some(admitted),
        Err(reason) => {
            shared.metrics.connection_closed(reason);
            tracing::debug!(%client, reason = reason.as_str(), "connection refused");
            None
        }
    }
}

/// Reads the PROXY header (within `header_timeout`), then serves the
/// connection as the client it names.
async fn serve_proxied(
    mut stream: TcpStream,
    balancer: SocketAddr,
    reading: tokio::sync::OwnedSemaphorePermit,
    shared: Arc<Shared>,
    tls: Option<Arc<TlsTermination>>,
) {
    let header =
        tokio::time::timeout(shared.header_timeout, proxy_protocol::read(&mut stream)).await;
    drop(reading);
    let header = match header {
        Ok(Ok(header)) => header,
        Ok(Err(error)) => {
            shared.metrics.connection_closed(CloseReason::ProxyHeader);
            tracing::debug!(%balancer, %error, "bad PROXY header");
            return;
        }
        Err(_) => {
            shared.metrics.connection_closed(CloseReason::ProxyHeader);
            tracing::debug!(%balancer, "no PROXY header in time");
            return;
        }
    };
    let client = header.client.unwrap_or(balancer);
    if let Some(admitted) = admit(&shared, client, &mut Vec::new()) {
        serve(stream, client, admitted, shared, header.rest, tls).await;
    }
}

/// Serves one connection until it ends, is told to close, or the server
/// stops; `read_ahead` holds bytes already read off it. With `tls`, the
/// handshake comes first, within the header deadline.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    shared: Arc<Shared>,
    read_ahead: Bytes,
    tls: Option<Arc<TlsTermination>>,
) {
    let _ = stream.set_nodelay(true);
    let connection = admitted.connection().clone();
    let stream = ClientStream::new(stream, connection.clone(), read_ahead);
    match tls {
        None => serve_http(stream, peer, &connection, &shared, None).await,
        Some(tls) => {
            // The table's reaper enforces the header deadline from accept;
            // the timeout here is the same bound, whichever fires first.
            let handshake = tokio::select! {
                result = tokio::time::timeout(shared.header_timeout, tls.accept(stream.under_tls())) => result,
                _ = connection.closing() => {
                    if connection.close_reason() == Some(CloseReason::HeaderTimeout) {
                        tls.handshake_timed_out();
                    }
                    return;
                }
                _ = shared.shutdown.cancelled() => return,
            };
            match handshake {
                Ok(Ok(Accepted::Client(stream, session))) => {
                    serve_http(stream, peer, &connection, &shared, Some(Arc::new(session))).await;
                }
                Ok(Ok(Accepted::ChallengeAnswered)) => {
                    tracing::debug!(%peer, "answered an ACME tls-alpn-01 validation");
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => {
                    tls.handshake_timed_out();
                    tracing::debug!(%peer, "no TLS handshake within server.header_timeout");
                }
            }
        }
    }
    if let Some(reason) = connection.close_reason()
        && reason == CloseReason::Abandoned
    {
        shared.metrics.connection_closed(reason);
        tracing::info!(%peer, "closed a connection that abandoned too many requests");
    }
    drop(admitted);
}

/// Serves HTTP on an established connection (cleartext, or decrypted by
/// TLS: then each request carries the connection's [`TlsSession`]).
async fn serve_http<IO>(
    io: IO,
    peer: SocketAddr,
    connection: &Arc<connections::Connection>,
    shared: &Shared,
    session: Option<Arc<TlsSession>>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let edge = shared.edge.clone();
    let on_connection = connection.clone();
    let recorder = shared.recorder.clone();
    let service = hyper::service::service_fn(move |mut request| {
        let edge = edge.clone();
        let mut in_flight = on_connection.request_started();
        if let Some(session) = &session {
            request.extensions_mut().insert(session.clone());
        }
        let arrival = recorder.arrived(&mut request, peer.ip());
        let recorder = recorder.clone();
        async move {
            let response = edge.handle(request, peer.ip()).await;
            // A request dropped before here was abandoned by its client.
            in_flight.complete();
            let exchange = recorder.answered(arrival, &response);
            Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight, exchange)))
        }
    });
    let served = shared.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        _ = connection.closing() => {
            served.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, served.as_mut()).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
        _ = shared.shutdown.cancelled() => {
            // A request may be on the wire, or in the socket buffer not yet
            // read (a client that connected just before the listener was
            // handed over): HTTP/1 closes an idle connection at once, which
            // would drop it. Serve on for a moment first.
            match tokio::time::timeout(DRAIN_LINGER, served.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    served.as_mut().graceful_shutdown();
                    served.await
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Closes overdue connections every [`REAP_INTERVAL`].
async fn reap(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(REAP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        for reason in shared.table.reap() {
            shared.metrics.connection_closed(reason);
        }
    }
}
