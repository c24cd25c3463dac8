//! Starting the real edge binary in front of a test origin, and a client.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use e2e::process::{ChildGuard, unique_loopback, wait_until};
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A running edge.
pub struct EdgeProcess {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub process: ChildGuard,
}

impl EdgeProcess {
    /// Starts an edge for `origins` with extra config lines under `[cache]`
    /// and elsewhere (`extra` is appended verbatim).
    pub fn start(origins: &[SocketAddr], cache: &str, extra: &str) -> Self {
        Self::start_named(unique_loopback(), "edge-test", origins, cache, extra)
    }

    /// Like [`EdgeProcess::start`] with extra lines under `[server]`.
    pub fn start_with_server(origins: &[SocketAddr], server: &str, extra: &str) -> Self {
        Self::start_full(
            unique_loopback(),
            "edge-test",
            origins,
            server,
            "",
            extra,
            None,
        )
    }

    /// Like [`EdgeProcess::start_with_server`], with `cache` lines too, under
    /// an open files limit (soft and hard) of `open_files`.
    pub fn start_with_open_files(
        origins: &[SocketAddr],
        server: &str,
        cache: &str,
        open_files: u64,
    ) -> Self {
        Self::start_full(
            unique_loopback(),
            "edge-test",
            origins,
            server,
            cache,
            "",
            Some(open_files),
        )
    }

    /// Like [`EdgeProcess::start`], on `address` (ports 8080 and 9180) with
    /// `server.name = name`.
    pub fn start_named(
        address: std::net::Ipv4Addr,
        name: &str,
        origins: &[SocketAddr],
        cache: &str,
        extra: &str,
    ) -> Self {
        Self::start_full(address, name, origins, "", cache, extra, None)
    }

    /// An edge whose `[origin]` section is `urls` (as written, any
    /// scheme) and the lines of `origin`.
    pub fn start_with_origin(urls: &[String], origin: &str) -> Self {
        let urls: Vec<String> = urls.iter().map(|url| format!("\"{url}\"")).collect();
        let origin_section = format!("urls = [{}]\n{origin}", urls.join(", "));
        Self::start_configured(
            unique_loopback(),
            "edge-test",
            &origin_section,
            "",
            "",
            "",
            None,
        )
    }

    /// An edge on `address` named `name` whose `[origin]` section is the
    /// lines of `origin` (urls included), with `extra` appended.
    pub fn start_with_origin_on(
        address: std::net::Ipv4Addr,
        name: &str,
        origin: &str,
        extra: &str,
    ) -> Self {
        Self::start_configured(address, name, origin, "", "", extra, None)
    }

    fn start_full(
        address: std::net::Ipv4Addr,
        name: &str,
        origins: &[SocketAddr],
        server: &str,
        cache: &str,
        extra: &str,
        open_files: Option<u64>,
    ) -> Self {
        let urls: Vec<String> = origins
            .iter()
            .map(|origin| format!("\"http://{origin}\""))
            .collect();
        Self::start_configured(
            address,
            name,
            &format!("urls = [{}]", urls.join(", ")),
            server,
            cache,
            extra,
            open_files,
        )
    }

    /// `origin` holds the lines of `[origin]` besides `first_byte_timeout`.
    fn start_configured(
        address: std::net::Ipv4Addr,
        name: &str,
        origin: &str,
        server: &str,
        cache: &str,
        extra: &str,
        open_files: Option<u64>,
    ) -> Self {
        let http = SocketAddr::new(IpAddr::V4(address), 8080);
        let admin = SocketAddr::new(IpAddr::V4(address), 9180);
        // Test defaults, unless the test sets its own.
        let mut cache_defaults = String::new();
        for (key, value) in [("capacity", "64MiB"), ("max_object_size", "1MiB")] {
            if !cache.contains(key) {
                cache_defaults.push_str(&format!("{key} = \"{value}\"\n"));
            }
        }
        let config = format!(
            "[server]\nlisten = [\"{http}\"]\nname = \"{name}\"\nheader_timeout = \"2s\"\n{server}\n\n\
             [origin]\nfirst_byte_timeout = \"3s\"\n{origin}\n\n\
             [cache]\n{cache_defaults}{cache}\n\n\
             [admin]\nlisten = \"{admin}\"\ntoken = \"secret\"\n{extra}\n"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, config).expect("write config");
        // prlimit (util-linux) sets the limit and then executes the edge.
        let mut command = match open_files {
            Some(limit) => {
                assert!(
                    Command::new("prlimit").arg("--version").output().is_ok(),
                    "prlimit not found: apt-get install util-linux"
                );
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_edge"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_edge")),
        };
        let process = ChildGuard::spawn(
            "edge",
            command
                .arg("run")
                .arg("--config")
                .arg(&path)
                .env("RUST_LOG", "info,edge=debug"),
            &dir.path().join("edge.log"),
        )
        .expect("start edge");
        let edge = Self {
            http,
            admin,
            dir,
            process,
        };
        let ready = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(http).is_ok()
        });
        assert!(ready, "edge did not start:\n{}", edge.log());
        edge
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("edge.log")).unwrap_or_default()
    }
}

/// A response as a test sees it.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    /// `X-Cache`.
    pub fn cache(&self) -> &str {
        self.headers
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request.
pub async fn send(
    edge: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Got {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(format!("http://{edge}{path}"))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    request
        .headers_mut()
        .insert("host", HeaderValue::from_static("site.test"));
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        let value = HeaderValue::from_str(value).unwrap();
        // A test's own Host replaces the default one.
        if name == hyper::header::HOST {
            request.headers_mut().insert(name, value);
        } else {
            request.headers_mut().append(name, value);
        }
    }
    let response = client.request(request).await.expect("request");
    let (parts, body) = response.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// GET with headers.
pub async fn get(edge: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    send(edge, "GET", path, headers, b"").await
}

/// POST to the admin API with an optional token; returns status and body.
pub async fn admin_post(
    admin: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut request = Request::post(format!("http://{admin}{path}"))
        .body(Empty::new())
        .unwrap();
    if let Some(token) = token {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
    }
    let response = client.request(request).await.expect("admin request");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GET from the admin API.
pub async fn admin_get(admin: SocketAddr, path: &str) -> (StatusCode, String) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let response = client
        .request(
            Request::get(format!("http://{admin}{path}"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .expect("admin request");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of an unlabelled sample in the edge's `/metrics`.
pub async fn metric(edge: &EdgeProcess, name: &str) -> u64 {
    let (_, metrics) = admin_get(edge.admin, "/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        .parse::<f64>()
        .unwrap() as u64
}

/// Whether curl and openssl, which the HTTPS tests drive, are installed;
/// says how to get them otherwise.
pub fn tools_present() -> bool {
    for (tool, package) in [("curl", "curl"), ("openssl", "openssl")] {
        if Command::new(tool).arg("--version").output().is_err()
            && Command::new(tool).arg("version").output().is_err()
        {
            e2e::requirements::missing(
                &format!("{tool} is not installed"),
                &format!("apt-get install {package}"),
            );
            return false;
        }
    }
    true
}

/// The value of one labelled sample in the edge's `/metrics`, 0 when absent.
pub async fn metric_line(edge: &EdgeProcess, series: &str) -> u64 {
    let (_, metrics) = admin_get(edge.admin, "/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |value| value.parse::<f64>().unwrap_or(0.0) as u64)
}
