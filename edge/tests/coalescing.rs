//! One origin fetch per key, whoever leaves: the fetch belongs to the key,
//! goes on for the waiters when the client that started it goes away, and
//! its failure is shared by them (with one retry) instead of each refetching.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{EdgeProcess, get};
use e2e::origin::{Origin, Reply};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn slow_origin() -> Origin {
    Origin::start(|_| {
        Reply::ok("shared", &[("cache-control", "max-age=60")]).delayed(Duration::from_millis(800))
    })
    .await
}

/// Twenty clients asking `path` while its fetch is in flight.
fn waiters(edge: &EdgeProcess, path: &'static str) -> Vec<tokio::task::JoinHandle<common::Got>> {
    (0..20)
        .map(|_| tokio::spawn(get(edge.http, path, &[])))
        .collect()
}

#[tokio::test]
async fn the_fetch_goes_on_for_waiters_when_its_http1_client_closes() {
    let origin = slow_origin().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let mut first = TcpStream::connect(edge.http).await.unwrap();
    first
        .write_all(b"GET /leaving HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let waiting = waiters(&edge, "/leaving");
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(first);
    for waiter in waiting {
        let got = waiter.await.unwrap();
        assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"shared"[..]));
    }
    assert_eq!(
        origin.requests(),
        1,
        "one fetch for the leaver and the waiters"
    );
}

#[tokio::test]
async fn the_fetch_goes_on_for_waiters_when_its_http2_stream_is_reset() {
    let origin = slow_origin().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let stream = TcpStream::connect(edge.http).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = hyper::Request::get("http://site.test/reset")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let waiting = waiters(&edge, "/reset");
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(response);
    for waiter in waiting {
        let got = waiter.await.unwrap();
        assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"shared"[..]));
    }
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn an_abandoned_fetch_nobody_waits_for_is_cancelled() {
    let origin = slow_origin().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let mut first = TcpStream::connect(edge.http).await.unwrap();
    first
        .write_all(b"GET /alone HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(first);
    // The origin answers at 800 ms; a fetch that went on would store it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(common::metric(&edge, "edge_cache_entries").await, 0);
    assert_eq!(get(edge.http, "/alone", &[]).await.cache(), "MISS");
}

#[tokio::test]
async fn a_failed_fetch_is_shared_by_its_waiters_with_one_retry() {
    // Slower than the edge's first_byte_timeout (3 s): every fetch fails.
    let origin = Origin::start(|_| {
        Reply::ok("late", &[("cache-control", "max-age=60")]).delayed(Duration::from_secs(5))
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let results =
        futures_util::future::join_all((0..20).map(|_| get(edge.http, "/failing", &[]))).await;
    assert!(
        results.iter().all(|got| got.status.is_server_error()),
        "{:?}",
        results.iter().map(|got| got.status).collect::<Vec<_>>()
    );
    assert_eq!(
        origin.requests(),
        2,
        "the first fetch and one shared retry, not one per waiter"
    );
}
