//! A wildcard certificate by DNS-01 through geodns: an edge orders from a
//! real ACME CA (pebble), publishes the `_acme-challenge` TXT answer in
//! etcd, geodns (the CA's only DNS server here) answers it, and the edge
//! serves the certificate, verified by curl against the CA's root. The
//! answer is gone from geodns once the order is done.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::binaries::binary;
use e2e::dns::{Ask, ask_udp};
use e2e::etcd::Etcd;
use e2e::origin::{Origin, Reply};
use e2e::pebble::{Pebble, PebbleSettings};
use e2e::process::{ChildGuard, unique_loopback, wait_until};
use hickory_proto::rr::{RData, RecordType};

const TLS_PORT: u16 = 8443;

fn spawn(dir: &Path, program: &str, config: &str) -> ChildGuard {
    let path = dir.join(format!("{program}.toml"));
    std::fs::write(&path, config).unwrap();
    ChildGuard::spawn(
        program,
        Command::new(binary(program))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info"),
        &dir.join(format!("{program}.log")),
    )
    .unwrap()
}

fn log(dir: &Path, program: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{program}.log"))).unwrap_or_default()
}

fn curl(edge: Ipv4Addr, host: &str, root: &Path) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{host}:{TLS_PORT}:{edge}"))
        .arg(format!("https://{host}:{TLS_PORT}/"))
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_certificate_is_validated_through_geodns_and_served() {
    if Command::new("curl").arg("--version").output().is_err() {
        e2e::requirements::missing("curl is not installed", "apt-get install curl");
        return;
    }
    let Some(etcd) = Etcd::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = format!(
        "[cluster]\nendpoints = {}\nprefix = \"/dns01\"\n",
        etcd.endpoints_toml()
    );
    let dns_address = unique_loopback();
    let dns = SocketAddr::from((dns_address, 5353));
    let _geodns = spawn(
        dir.path(),
        "geodns",
        &format!(
            r#"
[server]
listen = ["{dns}"]

[admin]
listen = "{dns_address}:9153"

{cluster}

[zones."cdn.test"]
soa = {{ mname = "ns1.cdn.test", rname = "hostmaster.cdn.test" }}
ns = ["ns1.cdn.test"]

[[zones."cdn.test".records]]
name = "ns1"
type = "A"
value = "{dns_address}"
"#
        ),
    );
    assert!(
        wait_until(Duration::from_secs(15), || {
            e2e::http::get(SocketAddr::from((dns_address, 9153)), "/healthz").is_ok()
        }),
        "geodns did not start:\n{}",
        log(dir.path(), "geodns")
    );
    let edge_address = unique_loopback();
    let Some(pebble) = Pebble::start(PebbleSettings {
        names_resolve_to: edge_address,
        http_port: 8080,
        tls_port: TLS_PORT,
        validity: Duration::from_secs(90 * 86_400),
        dns_server: Some(dns),
    }) else {
        return;
    };
    let origin = Origin::start(|_| Reply::ok("wild", &[("cache-control", "max-age=60")])).await;
    let _edge = spawn(
        dir.path(),
        "edge",
        &format!(
            r#"
[server]
listen = ["{edge_address}:8080"]
name = "edge-dns01"

[origin]
urls = ["http://{origin}"]

[admin]
listen = "{edge_address}:9180"

[tls]
listen = ["{edge_address}:{TLS_PORT}"]

[acme]
directory = "{directory}"
ca_file = "{ca_file}"
state_directory = "{state}"
terms_of_service_agreed = true
challenge = "dns-01"

[[acme.certificates]]
names = ["cdn.test", "*.cdn.test"]

{cluster}
"#,
            origin = origin.address(),
            directory = pebble.directory(),
            ca_file = pebble.listener_ca_file().display(),
            state = dir.path().join("edge-state").display(),
        ),
    );
    let root = dir.path().join("pebble-root.pem");
    std::fs::write(&root, pebble.issuing_root_pem()).unwrap();
    let served = wait_until(Duration::from_secs(60), || {
        curl(edge_address, "images.cdn.test", &root).is_ok()
    });
    assert!(
        served,
        "no certificate served:\n--- edge:\n{}\n--- geodns:\n{}\n--- pebble:\n{}",
        log(dir.path(), "edge"),
        log(dir.path(), "geodns"),
        pebble.log()
    );
    assert_eq!(
        curl(edge_address, "images.cdn.test", &root).unwrap(),
        "wild"
    );
    assert_eq!(curl(edge_address, "cdn.test", &root).unwrap(), "wild");
    // The answer was withdrawn with the order.
    let withdrawn = wait_until(Duration::from_secs(10), || {
        let response = ask_udp(dns, &Ask::new("_acme-challenge.cdn.test.", RecordType::TXT));
        !response
            .answers
            .iter()
            .any(|record| matches!(record.data, RData::TXT(_)))
    });
    assert!(withdrawn, "{}", log(dir.path(), "geodns"));
}
