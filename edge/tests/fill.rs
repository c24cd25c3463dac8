//! Filling from other edges without etcd: a ring of peers listed in the
//! configuration, and a parent (shield) asked before the origin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{EdgeProcess, get};
use e2e::origin::{Origin, Reply};
use e2e::process::unique_loopback;

async fn counting_origin() -> Origin {
    Origin::start(|seen| {
        Reply::ok(
            format!("body of {}", seen.uri),
            &[("cache-control", "max-age=60")],
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_ring_fetches_each_object_once() {
    let origin = counting_origin().await;
    let addresses = [unique_loopback(), unique_loopback()];
    let peers: String = ["ring-a", "ring-b"]
        .iter()
        .zip(addresses)
        .map(|(name, address)| {
            format!("[[fill.peers]]\nname = \"{name}\"\nurl = \"http://{address}:8080\"\n")
        })
        .collect();
    let edges = [
        EdgeProcess::start_named(addresses[0], "ring-a", &[origin.address()], "", &peers),
        EdgeProcess::start_named(addresses[1], "ring-b", &[origin.address()], "", &peers),
    ];
    for object in 0..40 {
        for edge in &edges {
            let got = get(edge.http, &format!("/o/{object}"), &[]).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.body, format!("body of /o/{object}"));
        }
    }
    assert_eq!(
        origin.requests(),
        40,
        "one origin fetch per object for the ring"
    );
    // Each edge asked its peer for the keys the peer owns: both served some.
    for edge in &edges {
        let (_, metrics) = common::admin_get(edge.admin, "/metrics").await;
        assert!(
            metrics.contains("edge_fills_total{upstream=\"peer\"}"),
            "{metrics}"
        );
    }
}

/// An origin that tells only the CDN to cache: `no-store` for everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_pass_targeted_fields_to_each_other_but_not_to_clients() {
    let origin = Origin::start(|seen| {
        Reply::ok(
            format!("body of {}", seen.uri),
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
        )
    })
    .await;
    let addresses = [unique_loopback(), unique_loopback()];
    let peers: String = ["ring-a", "ring-b"]
        .iter()
        .zip(addresses)
        .map(|(name, address)| {
            format!("[[fill.peers]]\nname = \"{name}\"\nurl = \"http://{address}:8080\"\n")
        })
        .collect();
    // On loopback both edges connect from 127.0.0.1, not from their own
    // addresses: name the peers' source addresses as a deployment would.
    let peers = format!("[fill]\ntrusted_peers = [\"127.0.0.0/8\"]\n{peers}");
    let edge = EdgeProcess::start_named(addresses[0], "ring-a", &[origin.address()], "", &peers);
    let _peer = EdgeProcess::start_named(addresses[1], "ring-b", &[origin.address()], "", &peers);
    for object in 0..20 {
        let path = format!("/t/{object}");
        let first = get(edge.http, &path, &[]).await;
        assert_eq!(first.status, 200);
        assert!(
            first.headers.get("cdn-cache-control").is_none(),
            "{path}: the targeted field reached a client"
        );
        // Owned by this edge or filled from the peer, it is stored here.
        assert_eq!(get(edge.http, &path, &[]).await.cache(), "HIT", "{path}");
    }
    assert_eq!(origin.requests(), 20);
    let (_, metrics) = common::admin_get(edge.admin, "/metrics").await;
    assert!(
        metrics.contains("edge_fills_total{upstream=\"peer\"}"),
        "no object came from the peer: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_is_asked_before_the_origin() {
    let origin = counting_origin().await;
    let parent = EdgeProcess::start_named(unique_loopback(), "shield", &[origin.address()], "", "");
    let child = EdgeProcess::start_named(
        unique_loopback(),
        "child",
        &[origin.address()],
        "",
        &format!("[fill]\nparent = \"http://{}\"\n", parent.http),
    );
    let first = get(child.http, "/tiered", &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(origin.requests(), 1);
    let via: Vec<String> = origin.seen()[0]
        .headers
        .get_all("via")
        .iter()
        .map(|value| value.to_str().unwrap().to_string())
        .collect();
    let via = via.join(", ");
    assert!(
        via.contains("child") && via.contains("shield"),
        "Via: {via}"
    );
    // The parent kept a copy: a second child would not reach the origin.
    assert_eq!(get(parent.http, "/tiered", &[]).await.cache(), "HIT");

    // A parent that is down is skipped.
    drop(parent);
    let after = get(child.http, "/other", &[]).await;
    assert_eq!(after.status, 200);
    assert_eq!(origin.requests(), 2);
}
