//! The PROXY protocol header (v1 text or v2 binary) a TCP load balancer
//! puts before the client's bytes, parsed with the `ppp` crate: it names the
//! client the edge should see instead of the balancer.

use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};
use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Longest header accepted: v1 is at most 107 bytes; v2 carries 16 plus its
/// addresses and TLVs, which a balancer keeps short.
const MAX_HEADER: usize = 1024;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection ended or failed first.
    #[error("connection ended before a PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// Not a PROXY header.
    #[error("not a PROXY protocol header")]
    Invalid,
    /// Longer than [`MAX_HEADER`].
    #[error("PROXY header longer than {MAX_HEADER} bytes")]
    TooLong,
}

/// The header read off a connection.
#[derive(Debug)]
pub struct ProxyHeader {
    /// The client it names; `None` for `UNKNOWN`/`LOCAL` (the balancer's own
    /// health checks), which are served as the balancer.
    pub client: Option<SocketAddr>,
    /// Bytes read past the header: the start of the client's request.
    pub rest: Bytes,
}

/// Reads the header at the start of `stream`.
pub async fn read(stream: &mut TcpStream) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut buffer = BytesMut::with_capacity(256);
    loop {
        if stream.read_buf(&mut buffer).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        match parse(&buffer)? {
            Some((client, length)) => {
                let rest = buffer.split_off(length).freeze();
                return Ok(ProxyHeader { client, rest });
            }
            None if buffer.len() >= MAX_HEADER => return Err(ProxyHeaderError::TooLong),
            None => {}
        }
    }
}

/// The client and the header's length, `None` while incomplete.
fn parse(input: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, ProxyHeaderError> {
    let header = HeaderResult::parse(input);
    if header.is_incomplete() {
        return Ok(None);
    }
    match header {
        HeaderResult::V1(Ok(header)) => {
            let client = match header.addresses {
                v1::Addresses::Tcp4(addresses) => Some(SocketAddr::new(
                    IpAddr::V4(addresses.source_address),
                    addresses.source_port,
                )),
                v1::Addresses::Tcp6(addresses) => Some(SocketAddr::new(
                    IpAddr::V6(addresses.source_address),
                    addresses.source_port,
                )),
                v1::Addresses::Unknown => None,
            };
            Ok(Some((client, header.header.len())))
        }
        HeaderResult::V2(Ok(header)) => {
            let client = match (header.command, header.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(addresses)) => Some(SocketAddr::new(
                    IpAddr::V4(addresses.source_address),
                    addresses.source_port,
                )),
                (v2::Command::Proxy, v2::Addresses::IPv6(addresses)) => Some(SocketAddr::new(
                    IpAddr::V6(addresses.source_address),
                    addresses.source_port,
                )),
                _ => None,
            };
            Ok(Some((client, header.len())))
        }
        _ => Err(ProxyHeaderError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn v1_header_names_the_client_and_keeps_what_follows() {
        let input = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\nGET / HTTP/1.1\r\n";
        let (client, length) = parse(input).unwrap().unwrap();
        assert_eq!(client, Some("198.51.100.7:40000".parse().unwrap()));
        assert_eq!(&input[length..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn v2_header_names_the_client() {
        let mut input = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        input.extend_from_slice(&[0x21, 0x11, 0, 12]);
        input.extend_from_slice(&[198, 51, 100, 7, 192, 0, 2, 1, 0x9c, 0x40, 0, 80]);
        input.extend_from_slice(b"GET");
        let (client, length) = parse(&input).unwrap().unwrap();
        assert_eq!(client, Some("198.51.100.7:40000".parse().unwrap()));
        assert_eq!(&input[length..], b"GET");
    }

    #[test]
    fn partial_headers_wait_and_garbage_is_refused() {
        assert!(parse(b"PROXY TCP4 198.51").unwrap().is_none());
        assert!(parse(b"\r\n\r\n\0\r\n").unwrap().is_none());
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(ProxyHeaderError::Invalid)
        ));
    }

    #[test]
    fn local_and_unknown_name_no_client() {
        let (client, _) = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!(client, None);
    }
}
