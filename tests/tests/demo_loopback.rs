//! The demo topology on loopback, from the demo's own configuration files:
//! clients in three regions get three edges, fetch through them (MISS then
//! HIT), and geodns moves clients off a stopped edge and back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::binaries::binary;
use e2e::dns::{Ask, addresses, ask_udp};
use e2e::origin::{Origin, Reply};
use e2e::process::{ChildGuard, unique_loopback, wait_until};
use hickory_proto::rr::RecordType;

struct Topology {
    prefix: String,
    dir: tempfile::TempDir,
}

impl Topology {
    /// The demo's files with every 127.0.0.x address moved to a /24 of our own.
    fn new() -> Self {
        let [_, a, b, _] = unique_loopback().octets();
        let prefix = format!("127.{a}.{b}");
        let dir = tempfile::tempdir().unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/demo");
        for file in [
            "geodns.toml",
            "edge-eu.toml",
            "edge-us.toml",
            "edge-ap.toml",
            "networks.csv",
        ] {
            let text = std::fs::read_to_string(demo.join(file))
                .unwrap()
                .replace("127.0.0.", &format!("{prefix}."));
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        geoip::build_from_csv(
            &dir.path().join("networks.csv"),
            &dir.path().join("demo.mmdb"),
        )
        .unwrap();
        Self { prefix, dir }
    }

    fn address(&self, last: u8) -> IpAddr {
        format!("{}.{last}", self.prefix).parse().unwrap()
    }

    fn start(&self, program: &str, config: &str) -> ChildGuard {
        let path = self.dir.path().join(config);
        ChildGuard::spawn(
            program,
            Command::new(binary(program))
                .arg("run")
                .arg("--config")
                .arg(&path),
            &self.dir.path().join(format!("{config}.log")),
        )
        .unwrap()
    }

    fn dns(&self) -> SocketAddr {
        SocketAddr::new(self.address(1), 5353)
    }

    fn answer(&self, subnet: &str) -> Vec<IpAddr> {
        addresses(&ask_udp(
            self.dns(),
            &Ask::new("www.cdn.example.com", RecordType::A).subnet(subnet, 24),
        ))
    }
}

async fn fetch(edge: IpAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((edge, 8080)).await.unwrap();
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: www.cdn.example.com\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let header = |name: &str| {
        response
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix(&format!("{name}: "))
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    (header("x-cache"), header("age"))
}

#[tokio::test]
async fn regions_get_their_edges_fetch_through_them_and_fail_over() {
    let topology = Topology::new();
    let origin = Origin::start_on(SocketAddr::new(topology.address(10), 8000), |_| {
        Reply::ok("hello", &[("cache-control", "public, max-age=60")])
    })
    .await;
    let mut edges: Vec<ChildGuard> = ["eu", "us", "ap"]
        .iter()
        .map(|region| topology.start("edge", &format!("edge-{region}.toml")))
        .collect();
    let mut geodns = topology.start("geodns", "geodns.toml");
    for last in [11, 12, 13] {
        assert!(wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect((topology.address(last), 8080)).is_ok()
        }));
    }
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(topology.dns()).is_ok()
    }));

    let (eu, us, ap) = (
        topology.address(11),
        topology.address(12),
        topology.address(13),
    );
    assert_eq!(topology.answer("192.0.2.0"), [eu]);
    assert_eq!(topology.answer("198.51.100.0"), [us]);
    assert_eq!(topology.answer("203.0.113.0"), [ap]);

    // Fetch through the edge each region got: MISS, then HIT with Age.
    for edge in [eu, us, ap] {
        assert_eq!(fetch(edge, "/hello.txt").await.0, "miss");
        let (cache, age) = fetch(edge, "/hello.txt").await;
        assert_eq!(cache, "hit");
        assert!(age.parse::<u64>().is_ok());
    }
    assert_eq!(origin.requests(), 3, "one origin fetch per edge");

    // Stop the eu edge: Amsterdam moves to the next nearest (us) within the
    // detection time (2 failed checks at 500 ms, 300 ms timeout).
    drop(edges.remove(0));
    let stopped = Instant::now();
    assert!(wait_until(Duration::from_secs(3), || topology
        .answer("192.0.2.0")
        == [us]));
    assert!(stopped.elapsed() < Duration::from_secs(3));

    // Restart it: after two good checks it is back.
    edges.insert(0, topology.start("edge", "edge-eu.toml"));
    assert!(wait_until(Duration::from_secs(5), || topology
        .answer("192.0.2.0")
        == [eu]));
    assert!(geodns.try_wait().is_none(), "geodns still running");
}

/// `promtool check metrics` on `text`: its complaints, empty when clean.
fn promtool_problems(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("{:?}: {said}", output.status)
    }
}

#[tokio::test]
async fn metrics_of_both_binaries_are_clean_prometheus_text_and_openmetrics_on_request() {
    if Command::new("promtool").arg("--version").output().is_err() {
        e2e::requirements::missing("promtool", "apt-get install prometheus");
        return;
    }
    let topology = Topology::new();
    let _edge = topology.start("edge", "edge-eu.toml");
    let _geodns = topology.start("geodns", "geodns.toml");
    let admins = [
        ("geodns", SocketAddr::new(topology.address(1), 9153)),
        ("edge", SocketAddr::new(topology.address(11), 9180)),
    ];
    for (program, admin) in admins {
        assert!(
            wait_until(Duration::from_secs(10), || e2e::http::get(
                admin, "/metrics"
            )
            .is_ok_and(|response| response.status == 200)),
            "{program} admin at {admin}"
        );
        // No Accept (curl, promtool, older scrapers): the classic format.
        let classic = e2e::http::get(admin, "/metrics").unwrap();
        assert_eq!(
            classic.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{program}"
        );
        assert!(!classic.body.contains("# EOF"), "{program}");
        assert!(
            classic.body.contains("# TYPE build_info gauge"),
            "{program}: {}",
            classic.body
        );
        let problems = promtool_problems(&classic.body);
        assert!(
            problems.is_empty(),
            "{program}: {problems}\n{}",
            classic.body
        );

        // What Prometheus sends: OpenMetrics, ending in # EOF.
        let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let openmetrics =
            e2e::http::request(admin, "GET", "/metrics", &[("Accept", prometheus_accept)]).unwrap();
        assert_eq!(
            openmetrics.header("content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            "{program}"
        );
        assert!(openmetrics.body.ends_with("# EOF\n"), "{program}");
    }
}

#[test]
fn the_demo_explains_itself_and_refuses_unknown_arguments() {
    let help = Command::new(binary("geocdn-demo"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--cluster") && text.contains("origin"),
        "{text}"
    );
    let unknown = Command::new(binary("geocdn-demo"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("unexpected argument '--bogus'"), "{said}");
    assert!(!said.contains("backtrace"), "{said}");
}
