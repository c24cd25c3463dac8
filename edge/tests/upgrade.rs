//! An upgrade without a refused connection or a failed request: a second
//! edge process started with the same file takes the listeners over the
//! handover socket, the first drains its requests and exits, under load
//! from clients on fresh and kept-alive connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::EdgeProcess;
use e2e::origin::{Origin, Reply};
use e2e::process::{ChildGuard, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    /// Requests that failed on a fresh connection: refused, reset, or not
    /// a complete 200.
    failed: AtomicUsize,
    /// Requests resent after a kept-alive connection was closed before
    /// any byte of the answer (RFC 9112 9.3.1, as browsers do).
    retried: AtomicUsize,
    /// What each failure was.
    failures: parking_lot::Mutex<Vec<String>>,
}

impl Tally {
    fn failed(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.failures.lock().push(what);
    }
}

/// Sends one GET on `stream` and reads the whole answer (the edge closes
/// after it when `close`); `None` when the connection ends first.
async fn exchange(stream: &mut TcpStream, path: &str, close: bool) -> Option<Vec<u8>> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let request = format!("GET {path} HTTP/1.1\r\nHost: site.test\r\n{connection}\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            return (!answer.is_empty() && close).then_some(answer);
        }
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|value| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return Some(answer);
            }
        }
    }
}

fn complete(answer: &[u8], body: &str) -> bool {
    let text = String::from_utf8_lossy(answer);
    text.starts_with("HTTP/1.1 200") && text.ends_with(body)
}

/// A new connection per request, as many clients behind NAT make.
async fn fresh_connections(
    edge: SocketAddr,
    path: &'static str,
    body: &'static str,
    tally: Arc<Tally>,
    running: Arc<AtomicBool>,
) {
    while running.load(Ordering::Relaxed) {
        match TcpStream::connect(edge).await {
            Ok(mut stream) => match exchange(&mut stream, path, true).await {
                Some(answer) if complete(&answer, body) => {
                    tally.answered.fetch_add(1, Ordering::Relaxed);
                }
                Some(answer) => {
                    tally.failed(format!("{path}: {}", String::from_utf8_lossy(&answer)))
                }
                None => tally.failed(format!("{path}: the connection ended first")),
            },
            Err(error) => tally.failed(format!("{path}: connect: {error}")),
        }
    }
}

/// One kept-alive connection, reopened when the edge closes it.
async fn kept_alive(edge: SocketAddr, tally: Arc<Tally>, running: Arc<AtomicBool>) {
    let mut stream: Option<TcpStream> = None;
    while running.load(Ordering::Relaxed) {
        let reused = stream.is_some();
        if stream.is_none() {
            stream = TcpStream::connect(edge).await.ok();
        }
        let answer = match stream.as_mut() {
            Some(open) => exchange(open, "/page", false).await,
            None => None,
        };
        match answer {
            Some(answer) if complete(&answer, "page") => {
                tally.answered.fetch_add(1, Ordering::Relaxed);
                if String::from_utf8_lossy(&answer)
                    .to_ascii_lowercase()
                    .contains("connection: close")
                {
                    stream = None;
                }
            }
            None if reused => {
                // Closed while idle: open a new one and send again.
                tally.retried.fetch_add(1, Ordering::Relaxed);
                stream = None;
            }
            other => {
                tally.failed(format!(
                    "kept alive (reused: {reused}): {:?}",
                    other.map(|answer| String::from_utf8_lossy(&answer).into_owned())
                ));
                stream = None;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_process_takes_over_without_a_failed_request() {
    let origin = Origin::start(|seen| {
        if seen.uri.starts_with("/slow") {
            // In flight on the old process when it is told to drain.
            Reply::ok("slow", &[("cache-control", "no-store")]).delayed(Duration::from_millis(700))
        } else {
            Reply::ok("page", &[("cache-control", "no-store")])
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("handover.sock");
    let old = EdgeProcess::start_with_server(
        &[origin.address()],
        &format!("handover_socket = \"{}\"", socket.display()),
        "",
    );
    assert!(
        wait_until(Duration::from_secs(5), || socket.exists()),
        "{}",
        old.log()
    );
    let mut old = old;

    let tally = Arc::new(Tally::default());
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(tokio::spawn(fresh_connections(
            old.http,
            "/page",
            "page",
            tally.clone(),
            running.clone(),
        )));
        clients.push(tokio::spawn(kept_alive(
            old.http,
            tally.clone(),
            running.clone(),
        )));
    }
    for _ in 0..4 {
        clients.push(tokio::spawn(fresh_connections(
            old.http,
            "/slow",
            "slow",
            tally.clone(),
            running.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = tally.answered.load(Ordering::Relaxed);

    // The upgrade: the same file, a second process.
    let config = old.dir.path().join("edge.toml");
    let new_log = old.dir.path().join("edge-new.log");
    let mut new = ChildGuard::spawn(
        "edge (new)",
        std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info"),
        &new_log,
    )
    .unwrap();
    let exited = tokio::task::spawn_blocking(move || {
        let status = old.process.wait_timeout(Duration::from_secs(20));
        (status, old)
    })
    .await
    .unwrap();
    let (status, old) = exited;
    let new_text = || std::fs::read_to_string(&new_log).unwrap_or_default();
    assert!(
        status.is_some_and(|status| status.success()),
        "the old process did not drain and exit: {status:?}\nold:\n{}\nnew:\n{}",
        old.log(),
        new_text()
    );
    // Served by the new process alone for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert!(
        new.try_wait().is_none(),
        "the new process stopped:\n{}",
        new_text()
    );

    let answered = tally.answered.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let retried = tally.retried.load(Ordering::Relaxed);
    eprintln!(
        "answered {answered} ({before} before the upgrade), failed {failed}, resent on a new connection {retried}"
    );
    assert_eq!(
        failed,
        0,
        "{:?}\nold:\n{}\nnew:\n{}",
        tally.failures.lock(),
        old.log(),
        new_text()
    );
    assert!(
        answered > before + 100,
        "{answered} answered, {before} before the upgrade"
    );
    assert!(
        old.log().contains("a new process serves on our listeners"),
        "{}",
        old.log()
    );
    assert!(
        new_text().contains("taking over from the running process"),
        "{}",
        new_text()
    );
    // The new process offers its listeners for the next upgrade.
    assert!(socket.exists());
    new.signal("TERM");
}
