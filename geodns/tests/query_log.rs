//! The dnstap query log of the real binary, read back with BIND's
//! `dnstap-read`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Geodns;
use e2e::dns::{Ask, ask_tcp, ask_udp};
use hickory_proto::rr::RecordType;

const EDGES: &[(&str, &str, &str)] = &[("eu-1", "eu", ""), ("us-1", "us", "")];

fn metric(geodns: &Geodns, name: &str) -> u64 {
    geodns
        .admin_get("/metrics")
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn responses_are_logged_in_dnstap_with_clients_cut_to_their_prefix() {
    if Command::new("dnstap-read").arg("-h").output().is_err() {
        e2e::requirements::missing("dnstap-read", "apt-get install bind9-dnsutils");
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let path = logs.path().join("geodns.dnstap");
    let mut geodns = Geodns::start(
        EDGES,
        &format!(
            "\n[dnstap]\npath = \"{}\"\nidentity = \"ns-test\"\n",
            path.display()
        ),
    );
    for _ in 0..5 {
        ask_udp(geodns.dns, &Ask::new("www.cdn.test", RecordType::A));
    }
    ask_tcp(geodns.dns, &Ask::new("www.cdn.test", RecordType::AAAA));
    assert!(
        e2e::process::wait_until(Duration::from_secs(3), || metric(
            &geodns,
            "dns_dnstap_written_total"
        ) >= 6),
        "{}",
        geodns.admin_get("/metrics")
    );
    assert_eq!(metric(&geodns, "dns_dnstap_dropped_total"), 0);
    let written = metric(&geodns, "dns_dnstap_written_total");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "the log is readable by everyone: {mode:o}");

    // The stream is closed at shutdown, so that readers see its end.
    geodns.process.signal("TERM");
    assert!(
        geodns
            .process
            .wait_timeout(Duration::from_secs(10))
            .is_some(),
        "geodns did not stop:\n{}",
        geodns.log()
    );
    let read = Command::new("dnstap-read")
        .arg("-y")
        .arg(&path)
        .output()
        .unwrap();
    let yaml = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "dnstap-read failed: {}\n{yaml}",
        String::from_utf8_lossy(&read.stderr)
    );
    let messages = yaml.matches("type: AUTH_RESPONSE").count() as u64;
    assert!(messages >= written, "{messages} of {written} read:\n{yaml}");
    assert!(yaml.contains("identity: ns-test"), "{yaml}");
    assert!(yaml.contains("socket_protocol: UDP"), "{yaml}");
    assert!(yaml.contains("socket_protocol: TCP"), "{yaml}");
    assert!(yaml.contains("www.cdn.test"), "{yaml}");
    // Clients on 127.0.0.1 appear as their /24, never whole.
    assert!(yaml.contains("query_address: \"127.0.0.0\""), "{yaml}");
    assert!(!yaml.contains("query_address: \"127.0.0.1\""), "{yaml}");
}
