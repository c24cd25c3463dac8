//! What DNS checkers, secondaries and validating resolvers ask first: the
//! apex SOA and NS, serials that agree between servers, EDNS flags and
//! options echoed per RFC 3225, 6891 and 7871, and ECS scopes in the
//! family of the query, for clients in IPv6 ranges that embed IPv4 too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{Geodns, ap, config, reload, us};
use e2e::dns::{
    Ask, addresses, ask_tcp, ask_udp, edns_option, exchange_tcp, exchange_udp, reply_subnet,
    with_opt_rdata,
};
use e2e::process::{unique_loopback, wait_until};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const EDGES: &[(&str, &str, &str)] = &[("eu-1", "eu", ""), ("us-1", "us", ""), ("ap-1", "ap", "")];

fn addresses_for_new_server() -> (SocketAddr, SocketAddr) {
    let address = IpAddr::V4(unique_loopback());
    (
        SocketAddr::new(address, 5300),
        SocketAddr::new(address, 9300),
    )
}

fn serial_of(message: &Message) -> u32 {
    match message.answers.first().map(|record| &record.data) {
        Some(RData::SOA(soa)) => soa.serial,
        other => panic!("no SOA in the answer: {other:?} ({message:?})"),
    }
}

#[test]
fn apex_soa_is_answered_over_udp_and_tcp() {
    let geodns = Geodns::start(EDGES, "");
    let ask = Ask::new("cdn.test", RecordType::SOA);
    for reply in [ask_udp(geodns.dns, &ask), ask_tcp(geodns.dns, &ask)] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert_eq!(reply.answers.len(), 1, "{reply:?}");
        assert_eq!(serial_of(&reply), 42);
        assert!(reply.authorities.is_empty(), "not a negative answer");
    }
    // Case does not matter, and the second UDP answer comes from the cache.
    let again = ask_udp(geodns.dns, &Ask::new("CDN.test", RecordType::SOA));
    assert_eq!(serial_of(&again), 42);
}

#[test]
fn apex_soa_from_a_zone_file_is_answered() {
    let files = tempfile::tempdir().unwrap();
    let zone_file = files.path().join("file.test.zone");
    std::fs::write(
        &zone_file,
        "$TTL 300\n@ IN SOA ns1.file.test. hostmaster.file.test. 2026120301 3600 900 604800 60\n\
         @ IN NS ns1.file.test.\nns1 IN A 192.0.2.54\n",
    )
    .unwrap();
    let (dns, admin) = addresses_for_new_server();
    let text = format!(
        "{}\n[zones.\"file.test\"]\nfile = \"{}\"\n",
        config(dns, admin, EDGES, ""),
        zone_file.display()
    );
    let geodns = Geodns::start_with(dns, admin, &text);
    let ask = Ask::new("file.test", RecordType::SOA);
    for reply in [ask_udp(geodns.dns, &ask), ask_tcp(geodns.dns, &ask)] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(serial_of(&reply), 2026120301);
    }
}

#[test]
fn apex_ns_answer_carries_glue() {
    let geodns = Geodns::start(EDGES, "");
    let reply = ask_udp(geodns.dns, &Ask::new("cdn.test", RecordType::NS));
    assert_eq!(reply.answers.len(), 1);
    let glue: Vec<_> = reply
        .additionals
        .iter()
        .filter_map(|record| record.data.ip_addr())
        .collect();
    assert_eq!(glue, ["192.0.2.53".parse::<IpAddr>().unwrap()]);
}

