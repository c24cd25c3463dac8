//! Authoritative DNS behaviour of the real binary, and its handling of bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Geodns, eu, reload, us};
use e2e::dns::{Ask, addresses, ask_tcp, ask_udp, exchange_tcp, exchange_udp};
use e2e::process::wait_until;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const EDGES: &[(&str, &str, &str)] = &[("eu-1", "eu", ""), ("us-1", "us", "")];

fn start() -> Geodns {
    Geodns::start(EDGES, "")
}

#[test]
fn nxdomain_and_nodata_carry_the_soa_with_negative_ttl() {
    let geodns = start();
    let nx = ask_udp(geodns.dns, &Ask::new("missing.cdn.test", RecordType::A));
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert!(nx.answers.is_empty());
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(nx.authorities[0].ttl, 30, "RFC 2308: min(SOA TTL, MINIMUM)");

    let nodata = ask_udp(geodns.dns, &Ask::new("static.cdn.test", RecordType::MX));
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

    // An SOA query for a missing name is NXDOMAIN too.
    let soa = ask_udp(geodns.dns, &Ask::new("missing.cdn.test", RecordType::SOA));
    assert_eq!(soa.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn names_outside_our_zones_are_refused() {
    let geodns = start();
    let mut ask = Ask::new("www.example.org", RecordType::A);
    ask.rd = true;
    let reply = ask_udp(geodns.dns, &ask);
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(!reply.metadata.authoritative);
    assert!(!reply.metadata.recursion_available);
    assert!(reply.metadata.recursion_desired, "RD is copied");
}

#[test]
fn question_case_is_preserved() {
    let geodns = start();
    let reply = ask_udp(
        geodns.dns,
        &Ask::new("WwW.CdN.TeSt", RecordType::A).subnet("192.0.2.0", 24),
    );
    assert_eq!(reply.queries[0].name().to_ascii(), "WwW.CdN.TeSt.");
    assert_eq!(addresses(&reply), [eu()]);
}

#[test]
fn cname_chain_is_followed_inside_the_zone() {
    let geodns = start();
    let reply = ask_udp(
        geodns.dns,
        &Ask::new("alias.cdn.test", RecordType::A).subnet("198.51.100.0", 24),
    );
    assert_eq!(reply.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(addresses(&reply), [us()]);
}

#[test]
fn edns_is_echoed_and_badvers_for_higher_versions() {
    let geodns = start();
    let reply = ask_udp(geodns.dns, &Ask::new("static.cdn.test", RecordType::A));
    let edns = reply.edns.expect("OPT in reply");
    assert_eq!(edns.version(), 0);
    assert!(
        !edns.flags().dnssec_ok,
        "DO is not set by a server without DNSSEC"
    );

    let plain = ask_udp(
        geodns.dns,
        &Ask::new("static.cdn.test", RecordType::A).without_edns(),
    );
    assert!(plain.edns.is_none(), "no OPT without EDNS in the query");

    let mut ask = Ask::new("static.cdn.test", RecordType::A);
    ask.edns_version = Some(1);
    let badvers = ask_udp(geodns.dns, &ask);
    // BADVERS shares code 16 with BADSIG.
    assert_eq!(u16::from(badvers.metadata.response_code), 16);
    assert_eq!(badvers.edns.expect("OPT with BADVERS").version(), 0);
    assert!(badvers.answers.is_empty());
}

#[test]
fn oversized_udp_answer_is_truncated_and_complete_over_tcp() {
    let geodns = start();
    let udp = ask_udp(
        geodns.dns,
        &Ask::new("big.cdn.test", RecordType::TXT).without_edns(),
    );
    assert!(udp.metadata.truncation, "TC set without EDNS (512 bytes)");
    assert!(udp.answers.is_empty());
    assert_eq!(udp.queries.len(), 1);

    let mut small = Ask::new("big.cdn.test", RecordType::TXT);
    small.payload = 512;
    assert!(
        ask_udp(geodns.dns, &small).metadata.truncation,
        "client's 512-byte EDNS size honoured"
    );

    let large = ask_udp(geodns.dns, &Ask::new("big.cdn.test", RecordType::TXT));
    assert!(!large.metadata.truncation, "fits in 1232");

    let tcp = ask_tcp(
        geodns.dns,
        &Ask::new("big.cdn.test", RecordType::TXT).without_edns(),
    );
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 1);
    let RData::TXT(txt) = &tcp.answers[0].data else {
        panic!("TXT")
    };
    assert_eq!(txt.txt_data.len(), 12);
}

#[test]
fn a_query_whose_questions_alone_overflow_udp_gets_a_response_that_fits() {
    let geodns = start();
    // Found by the fuzzer: 42 questions of long names, Z and an RCODE set,
    // no EDNS (512 bytes is the limit). The truncated FORMERR echoed every
    // question: 1,242 bytes.
    let found = include_bytes!("../../fuzz/seeds/dns_query/many_questions_over_udp");
    let response = exchange_udp(geodns.dns, found).expect("a response");
    assert!(response.len() <= 512, "{} bytes over UDP", response.len());
    assert_eq!(response[..2], found[..2], "the query's ID");
    assert!(response[2] & 0x80 != 0, "a response");
    assert!(response[2] & 0x02 != 0, "TC set");
}

#[test]
fn any_is_answered_with_one_rrset() {
    let geodns = start();
    let reply = ask_udp(geodns.dns, &Ask::new("cdn.test", RecordType::ANY));
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let types: std::collections::BTreeSet<_> =
        reply.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "RFC 8482: one RRset, got {types:?}");
}

#[test]
fn zone_transfer_refused_unless_allowed() {
    let geodns = start();
    let reply = ask_tcp(
        geodns.dns,
        &Ask::new("cdn.test", RecordType::AXFR).without_edns(),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    let udp = ask_udp(
        geodns.dns,
        &Ask::new("cdn.test", RecordType::IXFR).without_edns(),
    );
    assert_eq!(udp.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn zone_transfer_for_allowed_client_over_tcp() {
    let geodns = start();
    let text = std::fs::read_to_string(geodns.config_path())
        .unwrap()
        .replace(
            "ns = [\"ns1.cdn.test\"]",
            "ns = [\"ns1.cdn.test\"]\nallow_transfer = [\"127.0.0.0/8\"]",
        );
    reload(&geodns, &text);
    assert!(wait_until(Duration::from_secs(5), || {
        ask_tcp(
            geodns.dns,
            &Ask::new("cdn.test", RecordType::AXFR).without_edns(),
        )
        .metadata
        .response_code
            == ResponseCode::NoError
    }));
    let reply = ask_tcp(
        geodns.dns,
        &Ask::new("cdn.test", RecordType::AXFR).without_edns(),
    );
    assert_eq!(
        reply.answers.first().unwrap().record_type(),
        RecordType::SOA
    );
    assert_eq!(reply.answers.last().unwrap().record_type(), RecordType::SOA);
    assert!(
        reply
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::TXT)
    );
}

fn header_only(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        bytes.extend_from_slice(&count.to_be_bytes());
    }
    bytes
}

fn rcode_of(reply: &[u8]) -> u8 {
    reply[3] & 0x0F
}

#[test]
fn malformed_ecs_is_formerr() {
    let geodns = start();
    // Replace the empty OPT RDATA with hand-made ECS options.
    let with_option = |option: &[u8]| {
        e2e::dns::with_opt_rdata(
            &Ask::new("www.cdn.test", RecordType::A),
            &e2e::dns::edns_option(8, option),
        )
    };
    // Bits set beyond the source prefix (RFC 7871 section 6): 192.0.3.0/23.
    let reply = exchange_udp(geodns.dns, &with_option(&[0, 1, 23, 0, 192, 0, 3])).expect("reply");
    assert_eq!(rcode_of(&reply), 1, "FORMERR for host bits");
    // Unknown family 3.
    let reply = exchange_udp(geodns.dns, &with_option(&[0, 3, 24, 0, 192, 0, 2])).expect("reply");
    assert_eq!(rcode_of(&reply), 1, "FORMERR for family 3");
    // IPv4 with a 33-bit source prefix.
    let reply =
        exchange_udp(geodns.dns, &with_option(&[0, 1, 33, 0, 192, 0, 2, 0, 0])).expect("reply");
    assert_eq!(rcode_of(&reply), 1, "FORMERR for /33");
    // A well-formed option still works.
    let reply = exchange_udp(geodns.dns, &with_option(&[0, 1, 24, 0, 192, 0, 2])).expect("reply");
    assert_eq!(rcode_of(&reply), 0);
}

#[test]
fn wrong_question_counts_are_formerr_and_responses_are_ignored() {
    let geodns = start();
    let reply = exchange_udp(geodns.dns, &header_only(7, 0x0000, [0, 0, 0, 0])).expect("reply");
    assert_eq!(rcode_of(&reply), 1, "QDCOUNT 0");
    let mut two = Ask::new("static.cdn.test", RecordType::A)
        .without_edns()
        .message();
    two.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("www.cdn.test").unwrap(),
        RecordType::A,
    ));
    let reply = exchange_udp(geodns.dns, &two.to_vec().unwrap()).expect("reply");
    assert_eq!(rcode_of(&reply), 1, "QDCOUNT 2");
    // QR set: a response is never answered.
    assert!(exchange_udp(geodns.dns, &header_only(9, 0x8000, [1, 0, 0, 0])).is_none());
    // Unknown opcode (UPDATE): NOTIMP.
    let mut update = Ask::new("cdn.test", RecordType::SOA)
        .without_edns()
        .message();
    update.metadata.op_code = hickory_proto::op::OpCode::Update;
    let reply = exchange_udp(geodns.dns, &update.to_vec().unwrap()).expect("reply");
    assert_eq!(rcode_of(&reply), 4);
}

