//! The access log of the real edge binary: one line per request with the
//! cache status and upstream, JSON and combined formats, reopened on
//! SIGHUP after logrotate moved the file; and the per-response metrics.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::EdgeProcess;
use e2e::origin::{Origin, Reply};
use e2e::process::wait_until;

async fn origin() -> Origin {
    Origin::start(|_| Reply::ok("0123456789", &[("cache-control", "max-age=60")])).await
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    wait_until(Duration::from_secs(5), || lines(path).len() >= count);
    lines(path)
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_say_how_each_request_was_served_and_logrotate_is_followed() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let edge = EdgeProcess::start(
        &[origin.address()],
        "",
        &format!(
            "\n[access_log]\npath = \"{}\"\nformat = \"json\"\n",
            path.display()
        ),
    );
    let miss = common::get(
        edge.http,
        "/object?x=1",
        &[("user-agent", "probe/1 \"quoted\"")],
    )
    .await;
    assert_eq!(miss.cache(), "MISS");
    let hit = common::get(edge.http, "/object?x=1", &[]).await;
    assert_eq!(hit.cache(), "HIT");
    let logged = wait_for_lines(&path, 2);
    assert_eq!(logged.len(), 2, "{logged:?}\n{}", edge.log());
    let first: serde_json::Value = serde_json::from_str(&logged[0]).unwrap();
    let second: serde_json::Value = serde_json::from_str(&logged[1]).unwrap();
    assert_eq!(first["target"], "/object?x=1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], 10);
    assert_eq!(first["cache"], "MISS");
    assert_eq!(first["upstream"], "origin");
    assert_eq!(first["completed"], true);
    assert_eq!(first["user_agent"], "probe/1 \"quoted\"");
    assert_eq!(second["cache"], "HIT");
    assert_eq!(second["upstream"], "-");
    assert!(second["duration_ms"].as_f64().unwrap() >= second["first_byte_ms"].as_f64().unwrap());
    // The file is private to the edge and its group.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // logrotate: move the file away, SIGHUP, and the next line starts a new one.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    edge.process.signal("HUP");
    assert!(wait_until(Duration::from_secs(5), || edge
        .log()
        .contains("configuration reloaded")));
    // The writer reopens before its next line.
    let _ = common::get(edge.http, "/after-rotation", &[]).await;
    let fresh = wait_for_lines(&path, 1);
    assert_eq!(fresh.len(), 1, "{}", edge.log());
    assert!(fresh[0].contains("/after-rotation"));
    assert_eq!(lines(&rotated).len(), 2);

    // The same requests in the metrics.
    assert_eq!(
        common::metric(&edge, "edge_responses_total{class=\"2xx\",cache=\"HIT\"}").await,
        1
    );
    assert_eq!(
        common::metric(&edge, "edge_responses_total{class=\"2xx\",cache=\"MISS\"}").await,
        2
    );
    assert_eq!(
        common::metric(&edge, "edge_request_duration_seconds_count").await,
        3
    );
    assert_eq!(
        common::metric(&edge, "edge_response_body_bytes_total").await,
        30
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn combined_lines_parse_as_the_combined_log_format_and_sampling_thins_them() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let edge = EdgeProcess::start(
        &[origin.address()],
        "",
        &format!("\n[access_log]\npath = \"{}\"\n", path.display()),
    );
    let _ = common::get(edge.http, "/a", &[("referer", "https://example.com/")]).await;
    let logged = wait_for_lines(&path, 1);
    let line = &logged[0];
    // client - - [time] "request" status bytes "referer" "agent" "host" cache upstream seconds seconds
    let pattern = regex_lite(line);
    assert!(pattern, "{line}");
    assert!(
        line.contains("\"GET /a HTTP/1.1\" 200 10 \"https://example.com/\""),
        "{line}"
    );
    assert!(line.contains(" MISS origin "), "{line}");

    let sampled_dir = tempfile::tempdir().unwrap();
    let sampled = sampled_dir.path().join("access.log");
    let quiet = EdgeProcess::start(
        &[origin.address()],
        "",
        &format!(
            "\n[access_log]\npath = \"{}\"\nsample = 0.0\n",
            sampled.display()
        ),
    );
    for _ in 0..20 {
        let _ = common::get(quiet.http, "/a", &[]).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(lines(&sampled).is_empty());
    assert_eq!(
        common::metric(&quiet, "edge_request_duration_seconds_count").await,
        20
    );
}

/// Whether `line` has the shape of a combined line with our fields.
fn regex_lite(line: &str) -> bool {
    let Some((client, rest)) = line.split_once(" - - [") else {
        return false;
    };
    let Some((time, rest)) = rest.split_once("] \"") else {
        return false;
    };
    client.parse::<std::net::IpAddr>().is_ok()
        && time.ends_with(" +0000")
        && time.len() == "04/Dec/2026:20:15:56 +0000".len()
        && rest.split('"').count() == 8
}
