//! One site's cache entries cannot be poisoned through another's request:
//! the authority is validated once and is exactly what the key and the
//! origin see. Raw HTTP/1.1 over sockets where a client library would
//! tidy the request up, and a real HTTP/2 client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{EdgeProcess, admin_get, get};
use e2e::origin::{Origin, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An origin that answers with the Host it received.
async fn host_echo() -> Origin {
    Origin::start(|seen| {
        let host = seen
            .headers
            .get("host")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let forwarded = seen
            .headers
            .get("x-forwarded-host")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        Reply::ok(
            format!("host={host} forwarded-host={forwarded}"),
            &[("cache-control", "max-age=60")],
        )
    })
    .await
}

/// Sends `request` as written and returns the status line and body.
async fn raw(edge: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(edge).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test]
async fn two_host_fields_are_refused() {
    let origin = host_echo().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let (status, _) = raw(
        edge.http,
        "GET /p HTTP/1.1\r\nHost: victim.test\r\nHost: attacker.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(origin.requests(), 0);
}

#[tokio::test]
async fn host_with_a_path_cannot_merge_into_another_key() {
    let origin = host_echo().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let (status, _) = raw(
        edge.http,
        "GET /p HTTP/1.1\r\nHost: victim.test/evil\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    let got = get(edge.http, "/evil/p", &[("host", "victim.test")]).await;
    assert_eq!(got.cache(), "MISS");
}

#[tokio::test]
async fn http11_without_host_is_refused_and_absolute_form_wins_over_host() {
    let origin = host_echo().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let (status, _) = raw(
        edge.http,
        "GET http://victim.test/p HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "HTTP/1.1 without Host");
    let (status, body) = raw(
        edge.http,
        "GET http://Victim.Test/q HTTP/1.1\r\nHost: attacker.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.starts_with("host=victim.test "), "{body}");
    // The entry belongs to victim.test, filled with victim.test's content.
    let again = get(edge.http, "/q", &[("host", "victim.test")]).await;
    assert_eq!(again.cache(), "HIT");
    assert!(String::from_utf8_lossy(&again.body).starts_with("host=victim.test "));
}

#[tokio::test]
async fn http2_fill_sends_the_authority_as_host() {
    let origin = host_echo().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let stream = TcpStream::connect(edge.http).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = hyper::Request::get("http://site.test/h2").body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("host=site.test "), "{text}");
    // An HTTP/1.1 client for the same site shares the entry.
    assert_eq!(get(edge.http, "/h2", &[]).await.cache(), "HIT");
}

#[tokio::test]
async fn forwarded_host_does_not_reach_the_origin() {
    let origin = host_echo().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let got = get(edge.http, "/fh", &[("x-forwarded-host", "attacker.test")]).await;
    assert_eq!(
        String::from_utf8_lossy(&got.body),
        "host=site.test forwarded-host="
    );
}

#[tokio::test]
async fn hosts_not_served_get_421_and_are_never_fetched() {
    let origin = host_echo().await;
    let edge = EdgeProcess::start_with_server(
        &[origin.address()],
        "hosts = [\"site.test\", \"*.img.test\"]\n",
        "",
    );
    assert_eq!(get(edge.http, "/a", &[]).await.status, 200);
    assert_eq!(
        get(edge.http, "/a", &[("host", "a.img.test")]).await.status,
        200
    );
    assert_eq!(
        get(edge.http, "/a", &[("host", "elsewhere.test")])
            .await
            .status,
        421
    );
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn connect_and_trace_are_refused_at_the_edge() {
    let origin = host_echo().await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let (status, _) = raw(
        edge.http,
        "CONNECT site.test:443 HTTP/1.1\r\nHost: site.test:443\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    let (status, _) = raw(
        edge.http,
        "TRACE / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(origin.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_marker_from_a_client_does_not_skip_the_ring() {
    let origin = host_echo().await;
    let addresses = [
        e2e::process::unique_loopback(),
        e2e::process::unique_loopback(),
    ];
    let peers: String = ["ring-a", "ring-b"]
        .iter()
        .zip(addresses)
        .map(|(name, address)| {
            format!("[[fill.peers]]\nname = \"{name}\"\nurl = \"http://{address}:8080\"\n")
        })
        .collect();
    let a = EdgeProcess::start_named(addresses[0], "ring-a", &[origin.address()], "", &peers);
    let _b = EdgeProcess::start_named(addresses[1], "ring-b", &[origin.address()], "", &peers);
    // A client claiming to be a peer, for keys half of which ring-b owns.
    for object in 0..20 {
        let got = get(
            a.http,
            &format!("/marked/{object}"),
            &[("x-geocdn-fill", "ring-b")],
        )
        .await;
        assert_eq!(got.status, 200);
    }
    let (_, metrics) = admin_get(a.admin, "/metrics").await;
    assert!(
        metrics.contains("edge_fills_total{upstream=\"peer\"}"),
        "ring-a still asks ring-b for the keys it owns:\n{metrics}"
    );
}
