//! Any datagram or TCP message through the full query path: nothing panics,
//! and whatever geodns sends back decodes, is a response, carries the
//! query's ID and fits the UDP payload limit.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use geodns::metrics::Transport;
use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;

const PEERS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7)),
];

fuzz_target!(|data: &[u8]| {
    let responder = geocdn_fuzz::responder();
    for (peer, transport) in PEERS.into_iter().zip([Transport::Udp, Transport::Tcp]) {
        let Some(bytes) = responder.respond(data, peer, transport) else {
            continue;
        };
        let message = Message::from_vec(&bytes).expect("our own answer decodes");
        assert_eq!(message.metadata.message_type, MessageType::Response);
        assert_eq!(message.metadata.id, u16::from_be_bytes([data[0], data[1]]));
        if transport == Transport::Udp {
            assert!(bytes.len() <= 1232, "{} bytes over UDP", bytes.len());
        }
    }
});
