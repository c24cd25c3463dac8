//! Geo answers from the real binary: nearest edges by ECS, scopes, health.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Geodns, ap, endpoint, eu, us};
use e2e::dns::{Ask, addresses, ask_udp, reply_subnet};
use e2e::health_endpoint::Mode;
use e2e::process::wait_until;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const EDGES: &[(&str, &str, &str)] = &[("eu-1", "eu", ""), ("us-1", "us", ""), ("ap-1", "ap", "")];

#[test]
fn ecs_from_each_region_gets_its_nearest_edge() {
    let geodns = Geodns::start(EDGES, "");
    assert_eq!(geodns.a_for("www.cdn.test", "192.0.2.0", 24), [eu()]);
    assert_eq!(geodns.a_for("www.cdn.test", "198.51.100.0", 24), [us()]);
    assert_eq!(geodns.a_for("www.cdn.test", "203.0.113.0", 24), [ap()]);
    // Wildcard geo names answer the same way.
    assert_eq!(geodns.a_for("cat.img.cdn.test", "203.0.113.0", 24), [ap()]);
    // IPv6 clients by their ECS.
    let reply = ask_udp(
        geodns.dns,
        &Ask::new("www.cdn.test", RecordType::AAAA).subnet("2001:db8:8000::", 48),
    );
    assert_eq!(
        addresses(&reply),
        ["fd00::13".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn ecs_scope_is_the_merged_uniform_block() {
    let geodns = Geodns::start(EDGES, "");
    let scope = |subnet: &str, prefix: u8| {
        let reply = ask_udp(
            geodns.dns,
            &Ask::new("www.cdn.test", RecordType::A).subnet(subnet, prefix),
        );
        let (address, source, scope) = reply_subnet(&reply).expect("ECS in reply");
        assert_eq!(
            (address, source),
            (subnet.parse().unwrap(), prefix),
            "echoed"
        );
        scope
    };
    // 10.0/16 (NL) and 10.1/16 (FR) both go to eu-1: merged into 10.0/15,
    // which 10.2/15 (US) bounds.
    assert_eq!(scope("10.0.5.0", 24), 15);
    assert_eq!(scope("10.1.200.0", 24), 15);
    assert_eq!(scope("10.2.3.0", 24), 15);
    // 192.0.2.0/24 is eu among unknown neighbours answered by the us fallback.
    assert_eq!(scope("192.0.2.0", 24), 24);
    // 198.51.100.0/24 (us) merges with the surrounding unknown space (us
    // fallback) up to the block that would take in 192.0.2.0 or 203.0.113.0.
    assert_eq!(scope("198.51.100.0", 24), 6);
    // A client more specific than a decided network still gets its scope.
    assert_eq!(scope("10.0.5.128", 25), 15);
}

#[test]
fn static_answers_have_scope_zero_and_no_ecs_means_no_ecs() {
    let geodns = Geodns::start(EDGES, "");
    let reply = ask_udp(
        geodns.dns,
        &Ask::new("static.cdn.test", RecordType::A).subnet("192.0.2.0", 24),
    );
    assert_eq!(
        reply_subnet(&reply),
        Some(("192.0.2.0".parse().unwrap(), 24, 0))
    );
    let reply = ask_udp(geodns.dns, &Ask::new("www.cdn.test", RecordType::A));
    assert_eq!(reply_subnet(&reply), None);
    assert!(reply.edns.is_some(), "EDNS echoed");
    let reply = ask_udp(
        geodns.dns,
        &Ask::new("www.cdn.test", RecordType::A).subnet("0.0.0.0", 0),
    );
    assert_eq!(reply_subnet(&reply).map(|(_, _, scope)| scope), Some(0));
}

#[test]
fn without_ecs_the_resolver_address_decides() {
    let geodns = Geodns::start(EDGES, "");
    // The test client is on loopback, which no database places: fallback region us.
    let reply = ask_udp(geodns.dns, &Ask::new("www.cdn.test", RecordType::A));
    assert_eq!(addresses(&reply), [us()]);
    assert_eq!(reply.answers[0].ttl, 20);
}

#[test]
fn answers_carry_the_configured_number_of_edges() {
    let geodns = Geodns::start(EDGES, "answers = 2");
    assert_eq!(geodns.a_for("www.cdn.test", "192.0.2.0", 24), [eu(), us()]);
}

#[test]
fn dead_edge_leaves_the_answers_and_comes_back_after_rise() {
    let mut eu_health = endpoint();
    let edges = [
        ("eu-1", "eu", eu_health.url()),
        ("us-1", "us", String::new()),
        ("ap-1", "ap", String::new()),
    ];
    let edges: Vec<(&str, &str, &str)> =
        edges.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
    let geodns = Geodns::start(&edges, "");
    assert_eq!(geodns.a_for("www.cdn.test", "192.0.2.0", 24), [eu()]);

    eu_health.stop();
    let started = std::time::Instant::now();
    // Detection: fall (2) x interval (200 ms) + timeout, well within 3 s.
    assert!(
        wait_until(Duration::from_secs(3), || geodns.a_for(
            "www.cdn.test",
            "192.0.2.0",
            24
        ) != [eu()]),
        "eu-1 still answered after its health endpoint died:\n{}",
        geodns.log()
    );
    let moved_after = started.elapsed();
    // Next nearest to Amsterdam is us-1.
    assert_eq!(geodns.a_for("www.cdn.test", "192.0.2.0", 24), [us()]);
    assert!(
        moved_after >= Duration::from_millis(200),
        "moved before two failed checks: {moved_after:?}"
    );

    eu_health.restart();
    assert!(
        wait_until(Duration::from_secs(3), || geodns.a_for(
            "www.cdn.test",
            "192.0.2.0",
            24
        ) == [eu()]),
        "eu-1 did not come back:\n{}",
        geodns.log()
    );
}

#[test]
fn hanging_health_endpoint_counts_as_down() {
    let eu_health = endpoint();
    let edges = [
        ("eu-1", "eu", eu_health.url()),
        ("us-1", "us", String::new()),
    ];
    let edges: Vec<(&str, &str, &str)> =
        edges.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
    let geodns = Geodns::start(&edges, "");
    eu_health.set(Mode::Hang);
    assert!(wait_until(Duration::from_secs(3), || geodns.a_for(
        "www.cdn.test",
        "192.0.2.0",
        24
    ) == [us()]));
}

#[test]
fn draining_edge_gets_no_new_clients() {
    let eu_health = endpoint();
    let edges = [
        ("eu-1", "eu", eu_health.url()),
        ("us-1", "us", String::new()),
    ];
    let edges: Vec<(&str, &str, &str)> =
        edges.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
    let geodns = Geodns::start(&edges, "");
    assert_eq!(geodns.a_for("www.cdn.test", "192.0.2.0", 24), [eu()]);
    eu_health.set(Mode::Draining);
    assert!(wait_until(Duration::from_secs(2), || geodns.a_for(
        "www.cdn.test",
        "192.0.2.0",
        24
    ) == [us()]));
    let status: serde_json::Value = serde_json::from_str(&geodns.admin_get("/status")).unwrap();
    assert_eq!(status["services"][0]["edges"][0]["status"], "draining");
    eu_health.set(Mode::Up);
    assert!(wait_until(Duration::from_secs(2), || geodns.a_for(
        "www.cdn.test",
        "192.0.2.0",
        24
    ) == [eu()]));
}

#[test]
fn saturated_edge_gets_no_new_clients_until_it_has_room() {
    let eu_health = endpoint();
    let us_health = endpoint();
    let edges = [
        ("eu-1", "eu", eu_health.url()),
        ("us-1", "us", us_health.url()),
    ];
    let edges: Vec<(&str, &str, &str)> =
        edges.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
    let geodns = Geodns::start(&edges, "");
    assert_eq!(geodns.a_for("www.cdn.test", "192.0.2.0", 24), [eu()]);
    eu_health.set(Mode::Saturated);
    assert!(wait_until(Duration::from_secs(3), || geodns.a_for(
        "www.cdn.test",
        "192.0.2.0",
        24
    ) == [us()]));
    let status: serde_json::Value = serde_json::from_str(&geodns.admin_get("/status")).unwrap();
    assert_eq!(status["services"][0]["edges"][0]["saturated"], true);
    assert!(geodns.admin_get("/metrics").contains("edge_saturated{"));
    // Every edge saturated: they are still answered, nearest first.
    us_health.set(Mode::Saturated);
    assert!(wait_until(Duration::from_secs(3), || geodns.a_for(
        "www.cdn.test",
        "192.0.2.0",
        24
    ) == [eu()]));
    eu_health.set(Mode::Up);
    us_health.set(Mode::Up);
    assert!(wait_until(Duration::from_secs(3), || {
        let status: serde_json::Value = serde_json::from_str(&geodns.admin_get("/status")).unwrap();
        status["services"][0]["edges"][0]["saturated"] == false
    }));
}

#[test]
fn every_edge_down_fails_open() {
    let eu_health = endpoint();
    let us_health = endpoint();
    let edges = [
        ("eu-1", "eu", eu_health.url()),
        ("us-1", "us", us_health.url()),
    ];
    let edges: Vec<(&str, &str, &str)> =
        edges.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
    let geodns = Geodns::start(&edges, "");
    eu_health.set(Mode::Error);
    us_health.set(Mode::Down);
    let metrics_show_fail_open = || {
        geodns
            .admin_get("/metrics")
            .contains("dns_geo_fail_open_total{service=\"www\"} ")
    };
    assert!(wait_until(Duration::from_secs(3), || {
        // Both down: answers continue, from the nearest as if all were up.
        geodns.a_for("www.cdn.test", "192.0.2.0", 24) == [eu()]
            && !geodns
                .admin_get("/metrics")
                .contains("dns_geo_fail_open_total{service=\"www\"} 0")
    }));
    assert!(metrics_show_fail_open());
    // Log lines are written off the query path, so they may trail the metric.
    assert!(
        wait_until(Duration::from_secs(3), || {
            let log = geodns.log();
            log.contains("edge is down") && log.contains("every edge of the service is down")
        }),
        "{}",
        geodns.log()
    );
}

#[test]
fn aaaa_for_an_ipv4_only_service_is_nodata_not_an_outage() {
    let address = std::net::IpAddr::V4(e2e::process::unique_loopback());
    let dns = std::net::SocketAddr::new(address, 5300);
    let admin = std::net::SocketAddr::new(address, 9300);
    let ipv4_only: String = common::config(dns, admin, EDGES, "")
        .lines()
        .filter(|line| !line.starts_with("ipv6 ="))
        .map(|line| format!("{line}\n"))
        .collect();
    let geodns = Geodns::start_with(dns, admin, &ipv4_only);
    for _ in 0..3 {
        let reply = ask_udp(
            geodns.dns,
            &Ask::new("www.cdn.test", RecordType::AAAA).subnet("192.0.2.0", 24),
        );
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
    }
    let metrics = geodns.admin_get("/metrics");
    assert!(
        metrics.contains("dns_geo_fail_open_total{service=\"www\"} 0")
            || !metrics.contains("dns_geo_fail_open_total{service=\"www\"}"),
        "{metrics}"
    );
    assert!(
        !geodns.log().contains("every edge of the service is down"),
        "{}",
        geodns.log()
    );
}

#[test]
fn every_configured_edge_has_a_health_gauge_from_the_start() {
    let eu_health = endpoint();
    let us_health = endpoint();
    let edges = [
        ("eu-1", "eu", eu_health.url()),
        ("us-1", "us", us_health.url()),
    ];
    let edges: Vec<(&str, &str, &str)> =
        edges.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
    let geodns = Geodns::start(&edges, "");
    // Both stay up: no change of state, yet both are on the dashboard.
    assert!(wait_until(Duration::from_secs(3), || {
        geodns
            .admin_get("/metrics")
            .contains("edge_health_checks_total{")
    }));
    let metrics = geodns.admin_get("/metrics");
    for (name, health) in [("eu-1", &eu_health), ("us-1", &us_health)] {
        // `edge` is the edge's name, as in dns_geo_answers_total; `url` what is checked.
        let labels = format!("edge=\"{name}\",url=\"{}\"", health.url());
        assert!(
            metrics.contains(&format!("edge_health_status{{{labels}}} 0")),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "edge_health_checks_total{{{labels},result=\"success\"}}"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "dns_geo_answers_total{{service=\"www\",edge=\"{name}\",reason=\"nearest\"}}"
            )),
            "{metrics}"
        );
    }
}
