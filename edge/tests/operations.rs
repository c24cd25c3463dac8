//! Admin API, drain, and faults, against the real edge binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{EdgeProcess, admin_get, admin_post, get};
use e2e::origin::{Origin, Reply};

#[tokio::test]
async fn purge_needs_the_token_and_clears_url_prefix_and_all() {
    let origin = Origin::start(|_| Reply::ok("x", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    for path in ["/img/1", "/img/2", "/css/1"] {
        get(edge.http, path, &[]).await;
        assert_eq!(get(edge.http, path, &[]).await.cache(), "HIT");
    }
    let (status, _) = admin_post(edge.admin, "/purge?url=/img/1&host=site.test", None).await;
    assert_eq!(status, 401);
    let (status, _) = admin_post(
        edge.admin,
        "/purge?url=/img/1&host=site.test",
        Some("wrong"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = admin_post(
        edge.admin,
        "/purge?url=http%3A%2F%2Fsite.test%2Fimg%2F1",
        Some("secret"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"removed\": 1"), "{body}");
    assert_eq!(get(edge.http, "/img/1", &[]).await.cache(), "MISS");
    let (_, body) = admin_post(
        edge.admin,
        "/purge?prefix=/img/&host=site.test",
        Some("secret"),
    )
    .await;
    assert!(body.contains("\"removed\": 2"), "{body}");
    assert_eq!(get(edge.http, "/img/2", &[]).await.cache(), "MISS");
    admin_post(edge.admin, "/purge?all=1", Some("secret")).await;
    assert_eq!(get(edge.http, "/css/1", &[]).await.cache(), "MISS");
}

#[tokio::test]
async fn drain_is_reported_in_healthz() {
    let origin = Origin::start(|_| Reply::ok("x", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/a", &[]).await;
    let (status, body) = admin_get(edge.admin, "/healthz").await;
    assert_eq!(status, 200);
    let report = shared::health::HealthReport::from_json(body.as_bytes()).unwrap();
    assert_eq!(report.status, shared::EdgeStatus::Up);
    assert_eq!(report.cache.objects, 1);
    assert!(report.cache.used_bytes > 0);
    let (status, _) = admin_post(edge.admin, "/drain", None).await;
    assert_eq!(status, 401);
    admin_post(edge.admin, "/drain", Some("secret")).await;
    let (status, body) = admin_get(edge.admin, "/healthz").await;
    assert_eq!(status, 503);
    assert_eq!(
        shared::health::HealthReport::from_json(body.as_bytes())
            .unwrap()
            .status,
        shared::EdgeStatus::Draining
    );
    // Draining edges still serve.
    assert_eq!(get(edge.http, "/a", &[]).await.cache(), "HIT");
    admin_post(edge.admin, "/pool", Some("secret")).await;
    assert_eq!(admin_get(edge.admin, "/healthz").await.0, 200);
}

#[tokio::test]
async fn metrics_count_hits_misses_and_bytes() {
    let origin = Origin::start(|_| Reply::ok("12345", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/m", &[]).await;
    get(edge.http, "/m", &[]).await;
    let (_, metrics) = admin_get(edge.admin, "/metrics").await;
    assert!(
        metrics.contains("edge_requests_total{cache=\"miss\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edge_requests_total{cache=\"hit\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("edge_served_bytes_total 10"), "{metrics}");
    assert!(metrics.contains("edge_cache_entries 1"), "{metrics}");
    assert!(
        metrics.contains("edge_origin_requests_total{result=\"ok\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn hanging_origin_gives_504_and_others_keep_being_served() {
    let origin = Origin::start(|seen| match seen.uri.as_str() {
        "/hang" => Reply::ok("late", &[]).delayed(Duration::from_secs(30)),
        _ => Reply::ok("fast", &[("cache-control", "max-age=60")]),
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let hung = tokio::spawn(get(edge.http, "/hang", &[]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(edge.http, "/fast", &[]).await.body, "fast");
    let hung = hung.await.unwrap();
    assert_eq!(hung.status, 504);
}

#[tokio::test]
async fn truncated_origin_body_is_not_stored() {
    // A raw origin that promises 100 bytes, sends 10 and closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 100\r\n\r\n0123456789");
        }
    });
    let edge = EdgeProcess::start(&[address], "", "");
    let first = get_raw_status(edge.http, "/t").await;
    assert!(first == 502 || first == 0, "{first}");
    let second = get_raw_status(edge.http, "/t").await;
    assert!(
        second == 502 || second == 0,
        "not served from cache: {second}"
    );
}

/// Status of a GET, or 0 when the connection broke mid-response.
async fn get_raw_status(edge: std::net::SocketAddr, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(edge).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn slow_and_oversized_request_heads_are_cut_off() {
    let origin = Origin::start(|_| Reply::ok("x", &[])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    // Slowloris: a partial request line, then silence past the 2 s header timeout.
    let mut slow = std::net::TcpStream::connect(edge.http).unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: site.test\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut buffer = Vec::new();
    let _ = slow.read_to_end(&mut buffer);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "slow client not cut off"
    );
    // An oversized head.
    let mut big = std::net::TcpStream::connect(edge.http).unwrap();
    let header = format!(
        "GET / HTTP/1.1\r\nHost: site.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let _ = big.write_all(header.as_bytes());
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut response = Vec::new();
    let _ = big.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
    // Others are still served.
    assert_eq!(get(edge.http, "/ok", &[]).await.status, 200);
}

#[tokio::test]
async fn check_config_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, "[origin]\nurls = [\"ftp://x\"]\n").unwrap();
    let output = check_config(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("origin.urls[0]: \"ftp://x\" must be an http:// or https:// URL"),
        "{stderr}"
    );
    std::fs::write(
        &path,
        "[origin]\nurls = [\"http://127.0.0.1:1\"]\n[cache]\ncapacity = \"lots\"\n",
    )
    .unwrap();
    let output = check_config(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(":4:12: cache.capacity: invalid size \"lots\""),
        "{stderr}"
    );
    std::fs::write(
        &path,
        "[origin]\nurls = [\"http://127.0.0.1:1\"]\n[cache]\nmax_object_size = \"8MiB\"\nfill_memory = \"4MiB\"\n",
    )
    .unwrap();
    let output = check_config(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "cache.fill_memory (4.0 MiB) is smaller than cache.max_object_size (8.0 MiB)"
        ),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_every_error_at_the_line_of_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        "[origin]\nurls = [\"ftp://x\"]\n[admin]\nlisten = \"0.0.0.0:9180\"\n[server]\nproxy_protocol = true\n",
    )
    .unwrap();
    let output = check_config(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let at = |position: &str| format!("{}:{position}: ", path.display());
    assert!(stderr.contains("3 errors:"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}origin.urls[0]: \"ftp://x\"", at("2:9"))),
        "{stderr}"
    );
    assert!(
        // The key is missing: the line of its table.
        stderr.contains(&format!("{}server.proxy_protocol_from:", at("5:2"))),
        "{stderr}"
    );
    assert!(stderr.contains("set admin.token"), "{stderr}");
}

#[test]
fn admin_beyond_loopback_without_a_token_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        "[origin]\nurls = [\"http://127.0.0.1:1\"]\n[admin]\nlisten = \"0.0.0.0:9180\"\n",
    )
    .unwrap();
    let output = check_config(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("set admin.token"), "{stderr}");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    let origin =
        Origin::start(|_| Reply::ok("done", &[]).delayed(Duration::from_millis(800))).await;
    let mut edge = EdgeProcess::start(&[origin.address()], "", "");
    let in_flight = tokio::spawn(get(edge.http, "/slow", &[]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    edge.process.signal("TERM");
    let got = in_flight.await.unwrap();
    assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"done"[..]));
    let status = edge
        .process
        .wait_timeout(Duration::from_secs(10))
        .expect("edge did not exit");
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpStream::connect(edge.http).is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn prefix_purge_keeps_path_case_and_ignores_host_case() {
    let origin = Origin::start(|_| Reply::ok("x", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/Img/1", &[]).await;
    get(edge.http, "/img/2", &[]).await;
    let (_, body) = admin_post(
        edge.admin,
        "/purge?prefix=http://SITE.test/Img/",
        Some("secret"),
    )
    .await;
    assert!(body.contains("\"removed\": 1"), "{body}");
    assert_eq!(get(edge.http, "/img/2", &[]).await.cache(), "HIT");
}

#[tokio::test]
async fn purges_and_invalidations_remove_every_key_header_variant() {
    let origin = Origin::start(|seen| match seen.method.as_str() {
        "POST" => Reply::ok("done", &[]).status(200),
        _ => Reply::ok("x", &[("cache-control", "max-age=60")]),
    })
    .await;
    let edge = EdgeProcess::start(
        &[origin.address()],
        "key_headers = [\"accept-language\"]",
        "",
    );
    let variants: [&[(&str, &str)]; 3] = [
        &[],
        &[("accept-language", "en")],
        &[("accept-language", "fr")],
    ];
    let fill = |path: &'static str| async move {
        for headers in variants {
            get(edge.http, path, headers).await;
            assert_eq!(get(edge.http, path, headers).await.cache(), "HIT");
        }
    };
    fill("/k").await;
    fill("/k2").await;
    let (status, body) =
        admin_post(edge.admin, "/purge?url=/k&host=site.test", Some("secret")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"removed\": 3"), "{body}");
    for headers in variants {
        assert_eq!(get(edge.http, "/k", headers).await.cache(), "MISS");
        assert_eq!(
            get(edge.http, "/k2", headers).await.cache(),
            "HIT",
            "another URL kept"
        );
    }
    let posted = common::send(edge.http, "POST", "/k2", &[("accept-language", "en")], b"x").await;
    assert_eq!(posted.status, 200);
    for headers in variants {
        assert_eq!(
            get(edge.http, "/k2", headers).await.cache(),
            "MISS",
            "the POST invalidated the {headers:?} variant too"
        );
    }
}

/// A purge is a fresh start for what it names: a URL remembered as
/// uncacheable (hit-for-miss) is fetched to be stored again at once, for
/// each key-header variant and under a purged prefix.
#[tokio::test]
async fn purges_forget_that_a_variant_was_uncacheable() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let cacheable = Arc::new(AtomicBool::new(false));
    let switch = cacheable.clone();
    let origin = Origin::start(move |_| {
        if switch.load(Ordering::SeqCst) {
            Reply::ok("public", &[("cache-control", "max-age=60")])
        } else {
            Reply::ok("private", &[("cache-control", "no-store")])
        }
    })
    .await;
    let edge = EdgeProcess::start(
        &[origin.address()],
        "key_headers = [\"accept-language\"]",
        "",
    );
    let english: &[(&str, &str)] = &[("accept-language", "en")];
    for path in ["/u", "/pre/x"] {
        assert_eq!(get(edge.http, path, english).await.cache(), "MISS");
        assert_eq!(get(edge.http, path, english).await.cache(), "BYPASS");
    }
    cacheable.store(true, Ordering::SeqCst);
    for purge in [
        "/purge?url=/u&host=site.test",
        "/purge?prefix=/pre/&host=site.test",
    ] {
        let (status, body) = admin_post(edge.admin, purge, Some("secret")).await;
        assert_eq!(status, 200, "{body}");
    }
    for path in ["/u", "/pre/x"] {
        assert_eq!(
            get(edge.http, path, english).await.cache(),
            "MISS",
            "{path}: still taken as uncacheable after the purge"
        );
        assert_eq!(get(edge.http, path, english).await.cache(), "HIT", "{path}");
    }
}

/// Runs `edge check-config` on `path`.
fn check_config(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap()
}
