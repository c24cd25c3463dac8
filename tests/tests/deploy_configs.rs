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

/// Runs promtool with `args` in deploy/monitoring; `None` when it is missing.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    let output = std::process::Command::new("promtool")
        .args(args)
        .current_dir(deploy("monitoring"))
        .output();
    match output {
        Ok(output) => Some(output),
        Err(_) => {
            e2e::requirements::missing("promtool is not installed", "apt-get install prometheus");
            None
        }
    }
}

#[test]
fn alert_rules_are_valid_and_fire_on_the_series_they_describe() {
    let Some(checked) = promtool(&["check", "rules", "alerts.yml"]) else {
        return;
    };
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let tested = promtool(&["test", "rules", "alerts.test.yml"]).unwrap();
    assert!(
        tested.status.success(),
        "{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
}

#[test]
fn the_dashboard_is_grafana_json_whose_panels_all_query() {
    let text = std::fs::read_to_string(deploy("monitoring/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dashboard["uid"], "geocdn");
    let panels = dashboard["panels"].as_array().unwrap();
    let queried: Vec<&serde_json::Value> = panels
        .iter()
        .filter(|panel| panel["type"] != "row")
        .collect();
    assert!(queried.len() >= 20);
    let mut ids = std::collections::HashSet::new();
    for panel in &queried {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "duplicate id");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            assert!(target["expr"].as_str().is_some_and(|expr| !expr.is_empty()));
        }
    }
}

/// Every identifier of the form `edge_*`, `dns_*`, `cluster_*` in `text`,
/// without the suffixes Prometheus adds (`_total`, `_bucket`...).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let is_ident =
            |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_';
        if !is_ident(bytes[start]) || (start > 0 && is_ident(bytes[start - 1])) {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        let word = &text[start..end];
        // A metric is followed by a selector, a range, or the end of an
        // expression; a label name by `=`, `~` or `!`.
        let next = bytes.get(end).copied().unwrap_or(b' ');
        let is_metric = ["edge_", "dns_", "cluster_"]
            .iter()
            .any(|prefix| word.starts_with(prefix))
            && !matches!(next, b'=' | b'~' | b'!');
        if is_metric {
            let mut name = word;
            for suffix in ["_bucket", "_count", "_sum", "_total"] {
                name = name.strip_suffix(suffix).unwrap_or(name);
            }
            names.insert(name.to_string());
        }
        start = end;
    }
    names
}

/// The metric names the binaries register: the string literals of the
/// crates that register metrics.
fn registered_names() -> std::collections::BTreeSet<String> {
    fn walk(dir: &Path, names: &mut std::collections::BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, names);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for literal in text.split('"').skip(1).step_by(2) {
                    if literal.bytes().all(|byte| {
                        byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'
                    }) {
                        names.insert(literal.to_string());
                    }
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names = std::collections::BTreeSet::new();
    for crate_dir in ["edge/src", "geodns/src", "shared/src"] {
        walk(&root.join(crate_dir), &mut names);
    }
    names
}

#[test]
fn rules_and_dashboard_use_only_metrics_the_binaries_register() {
    let registered = registered_names();
    for file in ["monitoring/alerts.yml", "monitoring/grafana-dashboard.json"] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 8, "{file}: {used:?}");
        let unknown: Vec<&String> = used.difference(&registered).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics nobody registers: {unknown:?}"
        );
    }
}

#[test]
fn metric_names_are_found_and_label_names_are_not() {
    let names = metric_names(
        r#"sum by (edge) (rate(edge_responses_total{edge_x="1", class="5xx"}[5m])) / edge_tls_certificate_expiry_seconds"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["edge_responses", "edge_tls_certificate_expiry_seconds"]
    );
}

#[test]
fn units_leave_their_state_and_log_directories_writable() {
    for unit in [
        "systemd/geodns.service",
        "systemd/edge.service",
        "systemd/edge@.service",
    ] {
        let text = std::fs::read_to_string(deploy(unit)).unwrap();
        let values = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .flat_map(|value| {
                    value
                        .split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let read_only = values("ReadOnlyPaths");
        let writable: Vec<String> = values("StateDirectory")
            .iter()
            .map(|name| format!("/var/lib/{name}"))
            .chain(
                values("LogsDirectory")
                    .iter()
                    .map(|name| format!("/var/log/{name}")),
            )
            .collect();
        assert!(!writable.is_empty(), "{unit}");
        for directory in &writable {
            assert!(
                !read_only
                    .iter()
                    .any(|path| directory.starts_with(path.as_str())),
                "{unit}: {directory} is both the service's own and read-only"
            );
        }
    }
}

/// The template for upgrades is the plain unit with another description:
/// the hardening cannot drift between them.
#[test]
fn the_edge_template_unit_is_the_edge_unit() {
    let settings = |file: &str| -> Vec<String> {
        std::fs::read_to_string(deploy(file))
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with('#') && !line.starts_with("Description="))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        settings("systemd/edge@.service"),
        settings("systemd/edge.service")
    );
    let plain = std::fs::read_to_string(deploy("systemd/edge.service")).unwrap();
    assert!(plain.contains("RuntimeDirectoryPreserve=yes"), "{plain}");
    let config: edge::config::Config =
        shared::config::load(deploy("production/edge.toml")).unwrap();
    assert_eq!(
        config.server.handover_socket.as_deref(),
        Some(Path::new("/run/edge/handover.sock"))
    );
}