#[test]
fn serial_without_configuration_agrees_between_servers_and_moves_forward() {
    let unset = |text: String| text.replace("serial = 42, ", "");
    let (dns_a, admin_a) = addresses_for_new_server();
    let (dns_b, admin_b) = addresses_for_new_server();
    let first = Geodns::start_with(dns_a, admin_a, &unset(config(dns_a, admin_a, EDGES, "")));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = Geodns::start_with(dns_b, admin_b, &unset(config(dns_b, admin_b, EDGES, "")));
    let ask = Ask::new("cdn.test", RecordType::SOA);
    let serial = serial_of(&ask_udp(first.dns, &ask));
    assert_eq!(
        serial,
        serial_of(&ask_udp(second.dns, &ask)),
        "same content, same serial, whenever it was loaded"
    );

    // New content: the serial moves forward in RFC 1982 terms.
    let changed = unset(config(dns_a, admin_a, EDGES, "")).replace("192.0.2.80", "192.0.2.81");
    reload(&first, &changed);
    let moved = wait_until(std::time::Duration::from_secs(5), || {
        serial_of(&ask_udp(first.dns, &ask)) != serial
    });
    assert!(moved, "serial unchanged after a content change");
    let new_serial = serial_of(&ask_udp(first.dns, &ask));
    assert!(
        new_serial.wrapping_sub(serial) < 1 << 31,
        "{new_serial} is not after {serial}"
    );
}

#[test]
fn do_bit_is_copied_on_the_full_and_the_cached_path() {
    let geodns = Geodns::start(EDGES, "");
    let mut with_do = Ask::new("static.cdn.test", RecordType::A);
    with_do.dnssec_ok = true;
    let without_do = Ask::new("static.cdn.test", RecordType::A);
    // The first UDP answer is computed, the later ones come from the cache.
    for round in 0..3 {
        let reply = ask_udp(geodns.dns, &with_do);
        assert!(
            reply.edns.as_ref().unwrap().flags().dnssec_ok,
            "DO missing (round {round})"
        );
        let reply = ask_udp(geodns.dns, &without_do);
        assert!(
            !reply.edns.as_ref().unwrap().flags().dnssec_ok,
            "DO set unasked (round {round})"
        );
    }
    let reply = ask_tcp(geodns.dns, &with_do);
    assert!(reply.edns.unwrap().flags().dnssec_ok, "DO missing over TCP");
}

/// A query for `www.cdn.test` whose OPT record holds exactly `option` as ECS data.
fn with_ecs_data(option: &[u8]) -> Vec<u8> {
    with_opt_rdata(
        &Ask::new("www.cdn.test", RecordType::A),
        &edns_option(8, option),
    )
}

#[test]
fn malformed_ecs_gets_formerr_with_opt_and_question() {
    let geodns = Geodns::start(EDGES, "");
    let cases: [(&str, &[u8]); 3] = [
        // 198.51.100.0/24 sent with four octets: RFC 7871 section 6.
        ("extra address octet", &[0, 1, 24, 0, 198, 51, 100, 0]),
        ("unknown family", &[0, 3, 24, 0, 198, 51, 100]),
        ("prefix too long", &[0, 1, 33, 0, 198, 51, 100, 0, 0]),
    ];
    for (what, option) in cases {
        let query = with_ecs_data(option);
        let udp = exchange_udp(geodns.dns, &query).expect("reply");
        let tcp = exchange_tcp(geodns.dns, &query).expect("reply");
        for (transport, reply) in [("udp", udp), ("tcp", tcp)] {
            assert!(reply.len() > 12, "{what} over {transport}: bare header");
            let reply = Message::from_vec(&reply).unwrap();
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::FormErr,
                "{what} over {transport}"
            );
            assert_eq!(reply.queries.len(), 1, "{what} over {transport}: question");
            assert!(reply.edns.is_some(), "{what} over {transport}: OPT");
            assert!(reply.answers.is_empty());
        }
    }
    // The same option done right is answered.
    let reply = exchange_udp(geodns.dns, &with_ecs_data(&[0, 1, 24, 0, 198, 51, 100])).unwrap();
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&reply), [us()]);
}

