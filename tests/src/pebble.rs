//! A real ACME CA for tests: pebble (Debian package `pebble`), resolving
//! names through pebble-challtestsrv, so that every name it validates
//! resolves to one loopback address (the edge's), or through a DNS server
//! of the test's (geodns, for DNS-01). Each instance has a loopback address
//! of its own, so tests run in parallel.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::pki::{KeyKind, TestCa};
use crate::process::{ChildGuard, unique_loopback, wait_until};

/// Where pebble's validation authority connects, and for how long the
/// certificates it issues are valid.
#[derive(Debug, Clone, Copy)]
pub struct PebbleSettings {
    /// Every name resolves to this address.
    pub names_resolve_to: Ipv4Addr,
    /// HTTP-01 validations connect to this port.
    pub http_port: u16,
    /// TLS-ALPN-01 validations connect to this port.
    pub tls_port: u16,
    /// Lifetime of issued certificates.
    pub validity: Duration,
    /// The DNS server to resolve through instead of pebble-challtestsrv.
    pub dns_server: Option<SocketAddr>,
}

/// A running pebble and its DNS server; stopped when dropped.
pub struct Pebble {
    _pebble: ChildGuard,
    _dns: Option<ChildGuard>,
    dir: tempfile::TempDir,
    listen: SocketAddr,
    management: SocketAddr,
}

impl Pebble {
    /// Starts pebble; `None` (with a message) when it is not installed.
    pub fn start(settings: PebbleSettings) -> Option<Self> {
        for binary in ["pebble", "pebble-challtestsrv"] {
            if Command::new(binary).arg("-h").output().is_err() {
                crate::requirements::missing(
                    &format!("{binary} is not installed"),
                    "apt-get install pebble",
                );
                return None;
            }
        }
        let address = unique_loopback();
        let listen = SocketAddr::new(IpAddr::V4(address), 14000);
        let management = SocketAddr::new(IpAddr::V4(address), 15000);
        let dns = settings
            .dns_server
            .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(address), 8053));
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("pebble listener CA");
        let served = ca.issue(
            dir.path(),
            "pebble",
            &[&address.to_string(), "localhost"],
            KeyKind::Ecdsa,
            Duration::from_secs(86_400),
        );
        ca.write_root(&dir.path().join("listener-ca.pem"));
        let config = config_json(&settings, listen, management, &served);
        std::fs::write(dir.path().join("pebble.json"), config).expect("write pebble config");
        let dns_server = settings.dns_server.is_none().then(|| {
            ChildGuard::spawn(
                "pebble-challtestsrv",
                Command::new("pebble-challtestsrv")
                    .arg("-defaultIPv4")
                    .arg(settings.names_resolve_to.to_string())
                    .arg("-defaultIPv6")
                    .arg("")
                    .arg("-dns01")
                    .arg(dns.to_string())
                    .arg("-management")
                    .arg(SocketAddr::new(IpAddr::V4(address), 8055).to_string())
                    .args(["-http01", "", "-https01", "", "-tlsalpn01", ""]),
                &dir.path().join("challtestsrv.log"),
            )
            .expect("start pebble-challtestsrv")
        });
        let pebble = ChildGuard::spawn(
            "pebble",
            Command::new("pebble")
                .arg("-config")
                .arg(dir.path().join("pebble.json"))
                .arg("-dnsserver")
                .arg(dns.to_string())
                // Validate at once, and never reject a good nonce: tests
                // are about the edge, not about retries of the client.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0"),
            &dir.path().join("pebble.log"),
        )
        .expect("start pebble");
        let pebble = Self {
            _pebble: pebble,
            _dns: dns_server,
            dir,
            listen,
            management,
        };
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(listen).is_ok()
                && std::net::TcpStream::connect(management).is_ok()
        });
        assert!(up, "pebble did not start:\n{}", pebble.log());
        Some(pebble)
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://{}/dir", self.listen)
    }

    /// The root that verifies pebble's own HTTPS (for the ACME client).
    pub fn listener_ca_file(&self) -> PathBuf {
        self.dir.path().join("listener-ca.pem")
    }

    /// The root pebble issues under (new at each start), in PEM, for
    /// clients to verify the certificates it issued.
    pub fn issuing_root_pem(&self) -> String {
        let output = Command::new("curl")
            .arg("-sS")
            .arg("--fail")
            .arg("--cacert")
            .arg(self.listener_ca_file())
            .arg(format!("https://{}/roots/0", self.management))
            .output()
            .expect("run curl");
        assert!(
            output.status.success(),
            "cannot fetch pebble's root: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("PEM")
    }

    /// What pebble and its DNS server logged.
    pub fn log(&self) -> String {
        ["pebble.log", "challtestsrv.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn config_json(
    settings: &PebbleSettings,
    listen: SocketAddr,
    management: SocketAddr,
    served: &crate::pki::IssuedFiles,
) -> String {
    format!(
        r#"{{"pebble": {{
  "listenAddress": "{listen}",
  "managementListenAddress": "{management}",
  "certificate": "{}",
  "privateKey": "{}",
  "httpPort": {},
  "tlsPort": {},
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false,
  "certificateValidityPeriod": {}
}}}}"#,
        served.certificate.display(),
        served.key.display(),
        settings.http_port,
        settings.tls_port,
        settings.validity.as_secs()
    )
}