#[test]
fn a_question_name_over_255_octets_gets_a_formerr_that_decodes() {
    let geodns = start();
    // Five labels of 63 octets: 321 octets, which no decoder accepts.
    let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..5 {
        packet.push(63);
        packet.extend_from_slice(&[b'a'; 63]);
    }
    packet.extend_from_slice(&[0, 0, 1, 0, 1]);
    for reply in [
        exchange_udp(geodns.dns, &packet).expect("UDP reply"),
        exchange_tcp(geodns.dns, &packet).expect("TCP reply"),
    ] {
        let message = Message::from_vec(&reply).expect("the FORMERR decodes");
        assert_eq!(message.metadata.id, 0x1234);
        assert_eq!(message.metadata.response_code, ResponseCode::FormErr);
        assert!(message.queries.is_empty(), "the question is not echoed");
    }
}

#[test]
fn malformed_packet_barrage_leaves_the_server_answering() {
    let geodns = start();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let good = Ask::new("www.cdn.test", RecordType::A)
        .subnet("192.0.2.0", 24)
        .message()
        .to_vec()
        .unwrap();
    let mut state = 0x2545_F491_u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for round in 0..5_000 {
        let mut packet = if round % 3 == 0 {
            good.clone()
        } else {
            vec![0u8; (next() % 600) as usize]
        };
        for _ in 0..(next() % 8) {
            if !packet.is_empty() {
                let at = (next() as usize) % packet.len();
                packet[at] = next() as u8;
            }
        }
        if round % 5 == 0 {
            packet.truncate((next() as usize) % (packet.len() + 1));
        }
        for byte in packet.iter_mut().skip(good.len()) {
            *byte = next() as u8;
        }
        // Never set QR on purpose: those are dropped, and we want answers.
        if packet.len() > 2 {
            packet[2] &= 0x7F;
        }
        let _ = socket.send_to(&packet, geodns.dns);
    }
    // Garbage over TCP too: a frame longer than its content, then close.
    if let Ok(mut stream) = TcpStream::connect(geodns.dns) {
        let _ = stream.write_all(&[0xFF, 0xFF, 1, 2, 3]);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(geodns.a_for("www.cdn.test", "192.0.2.0", 24), [eu()]);
    assert_eq!(
        ask_tcp(geodns.dns, &Ask::new("static.cdn.test", RecordType::A))
            .answers
            .len(),
        1
    );
}

#[test]
fn idle_tcp_connections_are_closed_after_the_idle_timeout() {
    let geodns = start();
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(geodns.dns).unwrap())
        .collect();
    let mut buffer = [0u8; 1];
    // The idle timeout is 1 s.
    for mut stream in idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        assert!(matches!(stream.read(&mut buffer), Ok(0) | Err(_)));
    }
}

