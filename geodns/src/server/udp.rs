//! UDP: one receive loop per socket, answering inline.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::answer::{AnswerCache, Responder};

/// Largest datagram we read; anything longer is not a DNS query we answer.
const RECEIVE_BUFFER: usize = 4096;

/// Binds a UDP socket that shares its address with our other sockets.
pub(super) fn bind(address: SocketAddr) -> std::io::Result<UdpSocket> {
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
    socket.set_nonblocking(true)?;
    // Room for bursts while the loop is busy.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// Answers datagrams on `socket` until `shutdown`.
pub(super) async fn serve(socket: UdpSocket, responder: Responder, shutdown: CancellationToken) {
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    let mut response = Vec::with_capacity(RECEIVE_BUFFER);
    let mut cache = AnswerCache::new();
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        let (length, peer) = match received {
            Ok(pair) => pair,
            Err(error) => {
                // ICMP errors from earlier sends surface here; keep serving.
                tracing::debug!(%error, "UDP receive error");
                continue;
            }
        };
        if peer.port() == 0 {
            continue;
        }
        let Some(query) = buffer.get(..length) else {
            continue;
        };
        if responder.respond_udp(&mut cache, query, peer.ip(), &mut response)
            && let Err(error) = socket.send_to(&response, peer).await
        {
            tracing::debug!(%peer, %error, "UDP send failed");
        }
    }
}
