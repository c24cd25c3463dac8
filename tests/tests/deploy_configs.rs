//! The example configurations in deploy/ parse with the real config types,
//! so they cannot drift from the code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

#[test]
fn production_geodns_config_parses() {
    let config: geodns::config::Config =
        shared::config::load(deploy("production/geodns.toml")).unwrap();
    assert_eq!(config.services["www"].edges.len(), 3);
    assert_eq!(config.zones["cdn.example.com"].ns.len(), 2);
}

#[test]
fn production_overrides_parse() {
    let overrides: geoip::Overrides =
        shared::config::load(deploy("production/networks.toml")).unwrap();
    assert_eq!(overrides.len(), 2);
}

#[test]
fn production_and_demo_edge_configs_parse() {
    for file in [
        "production/edge.toml",
        "demo/edge-eu.toml",
        "demo/edge-us.toml",
        "demo/edge-ap.toml",
        "demo/cluster/edge-eu-2.toml",
        "demo/cluster/edge-eu-3.toml",
    ] {
        edge::daemon::load(&deploy(file)).unwrap_or_else(|error| panic!("{file}: {error}"));
    }
}

#[test]
fn cluster_demo_section_joins_every_config() {
    let section = std::fs::read_to_string(deploy("demo/cluster/cluster.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for file in ["edge-eu.toml", "edge-us.toml", "edge-ap.toml"] {
        let text = std::fs::read_to_string(deploy(&format!("demo/{file}"))).unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, format!("{text}\n{section}")).unwrap();
        let config = edge::daemon::load(&path).unwrap_or_else(|error| panic!("{file}: {error}"));
        assert!(config.cluster.is_some(), "{file}");
    }
    let geodns = std::fs::read_to_string(deploy("demo/geodns.toml")).unwrap();
    let config: geodns::config::Config =
        shared::config::parse("geodns.toml", &format!("{geodns}\n{section}")).unwrap();
    assert!(config.cluster.is_some());
}

#[test]
fn demo_geodns_config_builds() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["geodns.toml", "networks.csv"] {
        std::fs::copy(deploy(&format!("demo/{file}")), dir.path().join(file)).unwrap();
    }
    geoip::build_from_csv(
        &dir.path().join("networks.csv"),
        &dir.path().join("demo.mmdb"),
    )
    .unwrap();
    let metrics = geodns::metrics::DnsMetrics::register(
        &mut prometheus_client::registry::Registry::default(),
    );
    let health = geodns::health::HealthTable::new(
        metrics.clone(),
        tokio_util::sync::CancellationToken::new(),
    );
    let snapshot = geodns::snapshot::Snapshot::load(
        &dir.path().join("geodns.toml"),
        &health,
        &metrics,
        &geodns::cluster::ClusterView::default(),
    )
    .unwrap();
    assert_eq!(snapshot.services[0].edges.len(), 3);
}