#[test]
fn slow_tcp_client_does_not_block_others() {
    let geodns = start();
    let mut slow = TcpStream::connect(geodns.dns).unwrap();
    // Half a length prefix, then nothing.
    slow.write_all(&[0]).unwrap();
    let started = std::time::Instant::now();
    let reply = ask_tcp(geodns.dns, &Ask::new("static.cdn.test", RecordType::A));
    assert_eq!(reply.answers.len(), 1);
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[test]
fn bad_reload_keeps_serving_the_old_config() {
    let geodns = start();
    reload(
        &geodns,
        "[server]\nlisten = [\"127.0.0.1:1\"]\n[zones.\"cdn.test\"]\nttl = \"30x\"\n",
    );
    assert!(
        wait_until(Duration::from_secs(5), || geodns
            .log()
            .contains("reload failed")),
        "{}",
        geodns.log()
    );
    assert!(
        geodns
            .log()
            .contains("geodns.toml:4:7: zones.\"cdn.test\".ttl: invalid duration \"30x\""),
        "{}",
        geodns.log()
    );
    assert_eq!(geodns.a_for("www.cdn.test", "192.0.2.0", 24), [eu()]);
    assert!(
        geodns
            .admin_get("/metrics")
            .contains("config_reloads_total{result=\"failure\"} 1")
    );
}

#[test]
fn good_reload_applies_new_edges() {
    let geodns = start();
    let text = std::fs::read_to_string(geodns.config_path())
        .unwrap()
        .replace(
            "location = { latitude = 50.11, longitude = 8.68 }",
            "location = { latitude = 50.11, longitude = 8.68 }\nbias_km = 20000",
        );
    reload(&geodns, &text);
    assert!(wait_until(Duration::from_secs(5), || geodns.a_for(
        "www.cdn.test",
        "192.0.2.0",
        24
    ) == [us()]));
}

#[test]
fn sigterm_stops_cleanly() {
    let mut geodns = start();
    geodns.process.signal("TERM");
    let status = geodns
        .process
        .wait_timeout(Duration::from_secs(10))
        .expect("geodns did not exit on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", geodns.log());
    assert!(geodns.log().contains("stopped"));
}

#[test]
fn admin_explain_and_status() {
    let geodns = start();
    let explain: serde_json::Value =
        serde_json::from_str(&geodns.admin_get("/explain?ip=198.51.100.9")).unwrap();
    assert_eq!(explain["network"], "198.51.100.0/24");
    assert_eq!(explain["services"][0]["answers"][0]["chosen"][0], "us-1");
    let status: serde_json::Value = serde_json::from_str(&geodns.admin_get("/status")).unwrap();
    assert_eq!(status["zones"][0]["serial"], 42);
    assert_eq!(status["services"][0]["edges"].as_array().unwrap().len(), 2);
    let metrics = geodns.admin_get("/metrics");
    assert!(
        metrics.contains("dns_queries_total{transport=\"udp\",qtype=\"A\",rcode=\"NOERROR\"}"),
        "{metrics}"
    );
}

#[test]
fn reply_ids_match_under_load_on_both_sockets() {
    let geodns = start();
    for _ in 0..200 {
        let message = Ask::new("www.cdn.test", RecordType::A)
            .subnet("192.0.2.0", 24)
            .message();
        let reply = exchange_udp(geodns.dns, &message.to_vec().unwrap()).expect("reply");
        let decoded = Message::from_vec(&reply).unwrap();
        assert_eq!(decoded.metadata.id, message.metadata.id);
    }
}

#[test]
fn serves_ipv6_listeners_too() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let v4 = std::net::SocketAddr::new(std::net::IpAddr::V4(e2e::process::unique_loopback()), 5300);
    let v6: std::net::SocketAddr = "[::1]:0".parse().unwrap();
    // Port 0 is not allowed to collide: pick a free port for ::1 first.
    let port = std::net::UdpSocket::bind(v6)
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let v6 = std::net::SocketAddr::new(v6.ip(), port);
    let admin = std::net::SocketAddr::new(v4.ip(), 9300);
    let text = common::config(v4, admin, EDGES, "").replace(
        &format!("listen = [\"{v4}\"]"),
        &format!("listen = [\"{v4}\", \"{v6}\"]"),
    );
    let geodns = Geodns::start_with(v4, admin, &text);
    let reply = ask_udp(
        v6,
        &Ask::new("www.cdn.test", RecordType::AAAA).subnet("2001:db8:8000::", 48),
    );
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(
        ask_tcp(v6, &Ask::new("static.cdn.test", RecordType::A))
            .answers
            .len(),
        1
    );
    drop(geodns);
}

