//! `geodns check-config` and `geodns explain`, run as the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Geodns, endpoint};
use e2e::health_endpoint::Mode;
use e2e::process::wait_until;

fn write_setup(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nets.csv"), common::NETWORKS).unwrap();
    geoip::build_from_csv(&dir.path().join("nets.csv"), &dir.path().join("geo.mmdb")).unwrap();
    std::fs::write(dir.path().join("geodns.toml"), config).unwrap();
    dir
}

fn default_config() -> String {
    let dns: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let admin: SocketAddr = "127.0.0.1:9300".parse().unwrap();
    common::config(dns, admin, &[("eu-1", "eu", ""), ("us-1", "us", "")], "")
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = write_setup(&default_config());
    let output = check_config(&dir.path().join("geodns.toml"), &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("OK (1 zones, 1 services, 2 edges, 1 databases, 0 overrides)"),
        "{stdout}"
    );
}

#[test]
fn check_config_names_file_line_and_key() {
    let config = default_config().replace("ttl = \"20s\"", "ttl = \"20 parsecs\"");
    let dir = write_setup(&config);
    let path = dir.path().join("geodns.toml");
    let output = check_config(&path, &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = config
        .lines()
        .position(|line| line.contains("parsecs"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "{}:{line}:7: services.www.ttl: invalid duration \"20 parsecs\"",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_semantic_errors_with_their_key() {
    let config = default_config().replace(
        "fallback = { region = \"us\" }",
        "fallback = { region = \"mars\" }",
    );
    let dir = write_setup(&config);
    let output = check_config(&dir.path().join("geodns.toml"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("services.www.fallback: no edge is in region \"mars\""),
        "{stderr}"
    );
}

#[test]
fn explain_shows_location_edges_and_answer() {
    let dir = write_setup(&default_config());
    let output = run_explain(
        &dir.path().join("geodns.toml"),
        "198.51.100.20",
        &["--offline", "--no-health"],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("location  40.7100, -74.0000 (US, NA)"),
        "{text}"
    );
    assert!(text.contains("network   198.51.100.0/24"), "{text}");
    assert!(
        text.contains("answer A    -> us-1 (Nearest, ECS scope /6)"),
        "{text}"
    );
    assert!(text.contains("eu-1"), "{text}");
}

#[test]
fn explain_checks_health_once() {
    let dead = "http://127.0.0.1:1/healthz";
    let dns: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let config = common::config(dns, dns, &[("eu-1", "eu", dead), ("us-1", "us", "")], "");
    let dir = write_setup(&config);
    let output = run_explain(
        &dir.path().join("geodns.toml"),
        "192.0.2.1",
        &["--offline", "--json"],
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let edges = &value["services"][0]["edges"];
    assert_eq!(edges[0]["status"], "down");
    assert!(
        edges[0]["error"]
            .as_str()
            .unwrap()
            .contains("request failed"),
        "{value}"
    );
    assert_eq!(value["services"][0]["answers"][0]["chosen"][0], "us-1");
}

#[test]
fn check_config_refuses_an_empty_file() {
    for text in ["", "\n  \n", "# only a comment\n\n# and another\n"] {
        let dir = write_setup(text);
        let path = dir.path().join("geodns.toml");
        let output = check_config(&path, &[]);
        assert_eq!(output.status.code(), Some(1), "{text:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("geodns.toml") && stderr.contains("the file is empty"),
            "{stderr}"
        );
    }
}

/// Runs `geodns explain` for `client` and checks that it succeeded.
fn run_explain(config: &std::path::Path, client: &str, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_geodns"))
        .arg("explain")
        .args(args)
        .arg("--config")
        .arg(config)
        .arg(client)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn explain_asks_the_running_server_for_live_health_and_says_when_it_cannot() {
    let eu_health = endpoint();
    let edges = [
        ("eu-1", "eu", eu_health.url()),
        ("us-1", "us", String::new()),
    ];
    let edges: Vec<(&str, &str, &str)> =
        edges.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
    let mut geodns = Geodns::start(&edges, "");
    eu_health.set(Mode::Down);
    assert!(wait_until(Duration::from_secs(3), || {
        let status: serde_json::Value = serde_json::from_str(&geodns.admin_get("/status")).unwrap();
        status["services"][0]["edges"][0]["status"] == "down"
    }));
    let config = geodns.config_path();

    // The running server knows eu-1 is down, though --no-health checks nothing here.
    let live = run_explain(&config, "192.0.2.1", &["--no-health"]);
    let text = String::from_utf8_lossy(&live.stdout);
    assert!(text.contains("answer A    -> us-1"), "{text}");
    assert!(text.contains("down"), "{text}");
    let stderr = String::from_utf8_lossy(&live.stderr);
    assert!(
        stderr.contains(&format!(
            "explained by the running server at {}",
            geodns.admin
        )),
        "{stderr}"
    );
    let json = run_explain(&config, "192.0.2.1", &["--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["services"][0]["edges"][0]["status"], "down");

    // Offline, without health checks, every edge counts as up.
    let offline = run_explain(&config, "192.0.2.1", &["--offline", "--no-health"]);
    let text = String::from_utf8_lossy(&offline.stdout);
    assert!(text.contains("answer A    -> eu-1"), "{text}");
    assert!(
        offline.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );

    // With the server gone, the CLI says it computed offline, on stderr only.
    geodns.process.signal("TERM");
    assert!(
        geodns
            .process
            .wait_timeout(Duration::from_secs(10))
            .is_some()
    );
    let fallback = run_explain(&config, "192.0.2.1", &["--no-health"]);
    let text = String::from_utf8_lossy(&fallback.stdout);
    assert!(text.starts_with("client    192.0.2.1"), "{text}");
    assert!(text.contains("answer A    -> eu-1"), "{text}");
    let stderr = String::from_utf8_lossy(&fallback.stderr);
    assert!(
        stderr.contains("no answer from a running server")
            && stderr.contains("computed offline, every edge taken as up"),
        "{stderr}"
    );
}

/// Runs `geodns check-config` with `args` on `config`.
fn check_config(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geodns"))
        .arg("check-config")
        .args(args)
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn check_config_reports_every_error_of_the_file_at_once() {
    let config = default_config()
        .replace(
            "fallback = { region = \"us\" }",
            "fallback = { region = \"mars\" }",
        )
        .replace("value = \"192.0.2.80\"", "value = \"192.0.2.800\"")
        .replace(
            "databases = [\"geo.mmdb\"]",
            "databases = [\"missing.mmdb\"]",
        );
    let dir = write_setup(&config);
    let output = check_config(&dir.path().join("geodns.toml"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 errors:"), "{stderr}");
    assert!(stderr.contains("missing.mmdb"), "{stderr}");
    // Semantic errors point at the line of their key, as parse errors do.
    let path = dir.path().join("geodns.toml");
    let line_of = |needle: &str| {
        config
            .lines()
            .position(|line| line.contains(needle))
            .unwrap()
            + 1
    };
    assert!(
        stderr.contains(&format!(
            "{}:{}:1: services.www.fallback: no edge is in region \"mars\"",
            path.display(),
            line_of("region = \"mars\"")
        )),
        "{stderr}"
    );
    let records_header = config
        .lines()
        .enumerate()
        .filter(|(_, line)| line.starts_with("[[zones.\"cdn.test\".records]]"))
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert!(
        stderr.contains(&format!(
            "{}:{records_header}:1: zones.\"cdn.test\".records[1]: invalid record: static A \"192.0.2.800\"",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_config_structure_only_skips_the_databases_and_checks_the_rest() {
    let config = default_config().replace(
        "databases = [\"geo.mmdb\"]",
        "databases = [\"elsewhere.mmdb\"]",
    );
    let dir = write_setup(&config);
    let path = dir.path().join("geodns.toml");
    let full = check_config(&path, &[]);
    assert_eq!(full.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&full.stderr).contains("elsewhere.mmdb"));

    let structure = check_config(&path, &["--structure-only"]);
    assert!(
        structure.status.success(),
        "{}",
        String::from_utf8_lossy(&structure.stderr)
    );
    let stdout = String::from_utf8_lossy(&structure.stdout);
    assert!(
        stdout.contains("structure OK (1 zones, 1 services, 2 edges; 1 databases and 0 override files not opened)"),
        "{stdout}"
    );

    let broken = config.replace(
        "fallback = { region = \"us\" }",
        "fallback = { region = \"mars\" }",
    );
    std::fs::write(&path, broken).unwrap();
    let structure = check_config(&path, &["--structure-only"]);
    assert_eq!(structure.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&structure.stderr)
            .contains("services.www.fallback: no edge is in region \"mars\""),
        "{}",
        String::from_utf8_lossy(&structure.stderr)
    );
}
