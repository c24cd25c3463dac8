//! Starting the real geodns binary against a database built from CSV and
//! real HTTP health endpoints.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::dns::{Ask, addresses, ask_udp, exchange_udp};
use e2e::health_endpoint::HealthEndpoint;
use e2e::process::{ChildGuard, unique_loopback, wait_until};
use hickory_proto::rr::RecordType;

/// Networks of the test database.
pub const NETWORKS: &str = "\
192.0.2.0/24,52.37,4.90,NL,EU
198.51.100.0/24,40.71,-74.00,US,NA
203.0.113.0/24,35.68,139.69,JP,AS
10.0.0.0/16,52.37,4.90,NL,EU
10.1.0.0/16,48.85,2.35,FR,EU
10.2.0.0/15,40.71,-74.00,US,NA
2001:db8::/33,50.11,8.68,DE,EU
2001:db8:8000::/33,35.68,139.69,JP,AS
";

/// The zone and its geo service; `{health}` placeholders are filled per edge.
pub fn config(
    dns: SocketAddr,
    admin: SocketAddr,
    edges: &[(&str, &str, &str)],
    extra: &str,
) -> String {
    let mut text = format!(
        r#"
[server]
listen = ["{dns}"]
udp_sockets = 2
tcp_idle_timeout = "1s"
tcp_max_connections = 8

[admin]
listen = "{admin}"

[geoip]
databases = ["geo.mmdb"]

[health]
interval = "200ms"
timeout = "300ms"
rise = 2
fall = 2
jitter = "0s"

[zones."cdn.test"]
soa = {{ mname = "ns1.cdn.test", rname = "hostmaster.cdn.test", serial = 42, minimum = "30s" }}
ns = ["ns1.cdn.test"]

[[zones."cdn.test".records]]
name = "ns1"
type = "A"
value = "192.0.2.53"

[[zones."cdn.test".records]]
name = "static"
type = "A"
value = "192.0.2.80"

[[zones."cdn.test".records]]
name = "alias"
type = "CNAME"
value = "www"

[[zones."cdn.test".records]]
name = "big"
type = "TXT"
value = "{txt}"

[services.www]
zone = "cdn.test"
names = ["www", "*.img"]
ttl = "20s"
fallback = {{ region = "us" }}
{extra}
"#,
        txt = (0..12)
            .map(|i| format!("\\\"{}\\\"", format!("{i:02}").repeat(30)))
            .collect::<Vec<_>>()
            .join(" "),
    );
    for (name, region, health) in edges {
        let (latitude, longitude, v4, v6) = match *region {
            "eu" => (50.11, 8.68, "127.0.0.11", "fd00::11"),
            "us" => (39.04, -77.49, "127.0.0.12", "fd00::12"),
            _ => (35.68, 139.69, "127.0.0.13", "fd00::13"),
        };
        let health_line = if health.is_empty() {
            String::new()
        } else {
            format!("health = \"{health}\"\n")
        };
        text.push_str(&format!(
            "\n[[services.www.edges]]\nname = \"{name}\"\nregion = \"{region}\"\nlocation = {{ latitude = {latitude}, longitude = {longitude} }}\nipv4 = [\"{v4}\"]\nipv6 = [\"{v6}\"]\n{health_line}"
        ));
    }
    text
}

/// A running geodns with its files.
pub struct Geodns {
    pub dns: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub process: ChildGuard,
}

impl Geodns {
    /// Writes `config_text` (see [`config`]) and starts geodns on it, with
    /// debug logs.
    pub fn start_with(dns: SocketAddr, admin: SocketAddr, config_text: &str) -> Self {
        Self::start_logging(dns, admin, config_text, Some("info,geodns=debug"))
    }

    /// As [`Geodns::start_with`], with `RUST_LOG` set to `filter` (or unset
    /// for `None`: the defaults an operator gets).
    pub fn start_logging(
        dns: SocketAddr,
        admin: SocketAddr,
        config_text: &str,
        filter: Option<&str>,
    ) -> Self {
        Self::start_with_environment(dns, admin, config_text, filter, &[])
    }

    /// As [`Geodns::start_logging`], with `environment` variables set.
    pub fn start_with_environment(
        dns: SocketAddr,
        admin: SocketAddr,
        config_text: &str,
        filter: Option<&str>,
        environment: &[(&str, &Path)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("nets.csv"), NETWORKS).expect("write csv");
        geoip::build_from_csv(&dir.path().join("nets.csv"), &dir.path().join("geo.mmdb"))
            .expect("build db");
        let config_path = dir.path().join("geodns.toml");
        std::fs::write(&config_path, config_text).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_geodns"));
        command.arg("run").arg("--config").arg(&config_path);
        command.envs(environment.iter().copied());
        match filter {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let process = ChildGuard::spawn("geodns", &mut command, &dir.path().join("geodns.log"))
            .expect("start geodns");
        let geodns = Self {
            dns,
            admin,
            dir,
            process,
        };
        let ready = wait_until(Duration::from_secs(10), || {
            exchange_udp(
                dns,
                &Ask::new("static.cdn.test", RecordType::A)
                    .message()
                    .to_vec()
                    .unwrap_or_default(),
            )
            .is_some()
        });
        assert!(ready, "geodns did not start:\n{}", geodns.log());
        geodns
    }

    /// Starts geodns with the default edges `eu-1`, `us-1`, `ap-1` and the given health URLs.
    pub fn start(edges: &[(&str, &str, &str)], extra: &str) -> Self {
        let address = unique_loopback();
        let dns = SocketAddr::new(IpAddr::V4(address), 5300);
        let admin = SocketAddr::new(IpAddr::V4(address), 9300);
        Self::start_with(dns, admin, &config(dns, admin, edges, extra))
    }

    /// The config file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("geodns.toml")
    }

    /// What geodns logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("geodns.log")).unwrap_or_default()
    }

    /// The A answer for `name` from a client in `subnet`.
    pub fn a_for(&self, name: &str, subnet: &str, prefix: u8) -> Vec<IpAddr> {
        addresses(&ask_udp(
            self.dns,
            &Ask::new(name, RecordType::A).subnet(subnet, prefix),
        ))
    }

    /// GETs an admin path and returns the body.
    pub fn admin_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.admin).expect("connect admin");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }
}

/// An endpoint on its own loopback address.
pub fn endpoint() -> HealthEndpoint {
    HealthEndpoint::start(SocketAddr::new(IpAddr::V4(unique_loopback()), 8080))
}

/// The edge addresses.
pub fn eu() -> IpAddr {
    "127.0.0.11".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The US edge's address.
pub fn us() -> IpAddr {
    "127.0.0.12".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The AP edge's address.
pub fn ap() -> IpAddr {
    "127.0.0.13".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Writes a new config and sends SIGHUP.
pub fn reload(geodns: &Geodns, text: &str) {
    std::fs::write(geodns.config_path(), text).expect("write config");
    geodns.process.signal("HUP");
}

/// Path helper for files beside the config.
pub fn beside(geodns: &Geodns, name: &str) -> PathBuf {
    Path::new(geodns.dir.path()).join(name)
}
