//! What the origin learns about the client: `X-Forwarded-For` set by the
//! edge (kept and appended to only for trusted proxies), and the client
//! named by a load balancer's PROXY protocol header.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{EdgeProcess, get};
use e2e::origin::{Origin, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn forwarded_for(origin: &Origin) -> String {
    let seen = origin.seen();
    let last = seen.last().expect("the origin saw a request");
    last.headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn raw(edge: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(edge).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_client_cannot_forge_its_forwarded_for() {
    let origin = Origin::start(|_| Reply::ok("x", &[])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/xff", &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(forwarded_for(&origin), "127.0.0.1");
}

#[tokio::test]
async fn a_trusted_proxy_chain_is_appended_to() {
    let origin = Origin::start(|_| Reply::ok("x", &[])).await;
    let edge = EdgeProcess::start_with_server(
        &[origin.address()],
        "trusted_proxies = [\"127.0.0.0/8\"]\n",
        "",
    );
    get(edge.http, "/xff", &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(forwarded_for(&origin), "203.0.113.9, 127.0.0.1");
}

#[tokio::test]
async fn proxy_protocol_names_the_client() {
    let origin = Origin::start(|_| Reply::ok("x", &[])).await;
    let edge = EdgeProcess::start_with_server(
        &[origin.address()],
        "proxy_protocol = true\nproxy_protocol_from = [\"127.0.0.0/8\"]\n",
        "",
    );
    let v1 = raw(
        edge.http,
        b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\nGET /v1 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(v1.starts_with("HTTP/1.1 200"), "{v1}");
    assert_eq!(forwarded_for(&origin), "198.51.100.7");

    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[0x21, 0x21, 0, 36]);
    let source: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
    let destination: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    v2.extend_from_slice(&source.octets());
    v2.extend_from_slice(&destination.octets());
    v2.extend_from_slice(&[0x9c, 0x40, 0, 80]);
    v2.extend_from_slice(b"GET /v2 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    let answer = raw(edge.http, &v2).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(forwarded_for(&origin), "2001:db8::7");

    // Without a header: closed, never served.
    let plain = raw(
        edge.http,
        b"GET /plain HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.is_empty(), "{plain}");
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn proxy_headers_from_untrusted_addresses_are_refused() {
    let origin = Origin::start(|_| Reply::ok("x", &[])).await;
    let edge = EdgeProcess::start_with_server(
        &[origin.address()],
        "proxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/8\"]\n",
        "",
    );
    let answer = raw(
        edge.http,
        b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\nGET / HTTP/1.1\r\nHost: site.test\r\n\r\n",
    )
    .await;
    assert!(answer.is_empty(), "{answer}");
    assert_eq!(origin.requests(), 0);
}
