//! TCP (RFC 7766): two-byte length-prefixed messages, several per connection.
//!
//! Each connection holds a place in the [`ConnectionTable`], which bounds
//! them in all and per client and makes room by closing the longest-idle
//! one, so a flood of idle connections can neither exhaust memory or
//! descriptors nor lock out new clients; a connection that stays silent for
//! the idle timeout, or dribbles a message slower than that, is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::connections::{ConnectionTable, Slot};
use crate::answer::Responder;
use crate::dnstap::{QueryLog, Transport};
use crate::metrics::DnsMetrics;

/// Connection limits.
pub(super) struct Limits {
    /// Close connections idle this long.
    pub idle_timeout: Duration,
    /// The open connections of every listener.
    pub table: Arc<ConnectionTable>,
}

/// Binds the TCP listener.
pub(super) fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until `shutdown`.
pub(super) async fn serve(
    listener: TcpListener,
    responder: Responder,
    limits: Limits,
    metrics: Arc<DnsMetrics>,
    query_log: Option<QueryLog>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, "TCP accept failed");
                // Out of descriptors: back off rather than spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let slot = match limits.table.admit(peer.ip()) {
            Ok((slot, evicted)) => {
                evicted
                    .into_iter()
                    .for_each(|reason| metrics.tcp_evicted(reason));
                slot
            }
            Err(_) => {
                metrics.tcp_refused();
                drop(stream);
                continue;
            }
        };
        let responder = responder.clone();
        let query_log = query_log.clone();
        let shutdown = shutdown.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let closed = slot.closed().clone();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = closed.cancelled() => {}
                result = connection(stream, peer, &responder, query_log.as_ref(), &slot, idle_timeout) => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "TCP connection closed");
                    }
                }
            }
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    responder: &Responder,
    query_log: Option<&QueryLog>,
    slot: &Slot,
    idle_timeout: Duration,
) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(512);
    loop {
        let mut length = [0u8; 2];
        match tokio::time::timeout(idle_timeout, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            // Idle, or the client closed between messages: both are normal ends.
            Err(_) => return Ok(()),
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(error)) => return Err(error),
        }
        let length = usize::from(u16::from_be_bytes(length));
        frame.resize(length, 0);
        tokio::time::timeout(idle_timeout, stream.read_exact(&mut frame))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "message not completed in time",
                )
            })??;
        // Only now: a client that sends half a message is still idle and
        // can be closed to make room.
        slot.busy();
        let logged = query_log.filter(|log| log.sampled());
        let query_time = logged.map(|_| std::time::SystemTime::now());
        // One response, or the several messages of a zone transfer.
        for response in responder.respond_tcp(&frame, peer.ip()) {
            if let (Some(log), Some(query_time)) = (logged, query_time) {
                log.record(peer, Transport::Tcp, query_time, &response);
            }
            let Ok(response_length) = u16::try_from(response.len()) else {
                tracing::warn!(%peer, bytes = response.len(), "response too large for TCP: not sent");
                continue;
            };
            let mut out = Vec::with_capacity(response.len() + 2);
            out.extend_from_slice(&response_length.to_be_bytes());
            out.extend_from_slice(&response);
            tokio::time::timeout(idle_timeout, stream.write_all(&out))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "client not reading")
                })??;
        }
        slot.idle();
    }
}