#[test]
fn v4_mapped_ecs_scope_is_in_the_option_family() {
    let geodns = Geodns::start(EDGES, "");
    let v4 = ask_udp(
        geodns.dns,
        &Ask::new("www.cdn.test", RecordType::A).subnet("198.51.100.0", 24),
    );
    let (_, _, v4_scope) = reply_subnet(&v4).unwrap();
    let mapped = Ask::new("www.cdn.test", RecordType::A).subnet("::ffff:198.51.100.0", 120);
    for reply in [
        ask_udp(geodns.dns, &mapped),
        ask_udp(geodns.dns, &mapped),
        ask_tcp(geodns.dns, &mapped),
    ] {
        assert_eq!(addresses(&reply), [us()]);
        let (address, source, scope) = reply_subnet(&reply).unwrap();
        assert!(address.is_ipv6(), "family of the option kept");
        assert_eq!(source, 120);
        assert_eq!(scope, 96 + v4_scope, "IPv4 scope /{v4_scope} in IPv6 terms");
    }
}

#[test]
fn teredo_and_6to4_clients_are_placed_by_their_ipv4_address() {
    let geodns = Geodns::start(EDGES, "");
    // 203.0.113.5 (Japan): in 6to4 as 2002:cb00:7105::/48, in Teredo as
    // its inverse 0x34ff8efa in the last 32 bits.
    let cases = [
        ("2002:cb00:7105::", 48, 16),
        ("2001:0:4136:e378:8000:63bf:34ff:8efa", 128, 96),
    ];
    for (client, source, offset) in cases {
        let ask = Ask::new("www.cdn.test", RecordType::A).subnet(client, source);
        let replies = [
            ask_udp(geodns.dns, &ask),
            ask_udp(geodns.dns, &ask),
            ask_tcp(geodns.dns, &ask),
        ];
        for reply in &replies {
            assert_eq!(addresses(reply), [ap()], "{client}");
            let (_, _, scope) = reply_subnet(reply).unwrap();
            assert!(
                scope >= offset,
                "{client}: scope /{scope} leaves the alias range"
            );
        }
        let explain: serde_json::Value =
            serde_json::from_str(&geodns.admin_get(&format!("/explain?ip={client}"))).unwrap();
        assert_eq!(
            explain["services"][0]["answers"][0]["chosen"][0], "ap-1",
            "{client}: {explain}"
        );
    }
}

#[test]
fn ipv6_scopes_never_take_in_an_alias_range() {
    let geodns = Geodns::start(EDGES, "");
    // 2001:1::/48 is next to Teredo (2001::/32): a scope of /31 or wider
    // would let resolvers reuse this answer for Teredo clients.
    let ask = Ask::new("www.cdn.test", RecordType::A).subnet("2001:1::", 48);
    for reply in [ask_udp(geodns.dns, &ask), ask_tcp(geodns.dns, &ask)] {
        let (_, _, scope) = reply_subnet(&reply).unwrap();
        assert!(scope >= 32, "scope /{scope} covers Teredo");
    }
}

/// The NSID option's payload in `reply`, if it has one.
fn nsid_of(reply: &[u8]) -> Option<Vec<u8>> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let message = Message::from_vec(reply).expect("reply decodes");
    match message.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(payload) => Some(payload.as_ref().to_vec()),
        _ => None,
    }
}

/// A CHAOS TXT query for `name` over UDP.
fn ask_chaos(server: SocketAddr, name: &str) -> Message {
    let mut message = Ask::new(name, RecordType::TXT).without_edns().message();
    message.queries[0].query_class = hickory_proto::rr::DNSClass::CH;
    let reply = exchange_udp(server, &message.to_vec().unwrap()).expect("reply");
    Message::from_vec(&reply).unwrap()
}

fn txt_of(reply: &Message) -> String {
    match &reply.answers[0].data {
        RData::TXT(txt) => txt.to_string(),
        other => panic!("not TXT: {other:?}"),
    }
}

