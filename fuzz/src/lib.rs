//! What the fuzz targets share: a geodns responder over a small zone with
//! static records and a geo service, and field lines cut from fuzz input.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use geodns::answer::Responder;
use geodns::cluster::ClusterView;
use geodns::health::HealthTable;
use geodns::metrics::DnsMetrics;
use geodns::snapshot::Snapshot;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// The zone and service every DNS target answers from: static records of
/// several types, a CNAME chain, a wildcard geo name, three edges with both
/// families, and transfers allowed so AXFR is exercised too.
const CONFIG: &str = r#"
[geoip]
overrides = ["networks.csv"]

[zones."cdn.example.com"]
soa = { mname = "ns1.cdn.example.com", rname = "hostmaster.example.com" }
ns = ["ns1.cdn.example.com", "ns2.cdn.example.com"]
allow_transfer = ["0.0.0.0/0", "::/0"]

[[zones."cdn.example.com".records]]
name = "ns1"
type = "A"
value = "192.0.2.53"

[[zones."cdn.example.com".records]]
name = "ns2"
type = "AAAA"
value = "2001:db8::53"

[[zones."cdn.example.com".records]]
name = "@"
type = "MX"
value = "10 mail.cdn.example.com."

[[zones."cdn.example.com".records]]
name = "txt"
type = "TXT"
value = "\"v=spf1 -all\""

[[zones."cdn.example.com".records]]
name = "alias"
type = "CNAME"
value = "www.cdn.example.com."

[[zones."cdn.example.com".records]]
name = "loop"
type = "CNAME"
value = "loop.cdn.example.com."

[services.www]
zone = "cdn.example.com"
names = ["www", "*.img"]
ttl = "10s"
fallback = { region = "eu" }

[[services.www.edges]]
name = "eu"
region = "eu"
location = { latitude = 50.1109, longitude = 8.6821 }
ipv4 = ["198.18.0.11"]
ipv6 = ["2001:db8:e::11"]
health = "http://198.18.0.11/healthz"

[[services.www.edges]]
name = "us"
region = "us"
location = { latitude = 39.0438, longitude = -77.4874 }
ipv4 = ["198.18.0.12"]
ipv6 = ["2001:db8:e::12"]
health = "http://198.18.0.12/healthz"

[[services.www.edges]]
name = "ap"
region = "ap"
location = { latitude = 35.6762, longitude = 139.6503 }
ipv4 = ["198.18.0.13", "198.18.0.14"]
health = "http://198.18.0.13/healthz"
"#;

const NETWORKS: &str = "\
network,latitude,longitude,country,continent
192.0.2.0/24,52.3676,4.9041,NL,EU
198.51.100.0/24,40.7128,-74.0060,US,NA
203.0.113.0/24,35.6762,139.6503,JP,AS
203.0.113.128/25,1.3521,103.8198,SG,AS
2001:db8:1::/48,52.52,13.40,DE,EU
2001:db8:2::/48,37.77,-122.42,US,NA
";

/// A directory of this process for files the targets write.
pub fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("TMPDIR").map_or("/tmp".into(), PathBuf::from);
        let dir = base.join(format!("geocdn-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

/// The responder of the fixture zone, built once per process.
pub fn responder() -> &'static Responder {
    static RESPONDER: OnceLock<Responder> = OnceLock::new();
    RESPONDER.get_or_init(|| {
        let dir = scratch_dir();
        std::fs::write(dir.join("networks.csv"), NETWORKS).expect("networks.csv");
        let mut registry = shared::metrics::new_registry("geodns", "fuzz");
        let metrics = DnsMetrics::register(&mut registry);
        let health = HealthTable::new(metrics.clone(), tokio_util::sync::CancellationToken::new());
        let config = shared::config::parse(dir.join("geodns.toml"), CONFIG).expect("config");
        let snapshot = Snapshot::build(config, dir, &health, &metrics, &ClusterView::default())
            .expect("snapshot");
        Responder::new(
            Arc::new(ArcSwap::from_pointee(snapshot)),
            Arc::new(health),
            metrics,
            1232,
            // Off: both paths of one query must answer alike.
            None,
            geodns::answer::cookie::ServerCookies::new([7; 16]),
        )
    })
}

/// Field lines from `text`: one per line, `name: value`, lines that are not
/// valid fields skipped.
pub fn field_lines(text: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.split(|&byte| byte == b'\n') {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    map
}
