//! HTTPS for clients, against the real edge binary: certificates from PEM
//! files chosen by SNI and key type, HTTP/2 and HTTP/1.1 by ALPN, session
//! resumption, reloads on file changes and SIGHUP, redirects and HSTS,
//! handshake deadlines, and what check-config says about bad pairs.
//! Clients are curl, openssl s_client and rustls.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{EdgeProcess, metric_line, tools_present};
use e2e::origin::{Origin, Reply};
use e2e::pki::{IssuedFiles, KeyKind, TestCa};
use e2e::process::{unique_loopback, wait_until};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAY: Duration = Duration::from_secs(86_400);

/// An edge with `[tls]` on port 8443 of its address.
struct HttpsEdge {
    edge: EdgeProcess,
    tls: SocketAddr,
    ca: TestCa,
    certs: tempfile::TempDir,
}

impl HttpsEdge {
    /// `certificates` are issued before the edge starts, in that order;
    /// `tls` adds lines under `[tls]`.
    fn start(origin: SocketAddr, certificates: &[(&str, &[&str], KeyKind)], tls: &str) -> Self {
        let ca = TestCa::new("geocdn test CA");
        let certs = tempfile::tempdir().expect("tempdir");
        let mut sections = String::new();
        for (stem, names, kind) in certificates {
            let files = ca.issue(certs.path(), stem, names, *kind, 30 * DAY);
            sections.push_str(&certificate_section(&files));
        }
        ca.write_root(&certs.path().join("ca.pem"));
        let address = unique_loopback();
        let tls_address = SocketAddr::new(IpAddr::V4(address), 8443);
        let extra = format!("\n[tls]\nlisten = [\"{tls_address}\"]\n{tls}\n{sections}");
        let edge = EdgeProcess::start_named(address, "edge-https", &[origin], "", &extra);
        assert!(
            wait_until(Duration::from_secs(5), || std::net::TcpStream::connect(
                tls_address
            )
            .is_ok()),
            "no HTTPS listener:\n{}",
            edge.log()
        );
        Self {
            edge,
            tls: tls_address,
            ca,
            certs,
        }
    }

    /// One ECDSA certificate for `site.test`.
    fn for_site(origin: SocketAddr, tls: &str) -> Self {
        Self::start(origin, &[("site", &["site.test"], KeyKind::Ecdsa)], tls)
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.certs.path().join("ca.pem")
    }

    /// curl over HTTPS to `host` (resolved to the edge); returns the
    /// response head, the body and the HTTP version curl used.
    fn curl(&self, host: &str, path: &str, args: &[&str]) -> (String, String, String) {
        let output = Command::new("curl")
            .arg("-sS")
            .arg("--max-time")
            .arg("10")
            .arg("--cacert")
            .arg(self.ca_file())
            .arg("--resolve")
            .arg(format!("{host}:{}:{}", self.tls.port(), self.tls.ip()))
            .arg("-D")
            .arg("-")
            .arg("-w")
            .arg("\n%{http_version}")
            .args(args)
            .arg(format!("https://{host}:{}{path}", self.tls.port()))
            .output()
            .expect("run curl");
        assert!(
            output.status.success(),
            "curl failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.edge.log()
        );
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
        let (body, version) = rest.rsplit_once('\n').expect("the version line");
        (head.to_string(), body.to_string(), version.to_string())
    }

    /// What `openssl s_client` prints for a handshake naming `sni`, with
    /// extra arguments (signature algorithms, versions).
    fn s_client(&self, sni: &str, args: &[&str]) -> String {
        let output = Command::new("openssl")
            .arg("s_client")
            .arg("-connect")
            .arg(self.tls.to_string())
            .arg("-servername")
            .arg(sni)
            .arg("-CAfile")
            .arg(self.ca_file())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run openssl");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

fn certificate_section(files: &IssuedFiles) -> String {
    format!(
        "[[tls.certificates]]\ncertificate = \"{}\"\nkey = \"{}\"\n",
        files.certificate.display(),
        files.key.display()
    )
}

async fn origin() -> Origin {
    Origin::start(|seen| {
        let proto = seen
            .headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(
            format!("proto={proto}"),
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "text/plain"),
            ],
        )
    })
    .await
}

