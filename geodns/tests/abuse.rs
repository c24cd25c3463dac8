//! What a hostile client can make geodns hold or write: metric series, log
//! lines, TCP slots. Each is bounded whatever the client sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::{Geodns, ap, beside, config, eu, us};
use e2e::dns::{Ask, ask_udp, edns_option, with_opt_rdata};
use e2e::process::{unique_loopback, wait_until};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const EDGES: &[(&str, &str, &str)] = &[("eu-1", "eu", ""), ("us-1", "us", ""), ("ap-1", "ap", "")];

fn start(filter: Option<&str>) -> Geodns {
    let address = IpAddr::V4(unique_loopback());
    let dns = SocketAddr::new(address, 5300);
    let admin = SocketAddr::new(address, 9300);
    Geodns::start_logging(dns, admin, &config(dns, admin, EDGES, ""), filter)
}

/// Lines of `/metrics` that are samples of `dns_queries`.
fn query_series(geodns: &Geodns) -> Vec<String> {
    geodns
        .admin_get("/metrics")
        .lines()
        .filter(|line| line.starts_with("dns_queries_total{"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn random_query_types_share_one_metric_series() {
    let geodns = start(Some("info"));
    for qtype in 1000..1300u16 {
        let reply = ask_udp(
            geodns.dns,
            &Ask::new("static.cdn.test", RecordType::Unknown(qtype)),
        );
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    }
    let series = query_series(&geodns);
    let other: Vec<_> = series
        .iter()
        .filter(|line| line.contains("qtype=\"other\""))
        .collect();
    assert_eq!(other.len(), 1, "one series for unknown types: {series:#?}");
    assert!(
        other[0].ends_with(" 300"),
        "every query counted: {}",
        other[0]
    );
    assert!(series.len() < 10, "series stay few: {series:#?}");
}

/// A query whose question is cut short: no parser can decode it.
fn undecodable(id: u16) -> Vec<u8> {
    let mut packet = id.to_be_bytes().to_vec();
    packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    packet.extend_from_slice(b"\x06static\x03cd");
    packet
}

/// A query for `static.cdn.test` whose OPT record carries an option cut
/// short (the option says 200 bytes, four follow).
fn truncated_edns_option() -> Vec<u8> {
    with_opt_rdata(
        &Ask::new("static.cdn.test", RecordType::A),
        &[0, 10, 0, 200, 1, 2, 3, 4],
    )
}

/// A query with an ECS option carrying more address bytes than its prefix.
fn oversized_ecs() -> Vec<u8> {
    with_opt_rdata(
        &Ask::new("www.cdn.test", RecordType::A),
        &edns_option(8, &[0, 1, 8, 0, 198, 51, 100, 0]),
    )
}

#[test]
fn a_flood_of_malformed_packets_is_a_few_log_lines() {
    let geodns = start(None);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut sink = [0u8; 4096];
    for id in 0..1000u16 {
        for packet in [undecodable(id), truncated_edns_option(), oversized_ecs()] {
            socket.send_to(&packet, geodns.dns).unwrap();
        }
        while socket.recv_from(&mut sink).is_ok() {}
    }
    // Still answering, and the reasons are in the log.
    assert_eq!(
        ask_udp(geodns.dns, &Ask::new("static.cdn.test", RecordType::A))
            .metadata
            .response_code,
        ResponseCode::NoError
    );
    let logged = wait_until(Duration::from_secs(5), || {
        let log = geodns.log();
        log.contains("malformed query answered with FORMERR")
            && log.contains("malformed ECS option answered with FORMERR")
    });
    assert!(logged, "each reason logged once:\n{}", geodns.log());
    std::thread::sleep(Duration::from_millis(500));
    let log = geodns.log();
    let lines = log.lines().count();
    assert!(lines < 20, "3,000 bad packets, {lines} log lines:\n{log}");
    assert!(
        !log.contains("poorly formatted EDNS options"),
        "no per-packet library warnings:\n{log}"
    );
}

#[test]
fn a_database_truncated_in_place_does_not_stop_the_server() {
    let mut geodns = start(Some("info"));
    assert_eq!(geodns.a_for("www.cdn.test", "198.51.100.0", 24), vec![us()]);
    let database = beside(&geodns, "geo.mmdb");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&database)
        .unwrap()
        .set_len(64)
        .unwrap();
    // Networks not asked before, so their lookups read the database.
    assert_eq!(geodns.a_for("www.cdn.test", "203.0.113.0", 24), vec![ap()]);
    assert_eq!(geodns.a_for("www.cdn.test", "10.1.0.0", 16), vec![eu()]);
    // A reload reads the damaged file, refuses it and keeps the old one.
    geodns.process.signal("HUP");
    let refused = wait_until(Duration::from_secs(5), || {
        geodns.log().contains("reload failed")
    });
    assert!(refused, "{}", geodns.log());
    assert_eq!(geodns.a_for("www.cdn.test", "10.2.0.0", 15), vec![us()]);
    assert!(geodns.process.try_wait().is_none(), "{}", geodns.log());
}
