//! Fetching from `https://` origins, against the real edge binary and a
//! TLS origin started here: certificates verified against the configured
//! CA (or the system's, which do not know the test CA), the TLS name
//! overridable, a client certificate presented to origins that ask for one,
//! and errors that say why a handshake failed.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::EdgeProcess;
use e2e::pki::{KeyKind, TestCa};
use e2e::process::wait_until;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const DAY: Duration = Duration::from_secs(86_400);

/// Starts an HTTPS origin on loopback with the certificate at `stem` in
/// `dir`; with `client_ca`, it requires client certificates issued by it.
async fn tls_origin(dir: &Path, stem: &str, client_ca: Option<&TestCa>) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = CertificateDer::pem_file_iter(dir.join(format!("{stem}.pem")))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{stem}.key"))).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).unwrap())
                .unwrap();
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_certificate = tls.get_ref().1.peer_certificates().is_some();
                let service = hyper::service::service_fn(move |_request: Request<_>| async move {
                    let body = format!("secure origin, client certificate: {client_certificate}");
                    Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .header("cache-control", "max-age=60")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn https_origins_are_verified_against_the_configured_ca() {
    let ca = TestCa::new("origin CA");
    let dir = tempfile::tempdir().unwrap();
    ca.issue(dir.path(), "origin", &["origin.test"], KeyKind::Ecdsa, DAY);
    ca.write_root(&dir.path().join("ca.pem"));
    let origin = tls_origin(dir.path(), "origin", None).await;
    let url = format!("https://{origin}");
    let ca_file = dir.path().join("ca.pem");

    // The origin is named by address; its certificate by name.
    let trusting = EdgeProcess::start_with_origin(
        std::slice::from_ref(&url),
        &format!(
            "ca_file = \"{}\"\nserver_name = \"origin.test\"",
            ca_file.display()
        ),
    );
    let got = common::get(trusting.http, "/a", &[]).await;
    assert_eq!(got.status, 200, "{}", trusting.log());
    assert_eq!(got.body, "secure origin, client certificate: false");
    assert_eq!(common::get(trusting.http, "/a", &[]).await.cache(), "HIT");

    // The system's roots do not know the test CA.
    let system =
        EdgeProcess::start_with_origin(std::slice::from_ref(&url), "server_name = \"origin.test\"");
    let got = common::get(system.http, "/a", &[]).await;
    assert_eq!(got.status, 502);
    assert!(
        wait_until(Duration::from_secs(3), || system
            .log()
            .contains("UnknownIssuer")),
        "the log should say the issuer is unknown:\n{}",
        system.log()
    );

    // The right CA, the wrong name.
    let misnamed = EdgeProcess::start_with_origin(
        &[url],
        &format!(
            "ca_file = \"{}\"\nserver_name = \"other.test\"",
            ca_file.display()
        ),
    );
    let got = common::get(misnamed.http, "/a", &[]).await;
    assert_eq!(got.status, 502);
    assert!(
        wait_until(Duration::from_secs(3), || misnamed
            .log()
            .contains("not valid for name \"other.test\"")),
        "the log should say the name does not match:\n{}",
        misnamed.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_is_presented_to_origins_that_ask() {
    let ca = TestCa::new("origin CA");
    let dir = tempfile::tempdir().unwrap();
    ca.issue(dir.path(), "origin", &["origin.test"], KeyKind::Ecdsa, DAY);
    let client = ca.issue(
        dir.path(),
        "edge-client",
        &["edge.test"],
        KeyKind::Ecdsa,
        DAY,
    );
    ca.write_root(&dir.path().join("ca.pem"));
    let origin = tls_origin(dir.path(), "origin", Some(&ca)).await;
    let url = format!("https://{origin}");
    let common_lines = format!(
        "ca_file = \"{}\"\nserver_name = \"origin.test\"",
        dir.path().join("ca.pem").display()
    );
    let with_certificate = EdgeProcess::start_with_origin(
        std::slice::from_ref(&url),
        &format!(
            "{common_lines}\nclient_certificate = \"{}\"\nclient_key = \"{}\"",
            client.certificate.display(),
            client.key.display()
        ),
    );
    let got = common::get(with_certificate.http, "/m", &[]).await;
    assert_eq!(got.status, 200, "{}", with_certificate.log());
    assert_eq!(got.body, "secure origin, client certificate: true");

    let without = EdgeProcess::start_with_origin(&[url], &common_lines);
    let got = common::get(without.http, "/m", &[]).await;
    assert_eq!(got.status, 502);
}
