//! What concurrent misses can make the edge hold in memory: with every
//! fill bounded by `cache.fill_memory`, resident memory plus cache bodies in
//! memory files stays under the capacity, that bound and a constant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::EdgeProcess;
use e2e::origin::{Origin, Reply};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const MIB: u64 = 1 << 20;

/// Memory of process `pid` that cache bodies can take: anonymous and file
/// resident pages, plus every memory file it holds (mapped or not; their
/// mapped pages are left out of the resident count to count them once).
fn memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .unwrap_or(0)
    };
    let resident = (kib("RssAnon:") + kib("RssFile:")) * 1024;
    let memfds: u64 = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("/memfd:"))
        })
        .filter_map(|entry| std::fs::metadata(entry.path()).ok())
        .map(|metadata| metadata.len())
        .sum();
    resident + memfds
}

/// GETs `path` and counts the body bytes without keeping them.
async fn body_length(client: &Client<HttpConnector, Empty<Bytes>>, url: String) -> u64 {
    let request = Request::get(url)
        .header("host", "site.test")
        .body(Empty::new())
        .unwrap();
    let mut body = client.request(request).await.expect("request").into_body();
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body").into_data() {
            length += data.len() as u64;
        }
    }
    length
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_concurrent_large_misses_stay_within_capacity_and_fill_memory() {
    const OBJECT: usize = 15_000_000;
    let body = Bytes::from(vec![b'm'; OBJECT]);
    let origin = Origin::start(move |_| {
        Reply::ok(body.clone(), &[("cache-control", "max-age=600")])
            .paused_after(1 << 20, Duration::from_millis(300))
    })
    .await;
    // The default fill memory: a quarter of the capacity, 16 MiB.
    let edge = EdgeProcess::start(
        &[origin.address()],
        "capacity = \"64MiB\"\nmax_object_size = \"16MiB\"",
        "",
    );
    let pid = edge.process.pid();
    let baseline = memory(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(memory(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let lengths = futures_util::future::join_all((0..60).map(|n| {
        let client = client.clone();
        let url = format!("http://{}/large/{n}?random={n}", edge.http);
        tokio::spawn(async move { body_length(&client, url).await })
    }))
    .await;
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    for length in lengths {
        assert_eq!(
            length.unwrap(),
            OBJECT as u64,
            "every client gets the whole body"
        );
    }
    let peak = peak.load(Ordering::Relaxed);
    let bound = baseline + 64 * MIB + 16 * MIB + 48 * MIB;
    assert!(
        peak <= bound,
        "peak {} MiB over the {} MiB bound (baseline {} MiB)",
        peak / MIB,
        bound / MIB,
        baseline / MIB
    );
    assert!(common::metric(&edge, "edge_cache_not_stored_no_room_total").await > 0);
    eprintln!(
        "peak {} MiB, baseline {} MiB, bound {} MiB",
        peak / MIB,
        baseline / MIB,
        bound / MIB
    );
}

/// Descriptors process `pid` has open.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_cache_bodies_leave_descriptors_for_connections() {
    // Bodies large enough to be sealed in memory files.
    let body = Bytes::from(vec![b's'; 40 * 1024]);
    let served = body.clone();
    let origin =
        Origin::start(move |_| Reply::ok(served.clone(), &[("cache-control", "max-age=600")]))
            .await;
    // 300 descriptors, 64 connections: 108 are left for sealed bodies.
    let edge =
        EdgeProcess::start_with_open_files(&[origin.address()], "max_connections = 64", "", 300);
    let pid = edge.process.pid();
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    for n in 0..300 {
        let url = format!("http://{}/object/{n}", edge.http);
        assert_eq!(body_length(&client, url).await, body.len() as u64);
    }
    assert!(common::metric(&edge, "edge_cache_sealed_bodies").await <= 108);
    assert_eq!(common::metric(&edge, "edge_cache_entries").await, 300);
    // Then as many clients as are allowed, half of them hits, half misses.
    let lengths = futures_util::future::join_all((0..60).map(|n| {
        let url = if n % 2 == 0 {
            format!("http://{}/object/{n}", edge.http)
        } else {
            format!("http://{}/fresh/{n}", edge.http)
        };
        tokio::spawn(async move {
            // A client of its own, so that each request has its own connection.
            let client: Client<HttpConnector, Empty<Bytes>> =
                Client::builder(TokioExecutor::new()).build(HttpConnector::new());
            body_length(&client, url).await
        })
    }))
    .await;
    for length in lengths {
        assert_eq!(length.unwrap(), body.len() as u64, "every request answered");
    }
    assert!(descriptors(pid) < 300);
    assert!(
        !edge.log().contains("Too many open files"),
        "{}",
        edge.log()
    );
}
