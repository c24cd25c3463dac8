//! UDP: one OS thread per socket, blocking in the kernel, answering inline.
//!
//! An async receive loop pays for the reactor on every datagram (readiness
//! registration, epoll, waking a worker); measured here, that was most of
//! the CPU per query. A thread that blocks in `recvmmsg` wakes once per
//! burst, answers every datagram of it from its own answer cache, and sends
//! the answers with one `sendmmsg`.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use super::batch::{self, Batch};
use crate::answer::{AnswerCache, Responder};
use crate::dnstap::{QueryLog, Transport};

/// How often a blocked receive wakes to check for shutdown.
const SHUTDOWN_POLL: Duration = Duration::from_millis(200);

/// Binds a UDP socket that shares its address with our other sockets.
pub(super) fn bind(address: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        // Let an IPv4 wildcard socket share the port.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Room for bursts while the thread is busy.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&address.into())?;
    socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
    let socket: std::net::UdpSocket = socket.into();
    if address.ip().is_unspecified() {
        batch::enable_packet_info(&socket, address.is_ipv6())?;
    }
    Ok(socket)
}

/// Answers datagrams on `socket` until `shutdown`. Runs on its own thread.
pub(super) fn serve(
    socket: std::net::UdpSocket,
    responder: Responder,
    mut cache: AnswerCache,
    query_log: Option<QueryLog>,
    shutdown: CancellationToken,
) {
    let wildcard = socket
        .local_addr()
        .is_ok_and(|address| address.ip().is_unspecified());
    let mut batch = Batch::new(wildcard);
    while !shutdown.is_cancelled() {
        let received = match batch.receive(&socket) {
            Ok(received) => received,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(error) => {
                // ICMP errors from earlier sends surface here; keep serving.
                tracing::debug!(%error, "UDP receive error");
                continue;
            }
        };
        for index in 0..received {
            let (query, peer, response) = batch.slot(index);
            let logged = query_log.as_ref().filter(|log| log.sampled());
            let query_time = logged.map(|_| std::time::SystemTime::now());
            if peer.port() == 0 || !responder.respond_udp(&mut cache, query, peer.ip(), response) {
                response.clear();
            }
            if let (Some(log), Some(query_time)) = (logged, query_time) {
                log.record(peer, Transport::Udp, query_time, response);
            }
        }
        if let Err(error) = batch.send(&socket, received) {
            tracing::debug!(%error, "UDP send failed");
        }
    }
}
