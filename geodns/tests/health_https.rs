//! `https://` health URLs, checked by the real binary against a TLS health
//! endpoint started here: verified against the system's CA certificates,
//! which `SSL_CERT_FILE` replaces, so that an edge whose certificate no
//! trusted CA issued counts as down.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{Geodns, config, eu, us};
use e2e::pki::{KeyKind, TestCa};
use e2e::process::{unique_loopback, wait_until};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `200 ok` over TLS on 127.0.0.1 with the certificate `health` in `dir`.
fn tls_health_endpoint(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> SocketAddr {
    let chain = CertificateDer::pem_file_iter(dir.join("health.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("health.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    address
}

#[test]
fn https_health_urls_are_verified_against_the_trusted_cas() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ca = TestCa::new("health CA");
    let dir = tempfile::tempdir().unwrap();
    ca.issue(
        dir.path(),
        "health",
        &["127.0.0.1"],
        KeyKind::Ecdsa,
        Duration::from_secs(86_400),
    );
    let ca_file = dir.path().join("ca.pem");
    ca.write_root(&ca_file);
    let endpoint = tls_health_endpoint(&runtime, dir.path());
    let url = format!("https://{endpoint}/healthz");
    let edges = [("eu-1", "eu", url.as_str()), ("us-1", "us", "")];
    let start = |environment: &[(&str, &std::path::Path)]| {
        let address = unique_loopback();
        let dns = SocketAddr::new(IpAddr::V4(address), 5300);
        let admin = SocketAddr::new(IpAddr::V4(address), 9300);
        Geodns::start_with_environment(
            dns,
            admin,
            &config(dns, admin, &edges, ""),
            Some("info,geodns=debug"),
            environment,
        )
    };

    // Trusted: eu-1 is up and answers for Amsterdam.
    let trusting = start(&[("SSL_CERT_FILE", ca_file.as_path())]);
    assert!(
        wait_until(Duration::from_secs(3), || trusting.a_for(
            "www.cdn.test",
            "192.0.2.0",
            24
        ) == [eu()]),
        "eu-1 was not up over HTTPS:\n{}",
        trusting.log()
    );
    // And stays up check after check (two failures would take it down).
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        trusting.a_for("www.cdn.test", "192.0.2.0", 24),
        [eu()],
        "{}",
        trusting.log()
    );

    // The system's roots do not know the test CA: eu-1 is down, and
    // Amsterdam goes to the next nearest.
    let distrusting = start(&[]);
    assert!(
        wait_until(Duration::from_secs(3), || distrusting.a_for(
            "www.cdn.test",
            "192.0.2.0",
            24
        ) == [us()]),
        "eu-1 was up with a certificate no trusted CA issued:\n{}",
        distrusting.log()
    );
}
