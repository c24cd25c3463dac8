//! Batched datagram I/O: `recvmmsg` fills up to [`BATCH`] buffers in one
//! system call, `sendmmsg` sends all the answers in one more.
//!
//! On a socket bound to a wildcard address (`0.0.0.0`, `::`) the kernel would
//! pick the source of each answer by routing, which on a host with several
//! addresses is often not the one the query went to, and resolvers drop such
//! answers. There each datagram's destination is read from its packet-info
//! control message and the answer is sent from it (one `sendmmsg` per
//! destination address in the batch, usually one).

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn6, SockaddrStorage,
    recvmmsg, sendmmsg,
};

/// The address a datagram arrived on, from its packet-info message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Destination {
    address: IpAddr,
    /// Interface it arrived on (kept for IPv6, where link-local addresses
    /// need it).
    interface: u32,
}

impl Destination {
    fn from_control(message: &ControlMessageOwned) -> Option<Self> {
        match message {
            ControlMessageOwned::Ipv4PacketInfo(info) => Some(Self {
                address: IpAddr::V4(Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes())),
                interface: u32::try_from(info.ipi_ifindex).unwrap_or(0),
            }),
            ControlMessageOwned::Ipv6PacketInfo(info) => Some(Self {
                address: IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)),
                interface: info.ipi6_ifindex,
            }),
            _ => None,
        }
    }
}

/// The packet-info message that makes an answer leave from `destination`.
enum SourceInfo {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl SourceInfo {
    fn new(destination: Destination) -> Self {
        match destination.address {
            IpAddr::V4(address) => Self::V4(libc::in_pktinfo {
                // Routing picks the interface; the source is fixed.
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(address.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            }),
            IpAddr::V6(address) => Self::V6(libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: address.octets(),
                },
                ipi6_ifindex: destination.interface,
            }),
        }
    }

    fn control(&self) -> ControlMessage<'_> {
        match self {
            Self::V4(info) => ControlMessage::Ipv4PacketInfo(info),
            Self::V6(info) => ControlMessage::Ipv6PacketInfo(info),
        }
    }
}

/// Datagrams handled per system call.
pub const BATCH: usize = 32;
/// Largest datagram we read; anything longer is not a DNS query we answer.
const DATAGRAM: usize = 4096;

/// Buffers for one batch of queries and their responses.
pub struct Batch {
    queries: Vec<Vec<u8>>,
    lengths: [usize; BATCH],
    peers: [SocketAddr; BATCH],
    /// Where each datagram arrived, on wildcard sockets.
    destinations: [Option<Destination>; BATCH],
    responses: Vec<Vec<u8>>,
    receive_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
    /// Headers with room for a packet-info message (wildcard sockets).
    send_headers_with_source: Option<MultiHeaders<SockaddrStorage>>,
}

impl Batch {
    /// Allocates the buffers once; with `packet_info`, room for each
    /// datagram's destination (see [`enable_packet_info`]).
    pub fn new(packet_info: bool) -> Self {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let control = packet_info.then(|| nix::cmsg_space!(libc::in6_pktinfo));
        Self {
            queries: (0..BATCH).map(|_| vec![0u8; DATAGRAM]).collect(),
            lengths: [0; BATCH],
            peers: [unspecified; BATCH],
            destinations: [None; BATCH],
            responses: (0..BATCH).map(|_| Vec::with_capacity(DATAGRAM)).collect(),
            send_headers_with_source: control
                .clone()
                .map(|control| MultiHeaders::preallocate(BATCH, Some(control))),
            receive_headers: MultiHeaders::preallocate(BATCH, control),
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
            self.destinations[index] = message.cmsgs().ok().and_then(|mut messages| {
                messages.find_map(|control| Destination::from_control(&control))
            });
            count = index + 1;
        }
        Ok(count)
    }

    /// The query, its sender and the response buffer of datagram `index`.
    pub fn slot(&mut self, index: usize) -> (&[u8], SocketAddr, &mut Vec<u8>) {
        let query = &self.queries[index][..self.lengths[index].min(DATAGRAM)];
        (query, self.peers[index], &mut self.responses[index])
    }

    /// Sends the non-empty responses among the first `count`, each from the
    /// address its query arrived on when that is known.
    pub fn send(&mut self, socket: &std::net::UdpSocket, count: usize) -> std::io::Result<()> {
        let mut pending: Vec<usize> = (0..count)
            .filter(|&index| !self.responses[index].is_empty())
            .collect();
        while let Some(&first) = pending.first() {
            let destination = self.destinations[first];
            let (group, rest): (Vec<usize>, Vec<usize>) = pending
                .into_iter()
                .partition(|&index| self.destinations[index] == destination);
            pending = rest;
            let source = destination.map(SourceInfo::new);
            self.send_group(socket, &group, source.as_ref())?;
        }
        Ok(())
    }

    fn send_group(
        &mut self,
        socket: &std::net::UdpSocket,
        group: &[usize],
        source: Option<&SourceInfo>,
    ) -> std::io::Result<()> {
        let slices: Vec<[IoSlice<'_>; 1]> = group
            .iter()
            .map(|&index| [IoSlice::new(&self.responses[index])])
            .collect();
        let addresses: Vec<Option<SockaddrStorage>> = group
            .iter()
            .map(|&index| Some(SockaddrStorage::from(self.peers[index])))
            .collect();
        // Headers without control room when there is no source to give: an
        // empty control buffer would be read by the kernel as a bad message.
        let (controls, headers): (Vec<ControlMessage<'_>>, _) =
            match (source, self.send_headers_with_source.as_mut()) {
                (Some(source), Some(headers)) => (vec![source.control()], headers),
                _ => (Vec::new(), &mut self.send_headers),
            };
        let mut sent = 0;
        while sent < slices.len() {
            let results = sendmmsg(
                socket.as_raw_fd(),
                headers,
                slices[sent..].iter(),
                &addresses[sent..],
                &controls,
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

/// Asks the kernel for each datagram's destination address on `socket`
/// (bound to a wildcard address), so that answers can be sent from it.
pub fn enable_packet_info(socket: &std::net::UdpSocket, ipv6: bool) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if ipv6 {
        setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)
    } else {
        setsockopt(socket, sockopt::Ipv4PacketInfo, &true)
    }
    .map_err(std::io::Error::from)
}

fn to_socket_addr(address: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    address
        .as_sockaddr_in6()
        .map(|v6: &SockaddrIn6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}
