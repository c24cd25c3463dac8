//! Batched datagram I/O: `recvmmsg` fills up to [`BATCH`] buffers in one
//! system call, `sendmmsg` sends all the answers in one more.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrIn6, SockaddrStorage, recvmmsg, sendmmsg,
};

/// Datagrams handled per system call.
pub const BATCH: usize = 32;
/// Largest datagram we read; anything longer is not a DNS query we answer.
const DATAGRAM: usize = 4096;

/// Buffers for one batch of queries and their responses.
pub struct Batch {
    queries: Vec<Vec<u8>>,
    lengths: [usize; BATCH],
    peers: [SocketAddr; BATCH],
    responses: Vec<Vec<u8>>,
    receive_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    /// Allocates the buffers once.
    pub fn new() -> Self {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Self {
            queries: (0..BATCH).map(|_| vec![0u8; DATAGRAM]).collect(),
            lengths: [0; BATCH],
            peers: [unspecified; BATCH],
            responses: (0..BATCH).map(|_| Vec::with_capacity(DATAGRAM)).collect(),
            receive_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Blocks until at least one datagram arrives (or the socket's read
    /// timeout passes), then takes whatever else is already queued.
    pub fn receive(&mut self, socket: &std::net::UdpSocket) -> std::io::Result<usize> {
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .queries
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer.as_mut_slice())])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.receive_headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(std::io::Error::from)?;
        let mut count = 0;
        for (index, message) in results.enumerate() {
            self.lengths[index] = message.bytes;
            self.peers[index] = message
                .address
                .and_then(to_socket_addr)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            count = index + 1;
        }
        Ok(count)
    }

    /// The query, its sender and the response buffer of datagram `index`.
    pub fn slot(&mut self, index: usize) -> (&[u8], SocketAddr, &mut Vec<u8>) {
        let query = &self.queries[index][..self.lengths[index].min(DATAGRAM)];
        (query, self.peers[index], &mut self.responses[index])
    }

    /// Sends the non-empty responses among the first `count`.
    pub fn send(&mut self, socket: &std::net::UdpSocket, count: usize) -> std::io::Result<()> {
        let mut slices: Vec<[IoSlice<'_>; 1]> = Vec::with_capacity(count);
        let mut addresses: Vec<Option<SockaddrStorage>> = Vec::with_capacity(count);
        for index in 0..count {
            if self.responses[index].is_empty() {
                continue;
            }
            slices.push([IoSlice::new(&self.responses[index])]);
            addresses.push(Some(SockaddrStorage::from(self.peers[index])));
        }
        let mut sent = 0;
        while sent < slices.len() {
            let results = sendmmsg(
                socket.as_raw_fd(),
                &mut self.send_headers,
                slices[sent..].iter(),
                &addresses[sent..],
                [] as [ControlMessage<'_>; 0],
                MsgFlags::empty(),
            )
            .map_err(std::io::Error::from)?;
            let batch = results.count();
            if batch == 0 {
                break;
            }
            sent += batch;
        }
        Ok(())
    }
}

fn to_socket_addr(address: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    address
        .as_sockaddr_in6()
        .map(|v6: &SockaddrIn6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}