#[test]
fn identity_in_nsid_and_chaos_names_when_configured() {
    let (dns, admin) = addresses_for_new_server();
    let with = |extra: &str| {
        config(dns, admin, EDGES, "").replacen(
            "tcp_max_connections = 8\n",
            &format!("tcp_max_connections = 8\n{extra}"),
            1,
        )
    };
    let geodns = Geodns::start_with(dns, admin, &with("identity = \"ns1-test\"\n"));
    let ask = Ask::new("www.cdn.test", RecordType::A).subnet("192.0.2.0", 24);
    let asking = with_opt_rdata(
        &Ask::new("www.cdn.test", RecordType::A),
        &edns_option(3, &[]),
    );
    // Asked for, over UDP (twice: the second could come from the answer
    // cache) and TCP; never to queries that did not ask.
    for _ in 0..2 {
        let reply = exchange_udp(geodns.dns, &asking).expect("reply");
        assert_eq!(nsid_of(&reply).as_deref(), Some(&b"ns1-test"[..]));
    }
    let reply = exchange_tcp(geodns.dns, &asking).expect("reply");
    assert_eq!(nsid_of(&reply).as_deref(), Some(&b"ns1-test"[..]));
    let plain = exchange_udp(geodns.dns, &ask.message().to_vec().unwrap()).expect("reply");
    assert_eq!(nsid_of(&plain), None);

    for name in ["id.server", "hostname.bind", "ID.Server"] {
        let reply = ask_chaos(geodns.dns, name);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{name}"
        );
        assert_eq!(txt_of(&reply), "ns1-test");
        assert_eq!(reply.answers[0].dns_class, hickory_proto::rr::DNSClass::CH);
    }
    // No version configured: refused, as is any other CHAOS name.
    for name in ["version.bind", "authors.bind"] {
        let reply = ask_chaos(geodns.dns, name);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::Refused,
            "{name}"
        );
    }
    // Both apply at a reload.
    reload(
        &geodns,
        &with("identity = \"ns1-new\"\nversion = \"geodns test\"\n"),
    );
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        let reply = ask_chaos(geodns.dns, "version.bind");
        reply.metadata.response_code == ResponseCode::NoError && txt_of(&reply) == "geodns test"
    }));
    let reply = exchange_udp(geodns.dns, &asking).expect("reply");
    assert_eq!(nsid_of(&reply).as_deref(), Some(&b"ns1-new"[..]));
    assert!(!geodns.log().contains("take effect at the next restart"));
}

/// The COOKIE option's data in `reply`, if it has one.
fn cookie_of(reply: &[u8]) -> Option<Vec<u8>> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let message = Message::from_vec(reply).expect("reply decodes");
    match message.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        other => panic!("COOKIE decoded as {other:?}"),
    }
}

#[test]
fn server_cookies_are_given_to_every_query_with_a_client_cookie() {
    let geodns = Geodns::start(EDGES, "");
    let client = [1, 2, 3, 4, 5, 6, 7, 8];
    for name in ["static.cdn.test", "www.cdn.test"] {
        let ask = Ask::new(name, RecordType::A);
        let query = with_opt_rdata(&ask, &edns_option(10, &client));
        // The first answer takes the full path, the second the answer cache.
        let mut server = Vec::new();
        for _ in 0..2 {
            let reply = exchange_udp(geodns.dns, &query).expect("reply");
            let cookie = cookie_of(&reply).expect("a COOKIE option");
            assert_eq!(cookie.len(), 24, "client and server cookie");
            assert_eq!(&cookie[..8], &client, "the client cookie comes back");
            assert_eq!(cookie[8], 1, "RFC 9018 version 1");
            assert_eq!(Message::from_vec(&reply).unwrap().answers.len(), 1);
            server = cookie[8..].to_vec();
        }
        // Sent back, our server cookie is accepted and renewed.
        let returning = with_opt_rdata(&ask, &edns_option(10, &[&client[..], &server].concat()));
        for reply in [
            exchange_udp(geodns.dns, &returning).expect("reply"),
            exchange_tcp(geodns.dns, &returning).expect("reply"),
        ] {
            assert_eq!(&cookie_of(&reply).expect("a COOKIE option")[..8], &client);
        }
        // No cookie, no COOKIE.
        let plain = exchange_udp(geodns.dns, &ask.message().to_vec().unwrap()).expect("reply");
        assert_eq!(cookie_of(&plain), None);
    }
    // RFC 7873 section 5.2.2: a length other than 8 or 16 to 40 is FORMERR.
    for length in [5, 12, 41] {
        let ask = Ask::new("static.cdn.test", RecordType::A);
        let query = with_opt_rdata(&ask, &edns_option(10, &vec![9; length]));
        let reply = Message::from_vec(&exchange_udp(geodns.dns, &query).expect("reply")).unwrap();
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::FormErr,
            "{length}"
        );
        assert!(reply.edns.is_some(), "FORMERR to EDNS carries OPT");
    }
}

