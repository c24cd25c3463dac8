//! SIGHUP reloads the configuration of the real edge binary: origins and
//! the admin token change live while the cache and open connections stay;
//! an invalid file changes nothing; a change that needs a restart is named.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::EdgeProcess;
use e2e::origin::{Origin, Reply};
use e2e::process::wait_until;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn origin(name: &'static str) -> Origin {
    Origin::start(move |_| Reply::ok(format!("from {name}"), &[("cache-control", "max-age=60")]))
        .await
}

/// Sends one GET on an open connection and reads until `expected` arrives.
async fn get_on(stream: &mut tokio::net::TcpStream, path: &str, expected: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: site.test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains(expected)
        && tokio::time::Instant::now() < deadline
    {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        if read == 0 {
            break;
        }
        seen.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Rewrites the edge's file with `edit` and sends SIGHUP; waits for the
/// `count`-th outcome line.
fn reload_with(edge: &EdgeProcess, count: usize, edit: impl FnOnce(String) -> String) {
    let path = edge.dir.path().join("edge.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    edge.process.signal("HUP");
    let outcomes = |log: &str| {
        log.matches("configuration reloaded").count()
            + log.matches("configuration not reloaded").count()
    };
    assert!(
        wait_until(Duration::from_secs(5), || outcomes(&edge.log()) >= count),
        "no reload outcome logged:\n{}",
        edge.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_new_origin_and_token_keeping_the_cache_and_connections() {
    let first = origin("first").await;
    let second = origin("second").await;
    let edge = EdgeProcess::start(&[first.address()], "", "");
    let mut kept = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    assert!(
        get_on(&mut kept, "/cached", "from first")
            .await
            .contains("from first")
    );

    let (from, to) = (first.address().to_string(), second.address().to_string());
    reload_with(&edge, 1, |text| {
        text.replace(&from, &to)
            .replace("token = \"secret\"", "token = \"rotated\"")
    });
    assert!(
        edge.log().contains("configuration reloaded"),
        "{}",
        edge.log()
    );
    // The cache survived: the entry fetched from the first origin is a hit.
    let cached = common::get(edge.http, "/cached", &[]).await;
    assert_eq!(cached.body, "from first");
    assert_eq!(cached.cache(), "HIT");
    // New misses go to the new origin, over the connection opened before.
    assert!(
        get_on(&mut kept, "/new", "from second")
            .await
            .contains("from second")
    );
    assert_eq!(second.requests(), 1);
    // The old token no longer works; the new one does.
    let (old, _) = common::admin_post(
        edge.admin,
        "/purge?url=/cached&host=site.test",
        Some("secret"),
    )
    .await;
    assert_eq!(old, StatusCode::UNAUTHORIZED);
    let (new, _) = common::admin_post(
        edge.admin,
        "/purge?url=/cached&host=site.test",
        Some("rotated"),
    )
    .await;
    assert_eq!(new, StatusCode::OK);
    assert_eq!(
        common::metric(&edge, "edge_config_reloads_total{result=\"ok\"}").await,
        1
    );

    // A broken file changes nothing and says why.
    reload_with(&edge, 2, |text| text.replace("[origin]", "[origin"));
    let log = edge.log();
    assert!(log.contains("configuration not reloaded"), "{log}");
    let still = common::get(edge.http, "/still", &[]).await;
    assert_eq!(still.body, "from second");
    assert_eq!(
        common::metric(&edge, "edge_config_reloads_total{result=\"failed\"}").await,
        1
    );

    // What was sized at start is named, not applied.
    reload_with(&edge, 3, |text| {
        text.replace("[origin", "[origin]")
            .replace("capacity = \"64MiB\"", "capacity = \"128MiB\"")
    });
    let log = edge.log();
    assert!(
        log.contains("take effect at the next restart") && log.contains("cache.capacity"),
        "{log}"
    );
}
