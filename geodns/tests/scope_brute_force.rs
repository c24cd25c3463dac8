//! ECS scopes checked against a brute-force walk of the real GeoLite2 City
//! database: every block we claim must give one answer throughout, and the
//! block twice as large must not, under any health state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::Path;

use geodns::answer::{GeoDecision, decide};
use geodns::cluster::ClusterView;
use geodns::geo::{Family, select};
use geodns::health::HealthTable;
use geodns::metrics::DnsMetrics;
use geodns::snapshot::Snapshot;
use geoip::GeoDb;
use ipnet::IpNet;
use shared::EdgeStatus;
use tokio_util::sync::CancellationToken;

fn snapshot(database: &Path) -> (Snapshot, HealthTable) {
    let config = format!(
        r#"
[geoip]
databases = ["{}"]

[zones."cdn.test"]
soa = {{ mname = "ns.other.net", rname = "h.cdn.test" }}
ns = ["ns.other.net"]

[services.www]
zone = "cdn.test"
names = ["www"]
answers = 2

[[services.www.edges]]
name = "ams"
region = "eu"
location = {{ latitude = 52.37, longitude = 4.90 }}
ipv4 = ["192.0.2.1"]
ipv6 = ["2001:db8::1"]
health = "http://192.0.2.1/healthz"

[[services.www.edges]]
name = "iad"
region = "us"
location = {{ latitude = 39.04, longitude = -77.49 }}
ipv4 = ["192.0.2.2"]
ipv6 = ["2001:db8::2"]

[[services.www.edges]]
name = "sfo"
region = "us"
location = {{ latitude = 37.77, longitude = -122.42 }}
ipv4 = ["192.0.2.3"]
ipv6 = ["2001:db8::3"]

[[services.www.edges]]
name = "sin"
region = "ap"
location = {{ latitude = 1.35, longitude = 103.82 }}
ipv4 = ["192.0.2.4"]
ipv6 = ["2001:db8::4"]
"#,
        database.display()
    );
    let config = shared::config::parse("scope-test.toml", &config).unwrap();
    let metrics = DnsMetrics::register(&mut prometheus_client::registry::Registry::default());
    let health = HealthTable::new(metrics.clone(), CancellationToken::new());
    let snapshot = Snapshot::build(
        config,
        Path::new("."),
        &health,
        &metrics,
        &ClusterView::default(),
    )
    .unwrap();
    (snapshot, health)
}

/// Whether every database network inside `block` gets `edges`.
fn uniform(
    database: &GeoDb,
    snapshot: &Snapshot,
    family: Family,
    block: IpNet,
    edges: &[usize],
) -> bool {
    let service = &snapshot.services[0];
    database
        .networks_within(block)
        .unwrap()
        .all(|found| select(service, found.unwrap().location.as_ref(), family).edges == edges)
}

fn decide_now(
    snapshot: &Snapshot,
    health: &HealthTable,
    family: Family,
    ip: IpAddr,
) -> GeoDecision {
    let answers = snapshot.geo.answers(&snapshot.services, health.epoch());
    decide(&answers, 0, family, ip).unwrap()
}

/// Checks every scope; gives the scopes.
fn check(
    database: &GeoDb,
    snapshot: &Snapshot,
    health: &HealthTable,
    family: Family,
    addresses: impl Iterator<Item = IpAddr>,
) -> Vec<u8> {
    let mut scopes = Vec::new();
    for ip in addresses {
        let decision = decide_now(snapshot, health, family, ip);
        let edges = &decision.selection.edges;
        let block = IpNet::new(ip, decision.scope).unwrap().trunc();
        assert!(
            uniform(database, snapshot, family, block, edges),
            "{ip}: scope /{} is not uniform",
            decision.scope
        );
        assert!(
            decision.scope == 0
                || !uniform(database, snapshot, family, block.supernet().unwrap(), edges),
            "{ip}: scope /{} is not maximal",
            decision.scope
        );
        scopes.push(decision.scope);
    }
    scopes
}

fn ipv4_sample(count: usize) -> impl Iterator<Item = IpAddr> {
    let mut state = 0x1357_9bdf_u32;
    (0..count).map(move |_| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        IpAddr::V4(state.into())
    })
}

fn ipv6_sample(count: usize) -> impl Iterator<Item = IpAddr> {
    let mut state = 0x2468_ace0_u64;
    (0..count).map(move |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Inside 2000::/3, where the allocations are; outside Teredo and 6to4.
        let high = 0x2400_0000_0000_0000_u64 | (state >> 6);
        IpAddr::V6(((u128::from(high)) << 64).into())
    })
}

#[test]
fn scopes_are_uniform_and_maximal_on_geolite2() {
    let databases = e2e::geo_databases::real_databases();
    let database = GeoDb::open(&databases.geolite2_city).unwrap();
    let (snapshot, health) = snapshot(&databases.geolite2_city);
    let mut scopes = check(&database, &snapshot, &health, Family::V4, ipv4_sample(300));
    scopes.sort_unstable();
    let median = scopes[scopes.len() / 2];
    eprintln!("IPv4: median scope /{median} over {}", scopes.len());
    // Merging must widen well beyond single database networks (GeoLite2's median is /22 or so).
    assert!(median <= 18, "median scope /{median}");
    let scopes = check(&database, &snapshot, &health, Family::V6, ipv6_sample(100));
    eprintln!("IPv6: {} scopes, all maximal", scopes.len());
}

