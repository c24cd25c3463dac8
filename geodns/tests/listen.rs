//! Listening on wildcard addresses: every answer leaves from the address
//! its query was sent to, or resolvers (which check) drop it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{Geodns, config};
use e2e::dns::{Ask, ask_tcp};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const EDGES: &[(&str, &str, &str)] = &[("eu-1", "eu", ""), ("us-1", "us", "")];
/// A port no other test listens on: the wildcard takes it on every address.
const PORT: u16 = 5391;

/// Asks `server` from a socket connected to it, which only accepts
/// datagrams from exactly that address.
fn ask_connected(server: SocketAddr) -> Option<Message> {
    let local: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let socket = UdpSocket::bind(local).unwrap();
    socket.connect(server).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let query = Ask::new("static.cdn.test", RecordType::A).message();
    socket.send(&query.to_vec().unwrap()).unwrap();
    let mut buffer = [0u8; 4096];
    let length = socket.recv(&mut buffer).ok()?;
    Message::from_vec(&buffer[..length]).ok()
}

#[test]
fn wildcard_listeners_answer_from_the_address_asked() {
    let ready: SocketAddr = format!("127.0.0.1:{PORT}").parse().unwrap();
    let admin: SocketAddr = "127.0.0.1:9391".parse().unwrap();
    let text = config(ready, admin, EDGES, "").replace(
        &format!("listen = [\"{ready}\"]"),
        &format!("listen = [\"0.0.0.0:{PORT}\", \"[::]:{PORT}\"]"),
    );
    assert!(text.contains("0.0.0.0"), "{text}");
    let geodns = Geodns::start_with(ready, admin, &text);
    for target in ["127.0.0.37", "127.0.0.38", "127.0.0.1", "::1"] {
        let server = SocketAddr::new(target.parse().unwrap(), PORT);
        let reply = ask_connected(server)
            .unwrap_or_else(|| panic!("no answer from {server}:\n{}", geodns.log()));
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(reply.answers.len(), 1, "{reply:?}");
        // TCP answers on the accepted connection, from the same address.
        let tcp = ask_tcp(server, &Ask::new("static.cdn.test", RecordType::A));
        assert_eq!(tcp.answers.len(), 1);
    }
}
