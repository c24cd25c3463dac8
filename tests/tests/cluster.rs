//! The cluster through a real etcd: edges announce themselves to geodns,
//! operators drain them with `geodns ctl`, purges reach every edge, misses
//! are filled from the owner of the key in the region, and all of it keeps
//! working with one etcd member of three down.
//!
//! Skipped (with a message) when etcd is not installed; `.ci/run` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::binaries::binary;
use e2e::dns::{Ask, addresses, ask_udp};
use e2e::etcd::Etcd;
use e2e::http::{HttpResponse, request};
use e2e::origin::{Origin, Reply};
use e2e::process::{ChildGuard, unique_loopback, wait_until};
use hickory_proto::rr::RecordType;

const TOKEN: &str = "cluster-test-token";
/// Where the test clients are: Paris, by an override in geodns.
const CLIENT_SUBNET: &str = "198.51.100.0";

/// One test's processes and files.
struct Lab {
    etcd: Etcd,
    dir: tempfile::TempDir,
}

/// A started geodns.
struct Geodns {
    address: Ipv4Addr,
    log: std::path::PathBuf,
    _process: ChildGuard,
}

/// A started edge.
struct EdgeNode {
    address: Ipv4Addr,
    process: ChildGuard,
}

impl Lab {
    fn new(etcd_members: usize) -> Option<Self> {
        Self::with_etcd(Etcd::start(etcd_members)?)
    }