/// The next NOTIFY the fake secondary receives within `limit`, with where it
/// came from; `None` when nothing comes.
fn next_notify(
    secondary: &std::net::UdpSocket,
    limit: std::time::Duration,
) -> Option<(Message, SocketAddr)> {
    secondary.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 4096];
    let (length, from) = secondary.recv_from(&mut buffer).ok()?;
    Some((Message::from_vec(&buffer[..length]).unwrap(), from))
}

fn soa_serial(message: &Message) -> u32 {
    match &message.answers[0].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("not an SOA: {other:?}"),
    }
}

fn acknowledge(secondary: &std::net::UdpSocket, notify: &Message, to: SocketAddr) {
    let mut reply = Message::new(
        notify.metadata.id,
        hickory_proto::op::MessageType::Response,
        hickory_proto::op::OpCode::Notify,
    );
    reply.queries = notify.queries.clone();
    reply.metadata.authoritative = true;
    secondary.send_to(&reply.to_vec().unwrap(), to).unwrap();
}

#[test]
fn secondaries_get_a_notify_at_start_and_when_the_serial_changes_until_they_answer() {
    let secondary =
        std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(unique_loopback()), 5399)).unwrap();
    let (dns, admin) = addresses_for_new_server();
    let with_notify = |serial: u32| {
        config(dns, admin, EDGES, "")
            .replace(
                "ns = [\"ns1.cdn.test\"]",
                &format!(
                    "ns = [\"ns1.cdn.test\"]\nnotify = [\"{}\"]",
                    secondary.local_addr().unwrap()
                ),
            )
            .replace("serial = 42", &format!("serial = {serial}"))
    };
    let geodns = Geodns::start_with(dns, admin, &with_notify(42));
    let seconds = std::time::Duration::from_secs;

    // At start: a NOTIFY for the zone's SOA, with the SOA as a hint.
    let (first, _) = next_notify(&secondary, seconds(5)).expect("NOTIFY at start");
    assert_eq!(first.metadata.op_code, hickory_proto::op::OpCode::Notify);
    assert!(first.metadata.authoritative);
    assert_eq!(first.queries[0].name().to_ascii(), "cdn.test.");
    assert_eq!(first.queries[0].query_type(), RecordType::SOA);
    assert_eq!(soa_serial(&first), 42);
    // Unanswered, it is sent again (same message) after the timeout.
    let (again, from_again) = next_notify(&secondary, seconds(5)).expect("NOTIFY retried");
    assert_eq!(again.metadata.id, first.metadata.id);
    acknowledge(&secondary, &again, from_again);
    assert!(wait_until(seconds(3), || geodns
        .admin_get("/metrics")
        .contains("dns_notify_total{result=\"acknowledged\"} 1")));
    // Acknowledged: no more retries.
    assert!(next_notify(&secondary, seconds(3)).is_none());

    // A reload that changes the serial notifies again; one that does not, not.
    reload(&geodns, &with_notify(43));
    let (changed, from) = next_notify(&secondary, seconds(5)).expect("NOTIFY after reload");
    assert_eq!(soa_serial(&changed), 43);
    acknowledge(&secondary, &changed, from);
    reload(&geodns, &with_notify(43));
    assert!(wait_until(seconds(5), || geodns
        .admin_get("/metrics")
        .contains("config_reloads_total{result=\"success\"} 2")));
    assert!(next_notify(&secondary, seconds(3)).is_none());
    assert!(
        geodns
            .admin_get("/metrics")
            .contains("dns_notify_total{result=\"acknowledged\"} 2")
    );
}