/// A rustls client that trusts `ca`, offering `versions` and HTTP/1.1.
fn rustls_client(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).expect("root"))
        .expect("add root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// What one HTTP/1.1 exchange over rustls saw.
struct Exchange {
    response: String,
    kind: Option<rustls::HandshakeKind>,
    version: Option<rustls::ProtocolVersion>,
    group: Option<rustls::NamedGroup>,
    certificate: Vec<u8>,
}

async fn rustls_get(
    config: &Arc<rustls::ClientConfig>,
    address: SocketAddr,
    sni: &str,
    host: &str,
    path: &str,
) -> Exchange {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    let mut stream = connector.connect(name, tcp).await.expect("handshake");
    let (_, connection) = stream.get_ref();
    let kind = connection.handshake_kind();
    let version = connection.protocol_version();
    let group = connection
        .negotiated_key_exchange_group()
        .map(|group| group.name());
    let certificate = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| der.as_ref().to_vec())
        .unwrap_or_default();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    Exchange {
        response: String::from_utf8_lossy(&response).into_owned(),
        kind,
        version,
        group,
        certificate,
    }
}

fn leaf_der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).expect("read certificate");
    CertificateDer::from_pem_slice(&pem)
        .expect("certificate")
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn https_speaks_http2_and_http1_by_alpn_and_shares_the_cache_with_http() {
    if !tools_present() {
        return;
    }
    let origin = origin().await;
    let https = HttpsEdge::for_site(origin.address(), "");
    let (head, body, version) = https.curl("site.test", "/shared", &["--http2"]);
    assert_eq!(version, "2", "{head}");
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(body, "proto=https");
    let (head, _, version) = https.curl("site.test", "/shared", &["--http1.1"]);
    assert_eq!(version, "1.1");
    assert!(head.to_ascii_lowercase().contains("x-cache: hit"), "{head}");
    // Plain HTTP reads the same entry: the scheme is not in the key, the
    // authority is (with the port curl sent).
    let plain = common::get(https.edge.http, "/shared", &[("host", "site.test:8443")]).await;
    assert_eq!(plain.cache(), "HIT");
    assert_eq!(origin.requests(), 1);
    let expiry = metric_line(
        &https.edge,
        "edge_tls_certificate_expiry_seconds{certificate=\"site.test\"}",
    )
    .await;
    assert!(
        (29 * 86_400..=30 * 86_400).contains(&expiry),
        "expiry {expiry}"
    );
    assert!(
        metric_line(
            &https.edge,
            "edge_tls_handshakes_total{version=\"1.3\",kind=\"full\"}"
        )
        .await
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_chosen_by_name_then_ecdsa_before_rsa() {
    if !tools_present() {
        return;
    }
    let origin = origin().await;
    let https = HttpsEdge::start(
        origin.address(),
        &[
            ("first-rsa", &["first.test"], KeyKind::Rsa),
            ("site-rsa", &["site.test", "*.img.test"], KeyKind::Rsa),
            ("site-ecdsa", &["site.test", "*.img.test"], KeyKind::Ecdsa),
        ],
        "",
    );
    let subject_and_key = |output: &str| -> (bool, bool, bool) {
        (
            output.contains("CN = site.test") || output.contains("CN=site.test"),
            output.contains("CN = first.test") || output.contains("CN=first.test"),
            output.contains("Server public key is 256 bit"),
        )
    };
    // A client that verifies ECDSA gets the ECDSA certificate for its name.
    let modern = https.s_client("site.test", &[]);
    assert!(modern.contains("Verify return code: 0 (ok)"), "{modern}");
    assert_eq!(subject_and_key(&modern), (true, false, true), "{modern}");
    // Wildcards cover one label.
    let wildcard = https.s_client("a.img.test", &[]);
    assert!(
        wildcard.contains("Verify return code: 0 (ok)"),
        "{wildcard}"
    );
    assert_eq!(
        subject_and_key(&wildcard),
        (true, false, true),
        "{wildcard}"
    );
    // A client that verifies RSA only gets the RSA one.
    let rsa_only = https.s_client(
        "site.test",
        &[
            "-sigalgs",
            "rsa_pss_rsae_sha256:rsa_pkcs1_sha256",
            "-tls1_2",
        ],
    );
    assert!(
        rsa_only.contains("Verify return code: 0 (ok)"),
        "{rsa_only}"
    );
    assert_eq!(
        subject_and_key(&rsa_only),
        (true, false, false),
        "{rsa_only}"
    );
    // A name no certificate covers gets the first.
    let unknown = https.s_client("other.test", &[]);
    assert_eq!(subject_and_key(&unknown), (false, true, false), "{unknown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_its_certificate_does_not_cover_is_misdirected() {
    if !tools_present() {
        return;
    }
    let origin = origin().await;
    let https = HttpsEdge::start(
        origin.address(),
        &[
            ("site", &["site.test"], KeyKind::Ecdsa),
            ("other", &["other.test"], KeyKind::Ecdsa),
        ],
        "",
    );
    // The connection was made for site.test; other.test has a certificate
    // of its own, which this connection did not present.
    for protocol in ["--http2", "--http1.1"] {
        let (head, _, _) = https.curl("site.test", "/x", &[protocol, "-H", "Host: other.test"]);
        assert!(head.contains(" 421"), "{protocol}: {head}");
    }
    let (head, _, _) = https.curl("site.test", "/x", &["-H", "Host: SITE.test."]);
    assert!(head.contains(" 200"), "{head}");
    assert_eq!(origin.requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_resume_by_ticket_and_by_session_id() {
    let origin = origin().await;
    let https = HttpsEdge::for_site(origin.address(), "");
    for (versions, version) in [
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
    ] {
        let client = rustls_client(&https.ca, versions);
        let first = rustls_get(&client, https.tls, "site.test", "site.test", "/r").await;
        assert!(
            first.response.starts_with("HTTP/1.1 200"),
            "{}",
            first.response
        );
        assert_eq!(first.kind, Some(rustls::HandshakeKind::Full));
        assert_eq!(first.version, Some(version));
        if version == rustls::ProtocolVersion::TLSv1_3 {
            // A client that offers the post-quantum hybrid gets it.
            assert_eq!(first.group, Some(rustls::NamedGroup::X25519MLKEM768));
        }
        let second = rustls_get(&client, https.tls, "site.test", "site.test", "/r").await;
        assert_eq!(
            second.kind,
            Some(rustls::HandshakeKind::Resumed),
            "{version:?}"
        );
        assert!(second.response.starts_with("HTTP/1.1 200"));
    }
    for version in ["1.3", "1.2"] {
        let resumed = metric_line(
            &https.edge,
            &format!("edge_tls_handshakes_total{{version=\"{version}\",kind=\"resumed\"}}"),
        )
        .await;
        assert_eq!(resumed, 1, "TLS {version}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_12_can_be_turned_off() {
    let origin = origin().await;
    let https = HttpsEdge::for_site(origin.address(), "min_version = \"1.3\"");
    let tls12 = rustls_client(&https.ca, &[&rustls::version::TLS12]);
    let tcp = tokio::net::TcpStream::connect(https.tls).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(tls12)
        .connect(ServerName::try_from("site.test").unwrap(), tcp)
        .await;
    assert!(refused.is_err(), "a TLS 1.2 handshake completed");
    let tls13 = rustls_client(&https.ca, &[&rustls::version::TLS13]);
    let served = rustls_get(&tls13, https.tls, "site.test", "site.test", "/").await;
    assert!(served.response.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn replaced_files_are_served_without_a_restart_and_a_bad_pair_keeps_the_old() {
    let origin = origin().await;
    let https = HttpsEdge::for_site(origin.address(), "watch_interval = \"200ms\"");
    let client = rustls_client(&https.ca, &[&rustls::version::TLS13]);
    let files = IssuedFiles {
        certificate: https.certs.path().join("site.pem"),
        key: https.certs.path().join("site.key"),
    };
    let first = leaf_der(&files.certificate);
    let served = rustls_get(&client, https.tls, "site.test", "site.test", "/").await;
    assert_eq!(served.certificate, first);

    // Renewed in place, as an ACME client does: written beside and renamed.
    let staging = tempfile::tempdir().unwrap();
    let renewed = https.ca.issue(
        staging.path(),
        "site",
        &["site.test"],
        KeyKind::Ecdsa,
        60 * DAY,
    );
    std::fs::rename(&renewed.key, &files.key).unwrap();
    std::fs::rename(&renewed.certificate, &files.certificate).unwrap();
    let second = leaf_der(&files.certificate);
    // A new client each time: a resumed session shows no certificate.
    let changed = wait_for(Duration::from_secs(5), || async {
        let fresh = rustls_client(&https.ca, &[&rustls::version::TLS13]);
        rustls_get(&fresh, https.tls, "site.test", "site.test", "/")
            .await
            .certificate
            == second
    })
    .await;
    assert!(
        changed,
        "the renewed certificate was not served:\n{}",
        https.edge.log()
    );

    // A key that belongs to another certificate: the current pair stays.
    let stray = https
        .ca
        .issue(staging.path(), "stray", &["site.test"], KeyKind::Ecdsa, DAY);
    std::fs::copy(&stray.key, &files.key).unwrap();
    let logged = wait_until(Duration::from_secs(5), || {
        https.edge.log().contains("TLS certificates not reloaded")
    });
    assert!(logged, "{}", https.edge.log());
    let fresh = rustls_client(&https.ca, &[&rustls::version::TLS13]);
    let still = rustls_get(&fresh, https.tls, "site.test", "site.test", "/").await;
    assert_eq!(still.certificate, second);
    assert!(still.response.starts_with("HTTP/1.1 200"));
    let log = https.edge.log();
    assert!(
        log.contains("does not belong to the certificate"),
        "the log should say why: {log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "a key reached the log");
    assert!(
        metric_line(
            &https.edge,
            "edge_tls_certificate_reloads_total{result=\"failed\"}"
        )
        .await
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_rereads_the_certificates() {
    let origin = origin().await;
    let https = HttpsEdge::for_site(origin.address(), "watch_interval = \"1h\"");
    let client = rustls_client(&https.ca, &[&rustls::version::TLS13]);
    let staging = tempfile::tempdir().unwrap();
    let renewed = https.ca.issue(
        staging.path(),
        "site",
        &["site.test"],
        KeyKind::Ecdsa,
        60 * DAY,
    );
    std::fs::copy(&renewed.key, https.certs.path().join("site.key")).unwrap();
    std::fs::copy(&renewed.certificate, https.certs.path().join("site.pem")).unwrap();
    let second = leaf_der(&renewed.certificate);
    let before = rustls_get(&client, https.tls, "site.test", "site.test", "/").await;
    assert_ne!(before.certificate, second, "reloaded before the signal");
    https.edge.process.signal("HUP");
    // A new client each time: a resumed session shows no certificate.
    let changed = wait_for(Duration::from_secs(5), || async {
        let fresh = rustls_client(&https.ca, &[&rustls::version::TLS13]);
        rustls_get(&fresh, https.tls, "site.test", "site.test", "/")
            .await
            .certificate
            == second
    })
    .await;
    assert!(changed, "SIGHUP did not reload:\n{}", https.edge.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_close_to_expiry_is_logged_and_its_time_left_exported() {
    let origin = origin().await;
    let https = HttpsEdge::for_site(origin.address(), "watch_interval = \"1h\"");
    assert!(!https.edge.log().contains("certificate expires soon"));
    https.ca.issue(
        https.certs.path(),
        "site",
        &["site.test"],
        KeyKind::Ecdsa,
        2 * DAY,
    );
    https.edge.process.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), || https
            .edge
            .log()
            .contains("certificate expires soon")),
        "{}",
        https.edge.log()
    );
    let expiry = metric_line(
        &https.edge,
        "edge_tls_certificate_expiry_seconds{certificate=\"site.test\"}",
    )
    .await;
    assert!((86_400..=2 * 86_400).contains(&expiry), "expiry {expiry}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_is_redirected_except_acme_challenges_and_https_gets_hsts() {
    if !tools_present() {
        return;
    }
    let origin = origin().await;
    let https = HttpsEdge::for_site(
        origin.address(),
        "redirect_http = true\nhsts_max_age = \"180d\"",
    );
    let redirected = common::get(https.edge.http, "/a/b?c=d", &[]).await;
    assert_eq!(redirected.status, 308);
    assert_eq!(
        redirected.header("location"),
        Some("https://site.test:8443/a/b?c=d")
    );
    assert_eq!(redirected.header("strict-transport-security"), None);
    let challenge = common::get(https.edge.http, "/.well-known/acme-challenge/token", &[]).await;
    assert_eq!(challenge.status, 200);
    assert_eq!(challenge.body, "proto=http");
    let (head, _, _) = https.curl("site.test", "/a/b?c=d", &[]);
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=15552000"),
        "{head}"
    );
    assert_eq!(origin.requests(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn edges_filling_over_plain_http_are_not_redirected() {
    let origin = origin().await;
    // A parent that lists its children (here: all of loopback) as trusted
    // peers. Children ask a parent without the ring's fill marker.
    let parent = HttpsEdge::for_site(
        origin.address(),
        "redirect_http = true\n\n[fill]\ntrusted_peers = [\"127.0.0.0/8\"]",
    );
    let fill = common::get(parent.edge.http, "/from-a-child", &[]).await;
    assert_eq!(fill.status, 200, "{:?}", fill.headers);
    assert_eq!(fill.body, "proto=http");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_handshake_is_cut_off() {
    let origin = origin().await;
    let https = HttpsEdge::for_site(origin.address(), "");
    // Silent: closed at server.header_timeout (2 s in these tests).
    let mut silent = tokio::net::TcpStream::connect(https.tls).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(6), silent.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a silent client was not cut off: {read:?}"
    );
    // Not TLS at all: refused at once.
    let mut plain = tokio::net::TcpStream::connect(https.tls).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .await
        .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(1), plain.read(&mut buffer)).await;
    assert!(read.is_ok(), "plain HTTP on the TLS port was left hanging");
    assert_eq!(
        metric_line(
            &https.edge,
            "edge_tls_handshake_errors_total{reason=\"timeout\"}"
        )
        .await,
        1
    );
    assert!(
        metric_line(
            &https.edge,
            "edge_tls_handshake_errors_total{reason=\"failed\"}"
        )
        .await
            >= 1
    );
}

#[test]
fn check_config_names_bad_pairs_and_never_prints_a_key() {
    let ca = TestCa::new("geocdn test CA");
    let dir = tempfile::tempdir().unwrap();
    let good = ca.issue(dir.path(), "good", &["site.test"], KeyKind::Ecdsa, DAY);
    let other = ca.issue(dir.path(), "other", &["site.test"], KeyKind::Rsa, DAY);
    let garbled = dir.path().join("garbled.key");
    let key_text = std::fs::read_to_string(&good.key).unwrap();
    std::fs::write(&garbled, key_text.replace("PRIVATE KEY", "PRIVATE KYE")).unwrap();
    let config = format!(
        "[origin]\nurls = [\"http://127.0.0.1:1\"]\n\n[tls]\nlisten = [\"127.0.0.1:0\"]\n\
         [[tls.certificates]]\ncertificate = \"{}\"\nkey = \"{}\"\n\
         [[tls.certificates]]\ncertificate = \"{}\"\nkey = \"{}\"\n\
         [[tls.certificates]]\ncertificate = \"missing.pem\"\nkey = \"missing.key\"\n",
        good.certificate.display(),
        other.key.display(),
        good.certificate.display(),
        garbled.display(),
    );
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, config).unwrap();
    let output = check_config(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("other.key: this key does not belong to the certificate in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("garbled.key: no PEM private key"),
        "{stderr}"
    );
    // Relative to the configuration's directory.
    assert!(
        stderr.contains(&format!(
            "{}: cannot read",
            dir.path().join("missing.pem").display()
        )),
        "{stderr}"
    );
    let key_body: Vec<&str> = key_text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    for line in key_body {
        assert!(
            !stderr.contains(line),
            "a line of the key was printed: {stderr}"
        );
    }

    // The good pair alone passes.
    std::fs::write(
        &path,
        format!(
            "[origin]\nurls = [\"http://127.0.0.1:1\"]\n\n[tls]\nlisten = [\"127.0.0.1:0\"]\n{}",
            certificate_section(&good)
        ),
    )
    .unwrap();
    let output = check_config(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn check_config(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edge"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap()
}

/// Polls an async condition until it holds or `limit` passes.
async fn wait_for<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// curl to an `https://` URL at `address` for `host`, trusting `ca`:
/// the status and body, or curl's error.
fn curl_url(ca: &Path, host: &str, address: SocketAddr, path: &str) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--http1.1", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{}:{}", address.port(), address.ip()))
        .arg(format!("https://{host}:{}{path}", address.port()))
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_and_a_ring_of_peers_can_speak_tls_only() {
    if !tools_present() {
        return;
    }
    let origin = Origin::start(|seen| {
        Reply::ok(
            format!("body of {}", seen.uri),
            &[("cache-control", "max-age=60")],
        )
    })
    .await;
    let ca = TestCa::new("geocdn ring CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_root(&ca_file);
    let addresses = [unique_loopback(), unique_loopback()];
    let names = ["tls-ring-a", "tls-ring-b"];
    // Peers are named, filled and checked over HTTPS only, verified
    // against the ring's CA. On loopback their connections come from
    // 127.0.0.1, not from their own addresses: trusted as peers here.
    let peers: String = "[fill]\ntrusted_peers = [\"127.0.0.1/32\"]\n".to_string()
        + &names
        .iter()
        .zip(addresses)
        .map(|(name, address)| {
            format!(
                "[[fill.peers]]\nname = \"{name}\"\nurl = \"https://{address}:8443\"\nhealth = \"https://{address}:9180/healthz\"\n"
            )
        })
        .collect::<String>();
    let edges: Vec<EdgeProcess> = names
        .iter()
        .zip(addresses)
        .map(|(name, address)| {
            let files = ca.issue(
                dir.path(),
                name,
                &[&address.to_string(), "admin.test"],
                KeyKind::Ecdsa,
                30 * DAY,
            );
            let extra = format!(
                "\n[tls]\nlisten = [\"{address}:8443\"]\nadmin = true\n{}\n{peers}",
                certificate_section(&files)
            );
            EdgeProcess::start_with_origin_on(
                address,
                name,
                &format!(
                    "urls = [\"http://{}\"]\nca_file = \"{}\"",
                    origin.address(),
                    ca_file.display()
                ),
                &extra,
            )
        })
        .collect();
    // Long enough for failing peer checks to take the peers out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for edge in &edges {
        let admin = edge.admin;
        let health = curl_url(&ca_file, "admin.test", admin, "/healthz");
        assert!(health.is_ok(), "{health:?}\n{}", edge.log());
        // Plain HTTP gets nothing from a TLS admin listener.
        assert!(e2e::http::get(admin, "/healthz").map_or(true, |response| response.status != 200));
    }
    for object in 0..40 {
        for edge in &edges {
            let got = common::get(edge.http, &format!("/o/{object}"), &[]).await;
            assert_eq!(got.status, 200, "{}", edge.log());
            assert_eq!(got.body, format!("body of /o/{object}"));
        }
    }
    assert_eq!(
        origin.requests(),
        40,
        "one origin fetch per object for the ring"
    );
    for edge in &edges {
        let metrics = curl_url(&ca_file, "admin.test", edge.admin, "/metrics").unwrap();
        assert!(
            metrics.contains("edge_fills_total{upstream=\"peer\"}"),
            "{metrics}"
        );
    }
}