    fn with_etcd(etcd: Etcd) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("networks.toml"),
            format!(
                "[[networks]]\nnetwork = \"{CLIENT_SUBNET}/24\"\nlatitude = 48.85\nlongitude = 2.35\ncountry = \"FR\"\n"
            ),
        )
        .unwrap();
        Some(Self { etcd, dir })
    }

    fn spawn(&self, program: &str, name: &str, config: &str) -> ChildGuard {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        ChildGuard::spawn(
            name,
            Command::new(binary(program))
                .arg("run")
                .arg("--config")
                .arg(&path),
            &self.dir.path().join(format!("{name}.log")),
        )
        .unwrap()
    }

    /// `[cluster]` for `endpoints`, with the client certificate when etcd wants one.
    fn cluster_section(&self, endpoints: &[String]) -> String {
        let mut section = format!(
            "[cluster]\nendpoints = {}\n",
            e2e::etcd::toml_array(endpoints)
        );
        if let Some(tls) = self.etcd.tls() {
            section.push_str(&format!(
                "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
                tls.ca, tls.client_cert, tls.client_key
            ));
        }
        section
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// geodns with one service, `www.cdn.test`, and no configured edges.
    fn geodns(&self, name: &str, answers: usize) -> Geodns {
        let address = unique_loopback();
        let config = format!(
            r#"
[server]
listen = ["{address}:5353"]

[admin]
listen = "{address}:9153"
token = "{TOKEN}"

[geoip]
overrides = ["networks.toml"]

[health]
interval = "200ms"
timeout = "300ms"
rise = 1
fall = 1
jitter = "20ms"

{cluster}

[zones."cdn.test"]
soa = {{ mname = "ns1.cdn.test", rname = "hostmaster.cdn.test" }}
ns = ["ns1.cdn.test"]

[[zones."cdn.test".records]]
name = "ns1"
type = "A"
value = "{address}"

[services.www]
zone = "cdn.test"
names = ["www"]
ttl = "5s"
answers = {answers}
"#,
            cluster = self.cluster_section(&self.etcd.endpoints()),
        );
        let config = config.replace(
            "[cluster]\n",
            &format!("[cluster]\nstate_file = \"{name}-membership.json\"\n"),
        );
        let process = self.spawn("geodns", name, &config);
        let started = wait_until(Duration::from_secs(15), || {
            e2e::http::get(SocketAddr::from((address, 9153)), "/healthz").is_ok()
        });
        assert!(started, "geodns did not start: {}", self.log(name));
        Geodns {
            address,
            log: self.dir.path().join(format!("{name}.log")),
            _process: process,
        }
    }

    /// An edge announcing itself for `www` in `region` at `location`.
    fn edge(
        &self,
        name: &str,
        region: &str,
        location: (f64, f64),
        origin: SocketAddr,
        ttl: &str,
    ) -> EdgeNode {
        self.edge_using(&self.etcd.endpoints(), name, region, location, origin, ttl)
    }

    /// Like [`Lab::edge`], talking to the etcd members at `endpoints` only.
    fn edge_using(
        &self,
        endpoints: &[String],
        name: &str,
        region: &str,
        location: (f64, f64),
        origin: SocketAddr,
        ttl: &str,
    ) -> EdgeNode {
        let address = unique_loopback();
        let config = format!(
            r#"
[server]
listen = ["{address}:8080"]
name = "{name}"

[origin]
urls = ["http://{origin}"]

[cache]
capacity = "16MiB"

[admin]
listen = "{address}:9180"
token = "{TOKEN}"

{cluster}

[announce]
service = "www"
region = "{region}"
location = {{ latitude = {latitude}, longitude = {longitude} }}
ipv4 = ["{address}"]
ttl = "{ttl}"
"#,
            cluster = self.cluster_section(endpoints),
            latitude = location.0,
            longitude = location.1,
        );
        self.start_edge(name, address, &config)
    }

    /// Starts an edge from `config` (written to `file`.toml), listening on `address`.
    fn start_edge(&self, file: &str, address: Ipv4Addr, config: &str) -> EdgeNode {
        let process = self.spawn("edge", file, config);
        let started = wait_until(Duration::from_secs(15), || {
            e2e::http::get(SocketAddr::from((address, 9180)), "/healthz").is_ok()
        });
        assert!(started, "edge {file} did not start: {}", self.log(file));
        EdgeNode { address, process }
    }

    /// Runs `geodns ctl` against this lab's etcd.
    fn ctl(&self, args: &[&str]) -> String {
        self.ctl_using(&self.etcd.endpoints(), args)
    }

    /// Runs `geodns ctl` against the etcd members at `endpoints`.
    fn ctl_using(&self, endpoints: &[String], args: &[&str]) -> String {
        let output = Command::new(binary("geodns"))
            .arg("ctl")
            .arg("--endpoints")
            .arg(endpoints.join(","))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "geodns ctl {args:?} failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    }
}

impl Geodns {
    fn answer(&self) -> Vec<IpAddr> {
        addresses(&ask_udp(
            SocketAddr::from((self.address, 5353)),
            &Ask::new("www.cdn.test", RecordType::A).subnet(CLIENT_SUBNET, 24),
        ))
    }

    fn answers_exactly(&self, wanted: &[Ipv4Addr]) -> bool {
        let mut got = self.answer();
        got.sort();
        let mut wanted: Vec<IpAddr> = wanted.iter().map(|ip| IpAddr::V4(*ip)).collect();
        wanted.sort();
        got == wanted
    }

    /// Waits up to `within` for the answer to be exactly `wanted`; panics
    /// with the last answer and geodns's log otherwise.
    fn expect_answer(&self, wanted: &[Ipv4Addr], within: Duration, what: &str) {
        if !wait_until(within, || self.answers_exactly(wanted)) {
            panic!(
                "{what}: wanted {wanted:?}, got {:?}\n{}",
                self.answer(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    /// Names of the edges in `/status`.
    fn known_edges(&self) -> Vec<String> {
        let status = e2e::http::get(SocketAddr::from((self.address, 9153)), "/status").unwrap();
        let json: serde_json::Value = serde_json::from_str(&status.body).unwrap();
        json["services"][0]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn cluster_connected(&self) -> bool {
        let status = e2e::http::get(SocketAddr::from((self.address, 9153)), "/status").unwrap();
        let json: serde_json::Value = serde_json::from_str(&status.body).unwrap();
        json["cluster"]["connected"].as_bool().unwrap()
    }
}

impl EdgeNode {
    fn client(&self) -> SocketAddr {
        SocketAddr::from((self.address, 8080))
    }

    fn admin(&self) -> SocketAddr {
        SocketAddr::from((self.address, 9180))
    }

    fn get(&self, path: &str) -> HttpResponse {
        request(self.client(), "GET", path, &[("Host", "cdn.test")]).unwrap()
    }

    fn cached_objects(&self) -> u64 {
        let health = e2e::http::get(self.admin(), "/healthz").unwrap();
        let json: serde_json::Value = serde_json::from_str(&health.body).unwrap();
        json["cache"]["objects"].as_u64().unwrap()
    }

    fn peer_is_down(&self, name: &str) -> bool {
        let ring = e2e::http::get(self.admin(), "/ring").unwrap();
        let json: serde_json::Value = serde_json::from_str(&ring.body).unwrap();
        json["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|peer| peer["name"] == name && peer["up"] == false)
    }

    fn ring_size(&self) -> usize {
        let ring = e2e::http::get(self.admin(), "/ring").unwrap();
        let json: serde_json::Value = serde_json::from_str(&ring.body).unwrap();
        json["peers"].as_array().unwrap().len()
    }
}

async fn cacheable_origin() -> Origin {
    Origin::start_on(SocketAddr::from((unique_loopback(), 8000)), |seen| {
        Reply::ok(
            format!("object {}", seen.uri),
            &[("cache-control", "max-age=300")],
        )
    })
    .await
}

const PARIS: (f64, f64) = (48.86, 2.35);
const FRANKFURT: (f64, f64) = (50.11, 8.68);
const ASHBURN: (f64, f64) = (39.04, -77.49);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_edges_join_and_leave_without_touching_geodns() {
    let Some(lab) = Lab::new(1) else { return };
    let origin = cacheable_origin().await;
    let geodns = lab.geodns("geodns", 2);
    assert!(geodns.answer().is_empty(), "no edge announced yet");

    let near = lab.edge("near", "eu", PARIS, origin.address(), "10s");
    let short_lived = lab.edge("short", "eu", FRANKFURT, origin.address(), "2s");
    geodns.expect_answer(
        &[near.address, short_lived.address],
        Duration::from_secs(10),
        "announced edges never answered",
    );

    // A second edge configured with the name "near" does not take it over.
    let impostor_address = unique_loopback();
    let impostor_config = std::fs::read_to_string(lab.dir.path().join("near.toml"))
        .unwrap()
        .replace(&near.address.to_string(), &impostor_address.to_string());
    let impostor = lab.start_edge("impostor", impostor_address, &impostor_config);
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .log("impostor")
            .contains("another edge announces the name")),
        "{}",
        lab.log("impostor")
    );
    geodns.expect_answer(
        &[near.address, short_lived.address],
        Duration::from_secs(1),
        "an edge with a taken name changed the answers",
    );
    // (It would take the name once the first one is gone.)
    drop(impostor);

    // Killed: the lease expires after its 2 s TTL and the member is gone.
    short_lived.process.signal("KILL");
    let killed_at = Instant::now();
    assert!(
        wait_until(Duration::from_secs(8), || !geodns
            .known_edges()
            .contains(&"short".to_string())),
        "a killed edge stayed a member: {:?}",
        geodns.known_edges()
    );
    assert!(geodns.answers_exactly(&[near.address]));
    eprintln!("killed edge gone after {:?}", killed_at.elapsed());

    // Stopped cleanly: it withdraws at once, long before its 10 s TTL.
    near.process.signal("TERM");
    assert!(
        wait_until(Duration::from_secs(3), || geodns.known_edges().is_empty()),
        "a cleanly stopped edge was not withdrawn at once: {:?}",
        geodns.known_edges()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_drain_moves_answers_on_every_geodns() {
    let Some(lab) = Lab::new(1) else { return };
    let origin = cacheable_origin().await;
    let first = lab.geodns("geodns-1", 1);
    let second = lab.geodns("geodns-2", 1);
    let eu = lab.edge("eu-1", "eu", FRANKFURT, origin.address(), "10s");
    let us = lab.edge("us-1", "us", ASHBURN, origin.address(), "10s");
    for geodns in [&first, &second] {
        assert!(
            wait_until(Duration::from_secs(10), || geodns
                .answers_exactly(&[eu.address])
                && geodns.known_edges().len() == 2),
            "Paris not sent to the eu edge: {:?}",
            geodns.answer()
        );
    }

    let said = lab.ctl(&["drain", "eu-1", "--reason", "kernel upgrade"]);
    assert!(said.contains("drained"), "{said}");
    let drained_at = Instant::now();
    for geodns in [&first, &second] {
        geodns.expect_answer(
            &[us.address],
            Duration::from_secs(3),
            "drain did not move Paris to us",
        );
    }
    eprintln!("drain applied on both in {:?}", drained_at.elapsed());
    let members = lab.ctl(&["members"]);
    assert!(
        members.contains("eu-1") && members.contains("drained"),
        "{members}"
    );

    lab.ctl(&["pool", "eu-1"]);
    // A name no geodns knows is refused with the names it does know...
    let typo = Command::new(binary("geodns"))
        .args([
            "ctl",
            "--endpoints",
            &lab.etcd.endpoints().join(","),
            "drain",
            "eu-l",
        ])
        .output()
        .unwrap();
    assert!(!typo.status.success(), "drain of an unknown edge succeeded");
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(
        said.contains("eu-l") && said.contains("eu-1") && said.contains("--force"),
        "{said}"
    );
    // ...unless forced, and such drains show in the members list.
    lab.ctl(&["drain", "eu-9", "--force"]);
    let members = lab.ctl(&["members"]);
    assert!(
        members
            .lines()
            .any(|line| line.starts_with("eu-9") && line.contains("not announced drained")),
        "{members}"
    );
    lab.ctl(&["pool", "eu-9"]);
    for geodns in [&first, &second] {
        geodns.expect_answer(
            &[eu.address],
            Duration::from_secs(3),
            "pool did not bring Paris back to eu",
        );
    }

    // The admin API does the same, with the token only.
    let admin = SocketAddr::from((first.address, 9153));
    let refused = request(admin, "POST", "/drain?edge=eu-1", &[]).unwrap();
    assert_eq!(refused.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let accepted = request(
        admin,
        "POST",
        "/drain?edge=eu-1",
        &[("Authorization", &bearer)],
    )
    .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    second.expect_answer(
        &[us.address],
        Duration::from_secs(3),
        "the admin API's drain did not reach the other geodns",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_keeps_answers_and_joins_resume_after() {
    let Some(mut lab) = Lab::new(1) else { return };
    let origin = cacheable_origin().await;
    let geodns = lab.geodns("geodns", 2);
    let first = lab.edge("first", "eu", PARIS, origin.address(), "3s");
    geodns.expect_answer(
        &[first.address],
        Duration::from_secs(10),
        "the first edge never joined",
    );

    lab.etcd.stop(0);
    assert!(
        wait_until(Duration::from_secs(10), || !geodns.cluster_connected()),
        "geodns did not notice etcd going away"
    );
    // Well past the lease TTL: the last membership seen stays in force.
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(4) {
        assert!(
            geodns.answers_exactly(&[first.address]),
            "answers changed while etcd was down: {:?}",
            geodns.answer()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        first.get("/during-outage").status,
        200,
        "edges keep serving"
    );

    lab.etcd.restart(0);
    let second = lab.edge("second", "eu", FRANKFURT, origin.address(), "3s");
    geodns.expect_answer(
        &[first.address, second.address],
        Duration::from_secs(25),
        "no join seen after etcd came back",
    );
    assert!(geodns.cluster_connected());
    // The first edge renewed its announcement: still a member after its TTL.
    std::thread::sleep(Duration::from_secs(4));
    let mut members = geodns.known_edges();
    members.sort();
    assert_eq!(members, ["first", "second"], "{}", lab.log("first"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_edge_clears_the_others() {
    let Some(lab) = Lab::new(1) else { return };
    let origin = cacheable_origin().await;
    // Different regions: no fill ring between them, each caches its own copy.
    let edges = [
        lab.edge("purge-a", "eu", PARIS, origin.address(), "10s"),
        lab.edge("purge-b", "us", ASHBURN, origin.address(), "10s"),
        lab.edge("purge-c", "ap", (35.68, 139.69), origin.address(), "10s"),
    ];
    for edge in &edges {
        assert_eq!(edge.get("/page").header("x-cache"), Some("MISS"));
        assert_eq!(edge.get("/page").header("x-cache"), Some("HIT"));
        assert_eq!(edge.get("/other").status, 200);
    }

    let bearer = format!("Bearer {TOKEN}");
    let purged = request(
        edges[0].admin(),
        "POST",
        "/purge?url=/page&host=cdn.test",
        &[("Authorization", &bearer)],
    )
    .unwrap();
    assert_eq!(purged.status, 200, "{}", purged.body);
    assert!(
        purged.body.contains("published_revision"),
        "{}",
        purged.body
    );
    let published = Instant::now();
    for edge in &edges[1..] {
        assert!(
            wait_until(Duration::from_secs(3), || edge.cached_objects() == 1),
            "purge did not reach an edge"
        );
        assert_eq!(edge.get("/page").header("x-cache"), Some("MISS"));
        assert_eq!(edge.get("/other").header("x-cache"), Some("HIT"));
        let metrics = e2e::http::get(edge.admin(), "/metrics").unwrap().body;
        assert!(
            metrics.contains("edge_cluster_purges_applied_total 1"),
            "{metrics}"
        );
        assert!(metrics.contains("edge_cluster_announced 1"), "{metrics}");
    }
    eprintln!("purge applied everywhere in {:?}", published.elapsed());

    // The same from the command line, for everything.
    lab.ctl(&["purge", "--all"]);
    for edge in &edges {
        assert!(wait_until(Duration::from_secs(3), || edge.cached_objects() == 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regional_fill_makes_one_origin_fetch_per_object() {
    let Some(lab) = Lab::new(1) else { return };
    let origin = cacheable_origin().await;
    let mut edges = vec![
        lab.edge("fill-a", "eu", PARIS, origin.address(), "10s"),
        lab.edge("fill-b", "eu", FRANKFURT, origin.address(), "10s"),
        lab.edge("fill-c", "eu", (52.37, 4.90), origin.address(), "10s"),
    ];
    for edge in &edges {
        assert!(
            wait_until(Duration::from_secs(10), || edge.ring_size() == 2),
            "the ring never formed"
        );
    }

    for object in 0..100 {
        for edge in &edges {
            let response = edge.get(&format!("/obj/{object}"));
            assert_eq!(response.status, 200);
            assert_eq!(response.body, format!("object /obj/{object}"));
        }
    }
    let fetched = origin.requests();
    eprintln!("300 requests for 100 objects over 3 edges: {fetched} origin fetches");
    assert!(
        (100..=105).contains(&fetched),
        "expected about one origin fetch per object, got {fetched}"
    );

    // One edge frozen: it still accepts connections but answers nothing.
    // Its checks fail within about two seconds, and from then on its keys go
    // to the next in hash order or the origin instead of waiting for it.
    let frozen = edges.pop().unwrap();
    frozen.process.signal("STOP");
    for edge in &edges {
        assert!(
            wait_until(Duration::from_secs(10), || edge.peer_is_down("fill-c")),
            "a frozen peer was never noticed"
        );
    }
    for object in 100..150 {
        for edge in &edges {
            let response = edge.get(&format!("/obj/{object}"));
            assert_eq!(
                response.status, 200,
                "/obj/{object} failed with a frozen peer"
            );
        }
    }
    // Killed: the same, and the old objects are still served.
    frozen.process.signal("KILL");
    for object in 0..150 {
        for edge in &edges {
            let response = edge.get(&format!("/obj/{object}"));
            assert_eq!(response.status, 200, "/obj/{object} failed after a kill");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_etcd_members_with_one_down() {
    let Some(mut lab) = Lab::new(3) else { return };
    lab.etcd.stop(0);
    let origin = cacheable_origin().await;
    let geodns = lab.geodns("geodns", 1);
    let eu = lab.edge("quorum-eu", "eu", FRANKFURT, origin.address(), "10s");
    let us = lab.edge("quorum-us", "us", ASHBURN, origin.address(), "10s");
    assert!(
        wait_until(Duration::from_secs(15), || geodns
            .answers_exactly(&[eu.address])
            && geodns.known_edges().len() == 2),
        "joins not seen with one etcd member down: {:?}\n{}",
        geodns.answer(),
        lab.log("geodns")
    );
    lab.ctl(&["drain", "quorum-eu"]);
    geodns.expect_answer(
        &[us.address],
        Duration::from_secs(3),
        "drain did not move the answer with one etcd member down",
    );

    assert_eq!(us.get("/q").header("x-cache"), Some("MISS"));
    let bearer = format!("Bearer {TOKEN}");
    eu.get("/q");
    let purged = request(
        eu.admin(),
        "POST",
        "/purge?prefix=/&host=cdn.test",
        &[("Authorization", &bearer)],
    )
    .unwrap();
    assert_eq!(purged.status, 200, "{}", purged.body);
    assert!(wait_until(Duration::from_secs(3), || us.cached_objects() == 0));

    // The fill ring forms too (drained edges are left out of it).
    lab.ctl(&["pool", "quorum-eu"]);
    let eu_second = lab.edge("quorum-eu-2", "eu", PARIS, origin.address(), "10s");
    assert!(
        wait_until(Duration::from_secs(10), || eu_second.ring_size() == 1
            && eu.ring_size() == 1),
        "no ring with one etcd member down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_edge_catches_up_on_missed_purges() {
    let Some(mut lab) = Lab::new(3) else { return };
    let origin = cacheable_origin().await;
    // This edge only knows member 0; the operator talks to members 1 and 2.
    let edge = lab.edge_using(
        &[lab.etcd.endpoint(0)],
        "isolated",
        "eu",
        PARIS,
        origin.address(),
        "10s",
    );
    let others = [lab.etcd.endpoint(1), lab.etcd.endpoint(2)];
    for path in ["/a", "/b", "/c"] {
        assert_eq!(edge.get(path).status, 200);
    }
    assert_eq!(edge.cached_objects(), 3);

    // Missed while cut off, applied on reconnection.
    lab.etcd.stop(0);
    lab.ctl_using(&others, &["purge", "--url", "/a", "--host", "cdn.test"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(edge.cached_objects(), 3, "the edge cannot know yet");
    lab.etcd.restart(0);
    assert!(
        wait_until(Duration::from_secs(20), || edge.cached_objects() == 2),
        "missed purge not applied after reconnecting: {} objects\n{}",
        edge.cached_objects(),
        lab.log("isolated")
    );
    assert_eq!(edge.get("/a").header("x-cache"), Some("MISS"));
    assert_eq!(edge.get("/b").header("x-cache"), Some("HIT"));

    // Missed and then compacted away: the edge cannot tell what changed,
    // so it purges everything.
    lab.etcd.stop(0);
    lab.ctl_using(&others, &["purge", "--url", "/b", "--host", "cdn.test"]);
    let mut client = etcd_client::Client::connect([others[0].as_str()], None)
        .await
        .unwrap();
    let revision = client
        .get("/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client
        .compact(
            revision,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    lab.etcd.restart(0);
    assert!(
        wait_until(Duration::from_secs(20), || edge.cached_objects() == 0),
        "compacted history did not purge everything: {} objects\n{}",
        edge.cached_objects(),
        lab.log("isolated")
    );
    let metrics = e2e::http::get(edge.admin(), "/metrics").unwrap().body;
    assert!(
        metrics.contains("edge_cluster_full_purges_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_with_client_certificates() {
    let Some(etcd) = Etcd::start_with(1, true) else {
        return;
    };
    let Some(lab) = Lab::with_etcd(etcd) else {
        return;
    };
    let origin = cacheable_origin().await;
    let geodns = lab.geodns("geodns-tls", 1);
    let edge = lab.edge("tls-edge", "eu", PARIS, origin.address(), "10s");
    geodns.expect_answer(&[edge.address], Duration::from_secs(15), "no join over TLS");
    // `ctl` reads the same [cluster] section, certificates included.
    let config = lab.dir.path().join("geodns-tls.toml");
    let output = Command::new(binary("geodns"))
        .args(["ctl", "--config"])
        .arg(&config)
        .arg("members")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && listed.contains("tls-edge"),
        "{listed}"
    );
    // Without a client certificate etcd refuses.
    let tls = lab.etcd.tls().unwrap();
    let anonymous = lab.dir.path().join("anonymous.toml");
    std::fs::write(
        &anonymous,
        format!(
            "[cluster]\nendpoints = {}\nca_file = {:?}\ndial_timeout = \"1s\"\nrequest_timeout = \"1s\"\n",
            lab.etcd.endpoints_toml(),
            tls.ca
        ),
    )
    .unwrap();
    let refused = Command::new(binary("geodns"))
        .args(["ctl", "--config"])
        .arg(&anonymous)
        .arg("members")
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "etcd accepted a client without a certificate"
    );
}
