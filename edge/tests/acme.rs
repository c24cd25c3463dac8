//! Automatic certificates against a real ACME CA (pebble, started here on
//! loopback): HTTP-01 and TLS-ALPN-01 orders, the chain served verified by
//! curl and openssl against the CA's root, the certificate kept across
//! restarts, renewal before expiry, failures explained and retried, and
//! what check-config says about `[acme]`.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{EdgeProcess, metric_line, tools_present};
use e2e::origin::{Origin, Reply};
use e2e::pebble::{Pebble, PebbleSettings};
use e2e::process::unique_loopback;

const NAMES: [&str; 2] = ["shop.cdn.test", "www.shop.cdn.test"];

/// Ports of the edge (as pebble's validation authority is told).
const HTTP_PORT: u16 = 8080;
const TLS_PORT: u16 = 8443;

async fn origin() -> Origin {
    Origin::start(|_| Reply::ok("from the origin", &[("cache-control", "max-age=60")])).await
}

/// A CA validating on the edge's ports at `address`.
fn pebble(address: Ipv4Addr, validity: Duration) -> Option<Pebble> {
    Pebble::start(PebbleSettings {
        names_resolve_to: address,
        http_port: HTTP_PORT,
        tls_port: TLS_PORT,
        validity,
        dns_server: None,
    })
}

/// An edge at `address` keeping a certificate for [`NAMES`] from `pebble`
/// in `state`; `tls` and `acme` add lines to those sections.
fn acme_edge(
    address: Ipv4Addr,
    origin: &Origin,
    pebble: &Pebble,
    state: &Path,
    challenge: &str,
    tls: &str,
) -> EdgeProcess {
    acme_edge_with(
        address,
        origin,
        pebble,
        state,
        challenge,
        tls,
        &pebble.listener_ca_file(),
        "",
    )
}

/// Like [`acme_edge`], trusting `ca_file` for the CA's HTTPS, with `extra`
/// sections.
#[allow(clippy::too_many_arguments)]
fn acme_edge_with(
    address: Ipv4Addr,
    origin: &Origin,
    pebble: &Pebble,
    state: &Path,
    challenge: &str,
    tls: &str,
    ca_file: &Path,
    extra: &str,
) -> EdgeProcess {
    let names: Vec<String> = NAMES.iter().map(|name| format!("\"{name}\"")).collect();
    let extra = format!(
        "\n[tls]\nlisten = [\"{address}:{TLS_PORT}\"]\n{tls}\n\n\
         [acme]\ndirectory = \"{}\"\nca_file = \"{}\"\nstate_directory = \"{}\"\n\
         terms_of_service_agreed = true\ncontact = [\"mailto:ops@cdn.test\"]\n\
         challenge = \"{challenge}\"\n\n\
         [[acme.certificates]]\nnames = [{}]\n\n{extra}\n",
        pebble.directory(),
        ca_file.display(),
        state.display(),
        names.join(", ")
    );
    EdgeProcess::start_named(address, "edge-acme", &[origin.address()], "", &extra)
}

/// Writes the CA's issuing root for clients to verify against.
fn issuing_root(pebble: &Pebble, dir: &Path) -> PathBuf {
    let path = dir.join("pebble-root.pem");
    std::fs::write(&path, pebble.issuing_root_pem()).unwrap();
    path
}

/// The leaf certificate the edge at `address` serves for `host`, once one
/// verifies against `root`.
async fn leaf_once_served(address: Ipv4Addr, host: &str, root: &Path) -> Option<String> {
    wait_until_served(address, host, root, Duration::from_secs(60))
        .await
        .then(|| served_leaf(address, host, root))
}

/// curl over HTTPS to `host` at the edge, verifying against `root`:
/// the body, or curl's error.
fn curl(address: Ipv4Addr, host: &str, root: &Path) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{host}:{TLS_PORT}:{address}"))
        .arg(format!("https://{host}:{TLS_PORT}/"))
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// What `openssl s_client` says of a handshake for `host`, verified
/// against `root`.
fn s_client(address: Ipv4Addr, host: &str, root: &Path) -> String {
    let output = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("{address}:{TLS_PORT}"))
        .arg("-servername")
        .arg(host)
        .arg("-verify_hostname")
        .arg(host)
        .arg("-verify_return_error")
        .arg("-CAfile")
        .arg(root)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A rustls handshake for `host` at the edge, verifying the chain against
