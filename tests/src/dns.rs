//! A small DNS client over real sockets, built on hickory-proto messages.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

/// How to ask.
#[derive(Debug, Clone)]
pub struct Ask {
    /// Query name.
    pub name: String,
    /// Query type.
    pub qtype: RecordType,
    /// EDNS version, or no EDNS at all.
    pub edns_version: Option<u8>,
    /// EDNS UDP payload size.
    pub payload: u16,
    /// ECS option (address, source prefix).
    pub subnet: Option<(IpAddr, u8)>,
    /// Recursion desired.
    pub rd: bool,
    /// The EDNS DO bit (RFC 3225).
    pub dnssec_ok: bool,
}

impl Ask {
    /// A query for `name`/`qtype` with EDNS(0), no ECS.
    pub fn new(name: &str, qtype: RecordType) -> Self {
        Self {
            name: name.to_string(),
            qtype,
            edns_version: Some(0),
            payload: 1232,
            subnet: None,
            rd: false,
            dnssec_ok: false,
        }
    }

    /// Adds an ECS option.
    pub fn subnet(mut self, address: &str, source_prefix: u8) -> Self {
        self.subnet = Some((address.parse().expect("ECS address"), source_prefix));
        self
    }

    /// Sends no OPT record.
    pub fn without_edns(mut self) -> Self {
        self.edns_version = None;
        self
    }

    /// The query message.
    pub fn message(&self) -> Message {
        let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = self.rd;
        let name = Name::from_ascii(&self.name).expect("query name");
        message.add_query(Query::query(name, self.qtype));
        if let Some(version) = self.edns_version {
            let mut edns = Edns::new();
            edns.set_version(version);
            edns.set_max_payload(self.payload);
            edns.set_dnssec_ok(self.dnssec_ok);
            if let Some((address, prefix)) = self.subnet {
                edns.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(address, prefix, 0)));
            }
            message.set_edns(edns);
        }
        message
    }
}

/// The wire form of an EDNS query without options (`ask` must use EDNS and
/// no ECS) with `rdata` as its OPT RDATA: for options no encoder would
/// write, malformed ones included.
pub fn with_opt_rdata(ask: &Ask, rdata: &[u8]) -> Vec<u8> {
    let mut bytes = ask.message().to_vec().expect("encode query");
    // The OPT record is last, its RDLENGTH (0) its last two bytes.
    let rdlen_at = bytes.len() - 2;
    let length = u16::try_from(rdata.len()).expect("RDATA length");
    bytes[rdlen_at..].copy_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(rdata);
    bytes
}

/// One EDNS option: code, length, data.
pub fn edns_option(code: u16, data: &[u8]) -> Vec<u8> {
    let mut option = code.to_be_bytes().to_vec();
    option.extend_from_slice(
        &u16::try_from(data.len())
            .expect("option length")
            .to_be_bytes(),
    );
    option.extend_from_slice(data);
    option
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x1234);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// Sends `bytes` over UDP and returns the reply, if one comes within 2 s.
pub fn exchange_udp(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    }
    .parse()
    .ok()?;
    let socket = UdpSocket::bind(bind).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket.send_to(bytes, server).ok()?;
    let mut buffer = vec![0u8; 65535];
    let (length, _) = socket.recv_from(&mut buffer).ok()?;
    buffer.truncate(length);
    Some(buffer)
}

/// Sends `bytes` as one TCP message and returns the reply.
pub fn exchange_tcp(server: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let length = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
    stream.write_all(&length.to_be_bytes())?;
    stream.write_all(bytes)?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut reply)?;
    Ok(reply)
}

/// Asks over UDP and decodes the reply; panics when none comes.
pub fn ask_udp(server: SocketAddr, ask: &Ask) -> Message {
    let query = ask.message();
    let bytes = query.to_vec().expect("encode query");
    let reply = exchange_udp(server, &bytes)
        .unwrap_or_else(|| panic!("no UDP reply from {server} to {ask:?}"));
    let message = Message::from_vec(&reply).expect("decode reply");
    assert_eq!(message.metadata.id, query.metadata.id, "reply id");
    message
}

/// Asks over TCP and decodes the reply.
pub fn ask_tcp(server: SocketAddr, ask: &Ask) -> Message {
    let bytes = ask.message().to_vec().expect("encode query");
    let reply = exchange_tcp(server, &bytes)
        .unwrap_or_else(|error| panic!("TCP query to {server} failed: {error}"));
    Message::from_vec(&reply).expect("decode reply")
}

/// The addresses in the answer section, in order.
pub fn addresses(message: &Message) -> Vec<IpAddr> {
    message
        .answers
        .iter()
        .filter_map(|record| record.data.ip_addr())
        .collect()
}

/// The ECS option of a reply: (address, source prefix, scope prefix).
pub fn reply_subnet(message: &Message) -> Option<(IpAddr, u8, u8)> {
    let option = message
        .edns
        .as_ref()?
        .option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)?;
    match option {
        EdnsOption::Subnet(subnet) => {
            Some((subnet.addr(), subnet.source_prefix(), subnet.scope_prefix()))
        }
        _ => None,
    }
}
