//! What one client can hold on an edge: silent and idle connections are
//! closed, one address cannot fill the edge, a full edge makes room by
//! closing its longest-idle connections, and an HTTP/2 client that
//! abandons stream after stream loses its connection. Against the real
//! binary, with raw sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{EdgeProcess, admin_get, get};
use e2e::origin::{Origin, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `edge` from `source` (any port).
async fn connect_from(source: Ipv4Addr, edge: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(edge).await
}

/// Waits for the peer to close; the time it took, or `None` past `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buffer),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            // GOAWAY, SETTINGS and the like: keep reading until the close.
            Ok(Ok(_)) => {}
        }
    }
}

fn ok_origin() -> Reply {
    Reply::ok("hello", &[("cache-control", "max-age=60")])
}

#[tokio::test]
async fn silent_connection_is_closed_after_header_timeout() {
    let origin = Origin::start(|_| ok_origin()).await;
    // The test config gives clients 2 s for a request head.
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let mut silent = TcpStream::connect(edge.http).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(6)).await;
    let took = took.expect("a connection that sends nothing is closed");
    assert!(
        took >= Duration::from_millis(1500),
        "not before the timeout: {took:?}"
    );
}

#[tokio::test]
async fn trickled_request_head_is_cut_off() {
    let origin = Origin::start(|_| ok_origin()).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let mut slow = TcpStream::connect(edge.http).await.unwrap();
    let started = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: site.test\r\nX-Slow: ";
    for byte in head.iter().cycle().take(40) {
        if slow.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let took = closed_within(&mut slow, Duration::from_secs(6))
        .await
        .expect("a head sent one byte at a time is cut off");
    assert!(started.elapsed() - took < Duration::from_secs(5));
}

#[tokio::test]
async fn keep_alive_connection_is_closed_after_idle_timeout() {
    let origin = Origin::start(|_| ok_origin()).await;
    let edge = EdgeProcess::start_with_server(&[origin.address()], "idle_timeout = \"1s\"\n", "");
    let mut client = TcpStream::connect(edge.http).await.unwrap();
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = client.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    let took = closed_within(&mut client, Duration::from_secs(4))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(took >= Duration::from_millis(700), "{took:?}");
}

#[tokio::test]
async fn http2_connection_silent_after_its_preface_is_closed() {
    let origin = Origin::start(|_| ok_origin()).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    let mut full = TcpStream::connect(edge.http).await.unwrap();
    full.write_all(preface).await.unwrap();
    full.write_all(&settings).await.unwrap();
    let mut half = TcpStream::connect(edge.http).await.unwrap();
    half.write_all(&preface[..12]).await.unwrap();
    let (full, half) = tokio::join!(
        closed_within(&mut full, Duration::from_secs(6)),
        closed_within(&mut half, Duration::from_secs(6)),
    );
    assert!(
        full.is_some(),
        "HTTP/2 connection idle after its preface stays open"
    );
    assert!(
        half.is_some(),
        "connection idle after half a preface stays open"
    );
}

#[tokio::test]
async fn silent_flood_from_one_address_leaves_room_for_others() {
    let origin = Origin::start(|_| ok_origin()).await;
    let edge = EdgeProcess::start_with_server(
        &[origin.address()],
        "max_connections = 400\nmax_connections_per_client = 100\n",
        "",
    );
    // The attacker has its own address; the edge's address is its own too.
    let attacker = Ipv4Addr::new(127, 0, 0, 200);
    let mut held = Vec::new();
    for _ in 0..1000 {
        if let Ok(stream) = connect_from(attacker, edge.http).await {
            held.push(stream);
        }
    }
    let started = Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(3), get(edge.http, "/victim", &[]))
        .await
        .expect("a new client is served while one address floods the edge");
    assert_eq!(got.status, 200);
    eprintln!(
        "served in {:?} with {} flood connections held",
        started.elapsed(),
        held.len()
    );
    // Connections told to make room finish closing within moments.
    let mut open = f64::MAX;
    let mut metrics = String::new();
    for _ in 0..20 {
        metrics = admin_get(edge.admin, "/metrics").await.1;
        open = metric(&metrics, "edge_connections_open");
        if open <= 101.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        open <= 101.0,
        "one address holds at most its limit: {open}\n{metrics}"
    );
    assert!(metrics.contains("reason=\"evicted\""), "{metrics}");
}

#[tokio::test]
async fn full_edge_closes_its_longest_idle_connection_for_a_new_client() {
    let origin = Origin::start(|_| ok_origin()).await;
    let edge = EdgeProcess::start_with_server(
        &[origin.address()],
        "max_connections = 40\nmax_connections_per_client = 10\n",
        "",
    );
    // Four addresses fill every slot with silent connections.
    let mut held = Vec::new();
    for source in 201..205 {
        for _ in 0..10 {
            held.push(
                connect_from(Ipv4Addr::new(127, 0, 0, source), edge.http)
                    .await
                    .unwrap(),
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = tokio::time::timeout(Duration::from_secs(3), get(edge.http, "/new", &[]))
        .await
        .expect("a new client is served on a full edge");
    assert_eq!(got.status, 200);
    let first = closed_within(&mut held[0], Duration::from_secs(1)).await;
    assert!(first.is_some(), "the longest-idle connection made room");
}

#[tokio::test]
async fn http2_client_resetting_stream_after_stream_loses_its_connection() {
    // A slow origin: every stream is reset before its response.
    let origin = Origin::start(|_| ok_origin().delayed(Duration::from_millis(500))).await;
    let edge =
        EdgeProcess::start_with_server(&[origin.address()], "max_abandoned_requests = 20\n", "");
    let stream = TcpStream::connect(edge.http).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut sent = 0;
    for index in 0..2000 {
        let request = hyper::Request::get(format!("http://site.test/reset/{index}"))
            .body(())
            .unwrap();
        match client.send_request(request, true) {
            Ok((response, _)) => {
                sent += 1;
                // Give the edge time to start the stream, then reset it.
                tokio::time::sleep(Duration::from_millis(2)).await;
                drop(response);
            }
            Err(_) => break,
        }
        match tokio::time::timeout(Duration::from_secs(2), client.ready()).await {
            Ok(Ok(ready)) => client = ready,
            _ => break,
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(ended.is_ok(), "the edge closes the connection");
    assert!(
        sent < 2000,
        "streams were refused once over budget ({sent} sent)"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        origin.requests() < 200,
        "origin saw {} fetches for abandoned streams",
        origin.requests()
    );
    let (_, metrics) = admin_get(edge.admin, "/metrics").await;
    assert!(
        metrics.contains("reason=\"abandoned_requests\""),
        "{metrics}"
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn healthz_load_counts_connection_slots() {
    let origin = Origin::start(|_| ok_origin()).await;
    let edge = EdgeProcess::start_with_server(
        &[origin.address()],
        "max_connections = 20\nmax_connections_per_client = 20\n",
        "",
    );
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(edge.http).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, body) = admin_get(edge.admin, "/healthz").await;
    let report = shared::health::HealthReport::from_json(body.as_bytes()).unwrap();
    assert_eq!(report.load.connections, 10, "{body}");
    assert_eq!(report.load.connection_limit, 20, "{body}");
    assert!(
        (report.load.utilisation.get() - 0.5).abs() < 1e-9,
        "idle connections hold slots: {body}"
    );
}