/// When an edge goes down, the answers and their scopes follow at once:
/// the blocks that went to it merge with their neighbours.
#[test]
fn scopes_follow_health_changes() {
    let databases = e2e::geo_databases::real_databases();
    let database = GeoDb::open(&databases.geolite2_city).unwrap();
    let (snapshot, health) = snapshot(&databases.geolite2_city);
    let ripe: IpAddr = "193.0.0.1".parse().unwrap();
    let before = decide_now(&snapshot, &health, Family::V4, ripe);
    assert_eq!(
        snapshot.services[0].edges[before.selection.edges[0]].name,
        "ams"
    );
    let ams = snapshot.services[0].edges[0].health.clone().unwrap();
    assert!(ams.set_status(EdgeStatus::Down));
    let after = decide_now(&snapshot, &health, Family::V4, ripe);
    assert!(
        !after.selection.edges.contains(&0),
        "a down edge is not answered: {:?}",
        after.selection
    );
    assert!(
        after.scope <= before.scope,
        "/{} then /{}",
        before.scope,
        after.scope
    );
    check(&database, &snapshot, &health, Family::V4, ipv4_sample(100));
    check(&database, &snapshot, &health, Family::V6, ipv6_sample(50));
}

/// A two-edge service over the given DB-IP files.
fn dbip_snapshot(files: &[&Path]) -> Snapshot {
    let databases = files
        .iter()
        .map(|path| format!("\"{}\"", path.display()))
        .collect::<Vec<_>>()
        .join(", ");
    let config = format!(
        r#"
[geoip]
databases = [{databases}]

[zones."cdn.test"]
soa = {{ mname = "ns.other.net", rname = "h.cdn.test" }}
ns = ["ns.other.net"]

[services.www]
zone = "cdn.test"
names = ["www"]

[[services.www.edges]]
name = "ams"
location = {{ latitude = 52.37, longitude = 4.90 }}
ipv4 = ["192.0.2.1"]
ipv6 = ["2001:db8::1"]

[[services.www.edges]]
name = "iad"
location = {{ latitude = 39.04, longitude = -77.49 }}
ipv4 = ["192.0.2.2"]
ipv6 = ["2001:db8::2"]
"#
    );
    let config = shared::config::parse("dbip.toml", &config).unwrap();
    let metrics = DnsMetrics::register(&mut prometheus_client::registry::Registry::default());
    let health = HealthTable::new(metrics.clone(), CancellationToken::new());
    Snapshot::build(
        config,
        Path::new("."),
        &health,
        &metrics,
        &ClusterView::default(),
    )
    .unwrap()
}

#[test]
fn dbip_split_files_place_clients_in_both_families() {
    let databases = e2e::geo_databases::real_databases();
    let snapshot = dbip_snapshot(&[&databases.dbip_flat_ipv4, &databases.dbip_flat_ipv6]);
    for (client, family, expected) in [
        ("193.0.0.1", Family::V4, "ams"),
        ("2001:67c:2e8::1", Family::V6, "ams"),
        ("8.8.8.8", Family::V4, "iad"),
    ] {
        let decision = decide(
            &snapshot.geo.answers(&snapshot.services, 0),
            0,
            family,
            client.parse().unwrap(),
        )
        .unwrap();
        let chosen = &snapshot.services[0].edges[decision.selection.edges[0]].name;
        assert_eq!(chosen, expected, "{client}");
        assert!(decision.scope > 0, "{client}");
    }
}

/// The IPv6 file of DB-IP holds no IPv4 records, so IPv4 clients are merged
/// over the IPv4 file alone: the same scopes as with that file by itself.
#[test]
fn dbip_split_files_merge_ipv4_scopes_as_the_ipv4_file_alone_does() {
    let databases = e2e::geo_databases::real_databases();
    let both = dbip_snapshot(&[&databases.dbip_flat_ipv4, &databases.dbip_flat_ipv6]);
    let alone = dbip_snapshot(&[&databases.dbip_flat_ipv4]);
    let mut state = 0x0bad_f00d_u32;
    let mut scopes = Vec::new();
    for _ in 0..200 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let ip = IpAddr::V4(state.into());
        let with_both = decide(&both.geo.answers(&both.services, 0), 0, Family::V4, ip).unwrap();
        let with_one = decide(&alone.geo.answers(&alone.services, 0), 0, Family::V4, ip).unwrap();
        assert_eq!(
            (with_both.selection.edges, with_both.scope),
            (with_one.selection.edges, with_one.scope),
            "{ip}"
        );
        scopes.push(with_both.scope);
    }
    scopes.sort_unstable();
    let median = scopes[scopes.len() / 2];
    eprintln!("DB-IP IPv4 with both files: median scope /{median}");
    assert!(median <= 18, "median scope /{median}");
}