#[test]
fn zone_transfers_over_64_kib_come_in_several_messages() {
    let dir = tempfile::tempdir().unwrap();
    let zone_file = dir.path().join("big.test.zone");
    let mut text = String::from(
        "$TTL 300\n@ IN SOA ns1.big.test. hostmaster.big.test. 7 3600 900 604800 60\n\
         @ IN NS ns1.big.test.\nns1 IN A 192.0.2.53\n",
    );
    const NAMES: usize = 3000;
    for n in 0..NAMES {
        text.push_str(&format!("host{n} IN TXT \"{}\"\n", "x".repeat(40 + n % 20)));
    }
    std::fs::write(&zone_file, text).unwrap();
    let extra = format!(
        "[zones.\"big.test\"]\nfile = \"{}\"\nallow_transfer = [\"127.0.0.0/8\"]\n",
        zone_file.display()
    );
    let geodns = Geodns::start(EDGES, &extra);

    let query = Ask::new("big.test", RecordType::AXFR)
        .without_edns()
        .message()
        .to_vec()
        .unwrap();
    let mut stream = TcpStream::connect(geodns.dns).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let length = u16::try_from(query.len()).unwrap().to_be_bytes();
    stream.write_all(&[&length[..], &query].concat()).unwrap();
    let (mut messages, mut records, mut soas) = (0, Vec::new(), 0);
    while soas < 2 {
        let mut length = [0; 2];
        stream.read_exact(&mut length).expect("another message");
        let mut message = vec![0; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut message).unwrap();
        let message = Message::from_vec(&message).expect("each message decodes");
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
        assert!(message.metadata.authoritative);
        messages += 1;
        for record in message.answers {
            soas += usize::from(record.record_type() == RecordType::SOA);
            records.push(record);
        }
    }
    assert!(messages >= 3, "{messages} messages for about 200 KB");
    assert_eq!(records.first().unwrap().record_type(), RecordType::SOA);
    assert_eq!(records.last().unwrap().record_type(), RecordType::SOA);
    let txt = records
        .iter()
        .filter(|record| record.record_type() == RecordType::TXT)
        .count();
    assert_eq!(txt, NAMES, "every record, once");
}
