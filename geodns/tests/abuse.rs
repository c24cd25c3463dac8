//! What a hostile client can make geodns hold or write: metric series, log
//! lines, TCP slots. Each is bounded whatever the client sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
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

/// The value of an unlabelled sample in `/metrics`.
fn sample(geodns: &Geodns, name: &str) -> u64 {
    let metrics = geodns.admin_get("/metrics");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        .parse::<f64>()
        .unwrap() as u64
}

/// A geodns whose answer caches may hold `size` for the process.
fn start_with_answer_cache(size: &str) -> Geodns {
    let address = IpAddr::V4(unique_loopback());
    let dns = SocketAddr::new(address, 5300);
    let admin = SocketAddr::new(address, 9300);
    let text = config(dns, admin, EDGES, "").replace(
        "udp_sockets = 2\n",
        &format!("udp_sockets = 2\nanswer_cache_size = \"{size}\"\n"),
    );
    Geodns::start_logging(dns, admin, &text, Some("info"))
}

/// Asks over one socket, so that every query reaches the same receive loop.
struct OneSocket {
    socket: UdpSocket,
    server: SocketAddr,
    buffer: Vec<u8>,
}

impl OneSocket {
    fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        Self {
            socket,
            server,
            buffer: vec![0; 4096],
        }
    }

    fn rcode(&mut self, name: &str) -> ResponseCode {
        let query = Ask::new(name, RecordType::A).message().to_vec().unwrap();
        self.socket.send_to(&query, self.server).unwrap();
        let (length, _) = self.socket.recv_from(&mut self.buffer).unwrap();
        hickory_proto::op::Message::from_vec(&self.buffer[..length])
            .unwrap()
            .metadata
            .response_code
    }
}

#[test]
fn random_names_neither_grow_the_answer_cache_past_its_size_nor_evict_asked_answers() {
    let geodns = start_with_answer_cache("64KiB");
    let mut client = OneSocket::new(geodns.dns);
    for round in 0..6000u32 {
        if round % 10 == 0 {
            assert_eq!(client.rcode("static.cdn.test"), ResponseCode::NoError);
        }
        let random = format!("r{round:05}.cdn.test");
        assert_eq!(client.rcode(&random), ResponseCode::NXDomain);
    }
    let bytes = sample(&geodns, "dns_answer_cache_bytes");
    assert!(bytes > 0, "NXDOMAIN answers are cached");
    assert!(
        bytes <= 64 * 1024,
        "{bytes} bytes cached for a 64 KiB cache"
    );
    let hits = sample(&geodns, "dns_answer_cache_hits_total");
    for _ in 0..100 {
        assert_eq!(client.rcode("static.cdn.test"), ResponseCode::NoError);
    }
    assert_eq!(
        sample(&geodns, "dns_answer_cache_hits_total") - hits,
        100,
        "the name asked all along is still cached"
    );
}

#[test]
fn refused_answers_are_not_cached() {
    let geodns = start_with_answer_cache("1MiB");
    let mut client = OneSocket::new(geodns.dns);
    // What the start-up probe left.
    let before = sample(&geodns, "dns_answer_cache_bytes");
    for n in 0..500 {
        assert_eq!(
            client.rcode(&format!("n{n}.elsewhere.test")),
            ResponseCode::Refused
        );
    }
    assert_eq!(sample(&geodns, "dns_answer_cache_bytes"), before);
    assert_eq!(client.rcode("www.cdn.test"), ResponseCode::NoError);
    assert!(sample(&geodns, "dns_answer_cache_bytes") > before);
}

/// A TCP connection that has asked one question and keeps the connection.
fn kept_alive(server: SocketAddr, from: IpAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(asks_over(&mut stream), "first question on a new connection");
    stream
}

/// Whether a question on `stream` is answered.
fn asks_over(stream: &mut TcpStream) -> bool {
    let query = Ask::new("static.cdn.test", RecordType::A)
        .message()
        .to_vec()
        .unwrap();
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    if stream.write_all(&framed).is_err() {
        return false;
    }
    let mut length = [0u8; 2];
    if stream.read_exact(&mut length).is_err() {
        return false;
    }
    let mut reply = vec![0; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut reply).is_ok()
}

/// Whether the server has closed `stream` (within two seconds).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1];
    matches!(stream.read(&mut buffer), Ok(0) | Err(_))
}