/// `root` and the name against `host`: the error if it fails.
async fn rustls_verifies(address: Ipv4Addr, host: &str, root: &Path) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root).unwrap();
    for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect((address, TLS_PORT))
        .await
        .map_err(|error| error.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    connector
        .connect(name, tcp)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// The served leaf certificate in PEM, as s_client prints it.
fn served_leaf(address: Ipv4Addr, host: &str, root: &Path) -> String {
    let text = s_client(address, host, root);
    let start = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    match (start, end) {
        (Some(start), Some(end)) => text[start..end].to_string(),
        _ => String::new(),
    }
}

/// Polls until `host` is served with a chain that verifies against `root`.
async fn wait_until_served(address: Ipv4Addr, host: &str, root: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if curl(address, host, root).is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn http_01_gives_a_certificate_clients_verify_and_a_restart_serves_it_without_a_new_order() {
    if !tools_present() {
        return;
    }
    let address = unique_loopback();
    let Some(pebble) = pebble(address, Duration::from_secs(90 * 86_400)) else {
        return;
    };
    let origin = origin().await;
    let state = tempfile::tempdir().unwrap();
    let edge = acme_edge(address, &origin, &pebble, state.path(), "http-01", "");
    let root = issuing_root(&pebble, state.path());
    assert!(
        wait_until_served(address, NAMES[0], &root, Duration::from_secs(60)).await,
        "no certificate served:\n{}\n{}",
        edge.log(),
        pebble.log()
    );
    assert_eq!(curl(address, NAMES[0], &root).unwrap(), "from the origin");
    // One certificate covers both names, and openssl verifies the chain.
    let verified = s_client(address, NAMES[1], &root);
    assert!(
        verified.contains("Verify return code: 0 (ok)"),
        "{verified}"
    );
    rustls_verifies(address, NAMES[1], &root).await.unwrap();
    // The chain is not accepted for a name it does not cover.
    assert!(
        rustls_verifies(address, "other.cdn.test", &root)
            .await
            .is_err()
    );
    assert_eq!(
        metric_line(&edge, "edge_acme_orders_total{result=\"issued\"}").await,
        1
    );
    // The key and the account are private to the edge.
    use std::os::unix::fs::PermissionsExt;
    let key = state.path().join("certificates/shop.cdn.test/key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let accounts: Vec<_> = std::fs::read_dir(state.path().join("accounts"))
        .unwrap()
        .collect();
    assert_eq!(accounts.len(), 1);
    // The key never reaches the log.
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!edge.log().contains(key_body));
    let first = served_leaf(address, NAMES[0], &root);
    assert!(!first.is_empty());

    drop(edge);
    let edge = acme_edge(address, &origin, &pebble, state.path(), "http-01", "");
    assert_eq!(curl(address, NAMES[0], &root).unwrap(), "from the origin");
    assert_eq!(served_leaf(address, NAMES[0], &root), first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        metric_line(&edge, "edge_acme_orders_total{result=\"issued\"}").await,
        0
    );
    assert!(
        !edge.log().contains("ordering an ACME certificate"),
        "{}",
        edge.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_alpn_01_gives_a_certificate_while_plain_http_redirects() {
    if !tools_present() {
        return;
    }
    let address = unique_loopback();
    let Some(pebble) = pebble(address, Duration::from_secs(90 * 86_400)) else {
        return;
    };
    let origin = origin().await;
    let state = tempfile::tempdir().unwrap();
    let edge = acme_edge(
        address,
        &origin,
        &pebble,
        state.path(),
        "tls-alpn-01",
        "redirect_http = true",
    );
    let root = issuing_root(&pebble, state.path());
    assert!(
        wait_until_served(address, NAMES[1], &root, Duration::from_secs(60)).await,
        "no certificate served:\n{}\n{}",
        edge.log(),
        pebble.log()
    );
    assert!(
        metric_line(&edge, "edge_tls_acme_challenges_answered_total").await >= 2,
        "{}",
        edge.log()
    );
    let plain = common::get(edge.http, "/", &[("host", NAMES[0])]).await;
    assert_eq!(plain.status, hyper::StatusCode::PERMANENT_REDIRECT);
    // A client asking for acme-tls/1 with no validation pending gets no
    // certificate at all.
    let output = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("{address}:{TLS_PORT}"))
        .args(["-servername", NAMES[0], "-alpn", "acme-tls/1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("BEGIN CERTIFICATE"), "{text}");
    assert!(
        metric_line(
            &edge,
            "edge_tls_handshake_errors_total{reason=\"acme_unknown_name\"}"
        )
        .await
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_certificate_is_renewed_before_it_expires() {
    if !tools_present() {
        return;
    }
    let address = unique_loopback();
    // Renewal falls at 60-67% of the lifetime: 18-20 s here.
    let Some(pebble) = pebble(address, Duration::from_secs(30)) else {
        return;
    };
    let origin = origin().await;
    let state = tempfile::tempdir().unwrap();
    let edge = acme_edge(address, &origin, &pebble, state.path(), "http-01", "");
    let root = issuing_root(&pebble, state.path());
    assert!(
        wait_until_served(address, NAMES[0], &root, Duration::from_secs(60)).await,
        "no certificate served:\n{}\n{}",
        edge.log(),
        pebble.log()
    );
    let first = served_leaf(address, NAMES[0], &root);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut renewed = false;
    while tokio::time::Instant::now() < deadline && !renewed {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = served_leaf(address, NAMES[0], &root);
        renewed = !now.is_empty() && now != first;
    }
    assert!(renewed, "not renewed:\n{}", edge.log());
    assert!(metric_line(&edge, "edge_acme_orders_total{result=\"issued\"}").await >= 2);
    // The new certificate is still valid when served.
    assert!(curl(address, NAMES[0], &root).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_validation_is_logged_with_the_cas_reason_and_plain_http_keeps_serving() {
    if !tools_present() {
        return;
    }
    let address = unique_loopback();
    // The CA validates TLS-ALPN-01 on a port nobody listens on.
    let Some(pebble) = Pebble::start(PebbleSettings {
        names_resolve_to: address,
        http_port: HTTP_PORT,
        tls_port: 9443,
        validity: Duration::from_secs(90 * 86_400),
        dns_server: None,
    }) else {
        return;
    };
    let origin = origin().await;
    let state = tempfile::tempdir().unwrap();
    let edge = acme_edge(address, &origin, &pebble, state.path(), "tls-alpn-01", "");
    let failed = e2e::process::wait_until(Duration::from_secs(60), || {
        edge.log().contains("ACME order failed")
    });
    assert!(failed, "{}\n{}", edge.log(), pebble.log());
    let log = edge.log();
    assert!(log.contains("validation failed"), "{log}");
    assert!(
        log.contains("9443"),
        "the CA's reason names the port: {log}"
    );
    assert!(log.contains("retry_in"), "{log}");
    assert_eq!(
        metric_line(&edge, "edge_acme_orders_total{result=\"failed\"}").await,
        1
    );
    // No certificate yet: handshakes are refused, plain HTTP serves.
    let output = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(SocketAddr::new(IpAddr::V4(address), TLS_PORT).to_string())
        .args(["-servername", NAMES[0]])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&output.stdout).contains("BEGIN CERTIFICATE"));
    assert_eq!(
        metric_line(
            &edge,
            "edge_tls_handshake_errors_total{reason=\"no_certificate\"}"
        )
        .await,
        1
    );
    let plain = common::get(edge.http, "/", &[("host", NAMES[0])]).await;
    assert_eq!(plain.status, hyper::StatusCode::OK);
}

#[test]
fn check_config_explains_what_acme_needs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        "[origin]\nurls = [\"http://127.0.0.1:9\"]\n\n\
         [acme]\ndirectory = \"http://ca.test/dir\"\ncontact = [\"ops@cdn.test\"]\n\n\
         [[acme.certificates]]\nnames = [\"*.cdn.test\", \"cdn\", \"192.0.2.1\", \"a.cdn.test\"]\n\n\
         [[acme.certificates]]\nnames = [\"A.cdn.test\"]\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_edge"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "tls.listen: [acme] certificates are served on tls.listen",
        "acme.directory: \"http://ca.test/dir\" is not an https:// URL",
        "acme.terms_of_service_agreed",
        "acme.contact[0]: \"ops@cdn.test\" is not a mailto: URL",
        "\"*.cdn.test\" is a wildcard, which CAs issue only with the dns-01 challenge",
        "\"cdn\" is not a fully qualified host name",
        "\"192.0.2.1\" is an address",
        "acme.certificates[1].names: \"A.cdn.test\" is already in another certificate",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_cluster_one_edge_orders_another_answers_the_challenge_and_all_serve_the_result() {
    if !tools_present() {
        return;
    }
    let Some(etcd) = e2e::etcd::Etcd::start(1) else {
        return;
    };
    // The CA reaches `answering` for every name; that edge cannot order
    // (it does not trust the CA), so the certificate can only come from
    // `ordering`, validated through the answer it published in etcd.
    let answering_address = unique_loopback();
    let ordering_address = unique_loopback();
    let Some(pebble) = pebble(answering_address, Duration::from_secs(90 * 86_400)) else {
        return;
    };
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let wrong_ca = e2e::pki::TestCa::new("not the CA's");
    let wrong_ca_file = dir.path().join("wrong-ca.pem");
    wrong_ca.write_root(&wrong_ca_file);
    let cluster = format!(
        "[cluster]\nendpoints = {}\nprefix = \"/acme-test\"\n",
        etcd.endpoints_toml()
    );
    let states: Vec<PathBuf> = ["answering", "ordering", "late"]
        .iter()
        .map(|name| dir.path().join(name))
        .collect();
    let answering = acme_edge_with(
        answering_address,
        &origin,
        &pebble,
        &states[0],
        "http-01",
        "",
        &wrong_ca_file,
        &cluster,
    );
    let ordering = acme_edge_with(
        ordering_address,
        &origin,
        &pebble,
        &states[1],
        "http-01",
        "",
        &pebble.listener_ca_file(),
        &cluster,
    );
    let root = issuing_root(&pebble, dir.path());
    let ordered = leaf_once_served(ordering_address, NAMES[0], &root).await;
    let ordered = ordered.unwrap_or_else(|| {
        panic!(
            "the ordering edge serves nothing:\n{}\n--- answering:\n{}\n{}",
            ordering.log(),
            answering.log(),
            pebble.log()
        )
    });
    let answered = leaf_once_served(answering_address, NAMES[1], &root).await;
    assert_eq!(
        answered.as_deref(),
        Some(ordered.as_str()),
        "the answering edge does not serve the certificate:\n{}",
        answering.log()
    );
    assert!(
        answering
            .log()
            .contains("ACME certificate from the cluster served"),
        "{}",
        answering.log()
    );
    assert_eq!(
        metric_line(&ordering, "edge_acme_orders_total{result=\"issued\"}").await,
        1,
        "{}",
        ordering.log()
    );
    assert_eq!(
        metric_line(&answering, "edge_acme_orders_total{result=\"issued\"}").await,
        0,
        "{}",
        answering.log()
    );
    // An edge that joins later serves the stored certificate without
    // ordering.
    let late_address = unique_loopback();
    let late = acme_edge_with(
        late_address,
        &origin,
        &pebble,
        &states[2],
        "http-01",
        "",
        &pebble.listener_ca_file(),
        &cluster,
    );
    let joined = leaf_once_served(late_address, NAMES[0], &root).await;
    assert_eq!(joined.as_deref(), Some(ordered.as_str()), "{}", late.log());
    assert_eq!(
        metric_line(&late, "edge_acme_orders_total{result=\"issued\"}").await,
        0,
        "{}",
        late.log()
    );
}
