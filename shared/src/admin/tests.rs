use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

async fn start(token: Option<&str>) -> (AdminServer, CancellationToken) {
    start_with(AdminConfig {
        token: token.map(str::to_string),
        max_connections: 8,
        ..AdminConfig::default()
    })
    .await
}

async fn start_with(config: AdminConfig) -> (AdminServer, CancellationToken) {
    let router = AdminRouter::new()
        .probe("/healthz", |_| async {
            respond(StatusCode::OK, "text/plain", "ok\n")
        })
        .post("/purge", |request| async move {
            respond(StatusCode::OK, "text/plain", request.body)
        })
        .metrics(Arc::new(metrics::new_registry("test", "0.0.0")));
    let shutdown = CancellationToken::new();
    let addr = "127.0.0.1:0".parse().unwrap();
    let server = AdminServer::start(addr, &config, router, shutdown.clone())
        .await
        .unwrap();
    (server, shutdown)
}

/// Sends one raw HTTP/1.1 request and returns the whole response text.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

fn post(path: &str, auth: Option<&str>, body: &str) -> String {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn binds_loopback_by_default() {
    assert!(AdminConfig::default().listen_or(9153).ip().is_loopback());
}

#[tokio::test]
async fn serves_routes_and_metrics() {
    let (server, _shutdown) = start(None).await;
    let health = exchange(server.local_addr(), &get("/healthz")).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");

    let metrics = exchange(server.local_addr(), &get("/metrics")).await;
    assert!(metrics.contains("build_info{program=\"test\""), "{metrics}");
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let (server, _shutdown) = start(None).await;
    let missing = exchange(server.local_addr(), &get("/nope")).await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let wrong = exchange(server.local_addr(), &get("/purge")).await;
    assert!(wrong.starts_with("HTTP/1.1 405"), "{wrong}");
    assert!(
        wrong.to_ascii_lowercase().contains("allow: post"),
        "{wrong}"
    );
}

#[tokio::test]
async fn mutating_route_refused_without_configured_token() {
    let (server, _shutdown) = start(None).await;
    let response = exchange(server.local_addr(), &post("/purge", Some("x"), "all")).await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
}

#[tokio::test]
async fn mutating_route_needs_the_right_token() {
    let (server, _shutdown) = start(Some("s3cret")).await;
    let none = exchange(server.local_addr(), &post("/purge", None, "all")).await;
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    let wrong = exchange(server.local_addr(), &post("/purge", Some("guess"), "all")).await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let right = exchange(server.local_addr(), &post("/purge", Some("s3cret"), "all")).await;
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    assert!(right.ends_with("all"), "{right}");
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let (server, _shutdown) = start(Some("t")).await;
    let body = "x".repeat(MAX_BODY_BYTES + 1);
    let response = exchange(server.local_addr(), &post("/purge", Some("t"), &body)).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn stops_listening_on_shutdown() {
    let (server, shutdown) = start(None).await;
    let addr = server.local_addr();
    shutdown.cancel();
    server.stopped().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[test]
fn query_param_finds_first_value() {
    let request = AdminRequest {
        method: Method::GET,
        path: "/explain".into(),
        query: Some("name=cdn&ip=192.0.2.1&ip=2".into()),
        headers: HeaderMap::new(),
        body: Bytes::new(),
    };
    assert_eq!(request.query_param("ip"), Some("192.0.2.1"));
    assert_eq!(request.query_param("qtype"), None);
}

#[tokio::test]
async fn reads_can_require_the_token_but_the_probe_never_does() {
    let (server, _shutdown) = start_with(AdminConfig {
        token: Some("s3cret".into()),
        token_for_reads: Some(true),
        max_connections: 8,
        ..AdminConfig::default()
    })
    .await;
    let metrics = exchange(server.local_addr(), &get("/metrics")).await;
    assert!(metrics.starts_with("HTTP/1.1 401"), "{metrics}");
    let with_token = exchange(
        server.local_addr(),
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer s3cret\r\n\r\n",
    )
    .await;
    assert!(with_token.starts_with("HTTP/1.1 200"), "{with_token}");
    let health = exchange(server.local_addr(), &get("/healthz")).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let (server, _shutdown) = start(Some("s3cret")).await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let request = format!(
            "POST /purge HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {scheme} s3cret\r\nContent-Length: 0\r\n\r\n"
        );
        let response = exchange(server.local_addr(), &request).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{scheme}: {response}");
    }
    let basic = "POST /purge HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic s3cret\r\nContent-Length: 0\r\n\r\n";
    assert!(
        exchange(server.local_addr(), basic)
            .await
            .starts_with("HTTP/1.1 401")
    );
}

#[tokio::test]
async fn clients_outside_the_allowlist_are_refused() {
    let (server, _shutdown) = start_with(AdminConfig {
        allow: vec!["10.0.0.0/8".parse().unwrap()],
        max_connections: 8,
        ..AdminConfig::default()
    })
    .await;
    let health = exchange(server.local_addr(), &get("/healthz")).await;
    assert!(health.starts_with("HTTP/1.1 403"), "{health}");
    let (allowed, _shutdown) = start_with(AdminConfig {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
        max_connections: 8,
        ..AdminConfig::default()
    })
    .await;
    let health = exchange(allowed.local_addr(), &get("/healthz")).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[test]
fn admin_beyond_loopback_needs_a_token() {
    let open = AdminConfig {
        listen: Some("0.0.0.0:9180".parse().unwrap()),
        ..AdminConfig::default()
    };
    assert!(open.validate().unwrap_err().contains("admin.token"));
    let closed = AdminConfig {
        token: Some("long-random".into()),
        ..open.clone()
    };
    assert!(closed.validate().is_ok());
    assert!(closed.reads_need_token("0.0.0.0:9180".parse().unwrap()));
    assert!(!closed.reads_need_token("127.0.0.1:9180".parse().unwrap()));
    assert!(AdminConfig::default().validate().is_ok());
}

#[test]
fn secrets_compare_by_content_and_length() {
    assert!(secrets_match(b"s3cret", b"s3cret"));
    assert!(!secrets_match(b"s3cre", b"s3cret"));
    assert!(!secrets_match(b"s3cret-and-more", b"s3cret"));
    assert!(!secrets_match(b"s3cres", b"s3cret"));
    assert!(!secrets_match(b"s3crets3cret", b"s3cret"));
    assert!(!secrets_match(b"", b""));
}

#[test]
fn a_file_without_an_admin_section_gets_the_limits_of_an_empty_one() {
    let empty: AdminConfig = crate::config::parse("edge.toml", "").unwrap();
    assert_eq!(AdminConfig::default(), empty);
    assert_eq!(AdminConfig::default().max_connections, 64);
}

#[tokio::test]
async fn a_reload_changes_the_token_for_the_next_request() {
    let (server, shutdown) = start(Some("old")).await;
    let addr = server.local_addr();
    assert!(
        exchange(addr, &post("/purge", Some("old"), "x"))
            .await
            .starts_with("HTTP/1.1 200")
    );
    server
        .reconfigure(&AdminConfig {
            token: Some("new".into()),
            ..AdminConfig::default()
        })
        .unwrap();
    assert!(
        exchange(addr, &post("/purge", Some("old"), "x"))
            .await
            .starts_with("HTTP/1.1 401")
    );
    assert!(
        exchange(addr, &post("/purge", Some("new"), "x"))
            .await
            .starts_with("HTTP/1.1 200")
    );
    shutdown.cancel();
}