#[test]
fn kept_alive_tcp_connections_make_room_for_new_clients() {
    // Eight slots in the test config, each held by a client that keeps asking.
    let geodns = start(Some("info"));
    let attacker = IpAddr::V4(unique_loopback());
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..8 {
        held.push(kept_alive(geodns.dns, attacker));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Activity refreshes all but the first: it is the longest idle.
    for stream in &mut held[1..] {
        assert!(asks_over(stream));
    }
    let newcomer = IpAddr::V4(unique_loopback());
    let mut fresh = kept_alive(geodns.dns, newcomer);
    assert!(asks_over(&mut fresh), "a new client is served");
    assert!(
        closed_by_server(&mut held[0]),
        "the longest-idle one made room"
    );
    assert!(asks_over(&mut held[1]), "the others are kept");
    let metrics = geodns.admin_get("/metrics");
    assert!(
        metrics.contains("dns_tcp_connections_evicted_total{reason=\"longest_idle\"} 1"),
        "{metrics}"
    );
}

#[test]
fn one_client_cannot_hold_more_than_its_tcp_connections() {
    let address = IpAddr::V4(unique_loopback());
    let dns = SocketAddr::new(address, 5300);
    let admin = SocketAddr::new(address, 9300);
    let text = config(dns, admin, EDGES, "").replace(
        "tcp_max_connections = 8\n",
        "tcp_max_connections = 8\ntcp_max_connections_per_client = 3\n",
    );
    let geodns = Geodns::start_logging(dns, admin, &text, Some("info"));
    let (greedy, other) = (IpAddr::V4(unique_loopback()), IpAddr::V4(unique_loopback()));
    let mut bystander = kept_alive(geodns.dns, other);
    let mut greedy: Vec<TcpStream> = (0..4).map(|_| kept_alive(geodns.dns, greedy)).collect();
    assert!(closed_by_server(&mut greedy[0]), "its own oldest one goes");
    assert!(asks_over(&mut greedy[3]));
    assert!(
        asks_over(&mut bystander),
        "another client keeps its connection"
    );
    let metrics = geodns.admin_get("/metrics");
    assert!(
        metrics.contains("dns_tcp_connections_evicted_total{reason=\"per_client\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_flood_from_one_prefix_is_rate_limited_with_slips_while_other_prefixes_are_answered() {
    let address = IpAddr::V4(unique_loopback());
    let dns = SocketAddr::new(address, 5300);
    let admin = SocketAddr::new(address, 9300);
    // Loopback is exempt by default; here it stands for the internet.
    let extra = "[server.rate_limit]\nresponses_per_second = 10\nslip = 2\nexempt = []\n";
    let geodns = Geodns::start_with(dns, admin, &config(dns, admin, EDGES, extra));
    let query = Ask::new("static.cdn.test", RecordType::A)
        .message()
        .to_vec()
        .unwrap();

    let flooder = UdpSocket::bind("127.77.1.50:0").unwrap();
    flooder
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = std::time::Instant::now();
    const SENT: usize = 300;
    for _ in 0..SENT {
        flooder.send_to(&query, dns).unwrap();
    }
    let (mut answered, mut truncated) = (0, 0);
    let mut buffer = [0u8; 4096];
    while let Ok((length, _)) = flooder.recv_from(&mut buffer) {
        let reply = hickory_proto::op::Message::from_vec(&buffer[..length]).expect("decodes");
        if reply.metadata.truncation {
            assert!(reply.answers.is_empty());
            assert_eq!(reply.queries.len(), 1, "the question stays");
            truncated += 1;
        } else {
            assert_eq!(reply.answers.len(), 1);
            answered += 1;
        }
    }
    let seconds = started.elapsed().as_secs() as usize;
    assert!(
        answered >= 10 && answered <= 10 * (seconds + 2),
        "{answered} full answers in {seconds} s"
    );
    let limited = SENT - answered;
    assert!(
        truncated >= limited / 2 - 10 && truncated <= limited / 2 + 10,
        "{truncated} of {limited} limited responses slipped"
    );
    assert!(sample(&geodns, "dns_rate_limit_dropped_total") >= (limited / 2 - 10) as u64);
    assert_eq!(
        sample(&geodns, "dns_rate_limit_slipped_total"),
        truncated as u64
    );

    // Another prefix is unaffected, and the flooded one gets its answer
    // over TCP, which is never limited.
    let other = UdpSocket::bind("127.77.2.50:0").unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    other.send_to(&query, dns).unwrap();
    let (length, _) = other.recv_from(&mut buffer).expect("answered");
    let reply = hickory_proto::op::Message::from_vec(&buffer[..length]).unwrap();
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 1);
    let tcp = e2e::dns::ask_tcp(dns, &Ask::new("static.cdn.test", RecordType::A));
    assert_eq!(tcp.answers.len(), 1);
}

#[test]
fn a_client_with_our_server_cookie_is_never_rate_limited() {
    let address = IpAddr::V4(unique_loopback());
    let dns = SocketAddr::new(address, 5300);
    let admin = SocketAddr::new(address, 9300);
    let extra = "[server.rate_limit]\nresponses_per_second = 5\nslip = 1\nexempt = []\n";
    let geodns = Geodns::start_with(dns, admin, &config(dns, admin, EDGES, extra));
    let socket = UdpSocket::bind("127.77.3.50:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let ask = Ask::new("static.cdn.test", RecordType::A);
    let client = [8, 7, 6, 5, 4, 3, 2, 1];
    socket
        .send_to(&with_opt_rdata(&ask, &edns_option(10, &client)), dns)
        .unwrap();
    let mut buffer = [0u8; 4096];
    let (length, _) = socket.recv_from(&mut buffer).unwrap();
    let reply = hickory_proto::op::Message::from_vec(&buffer[..length]).unwrap();
    let cookie = match reply
        .edns
        .as_ref()
        .and_then(|edns| edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Cookie))
    {
        Some(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data)) => data.clone(),
        other => panic!("no cookie: {other:?}"),
    };
    let with_cookie = with_opt_rdata(&ask, &edns_option(10, &cookie));
    let without = with_opt_rdata(&ask, &edns_option(10, &client));
    for (query, limited) in [(&with_cookie, false), (&without, true)] {
        for _ in 0..50 {
            socket.send_to(query, dns).unwrap();
        }
        let mut truncated = 0;
        while let Ok((length, _)) = socket.recv_from(&mut buffer) {
            let reply = hickory_proto::op::Message::from_vec(&buffer[..length]).unwrap();
            truncated += usize::from(reply.metadata.truncation);
        }
        if limited {
            assert!(truncated >= 40, "only {truncated} of 50 limited");
        } else {
            assert_eq!(truncated, 0, "a proven address was limited");
        }
    }
    assert!(sample(&geodns, "dns_rate_limit_slipped_total") >= 40);
}
