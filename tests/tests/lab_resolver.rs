//! Through a real recursive resolver: clients in network namespaces ask
//! unbound, unbound asks geodns with EDNS Client Subnet, and each client gets
//! and fetches from its region's edge; when the EU edge dies, the EU client
//! is sent elsewhere once the resolver's cached answer expires.
//!
//! Needs root, `ip`, `unbound`, `dig` and `curl` (CI installs them); fails
//! without them unless `GEOCDN_TESTS_ALLOW_MISSING=1` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::binaries::binary;

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/lab/lab.sh")
}

/// Why the lab cannot run here, if it cannot.
fn missing_requirement() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root".into());
    }
    for tool in ["ip", "unbound", "dig", "curl"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output();
        if !found.is_ok_and(|output| output.status.success()) {
            return Some(format!("{tool} is not installed"));
        }
    }
    let probe = Command::new("ip")
        .args(["netns", "add", "geocdn-lab-probe"])
        .status();
    let _ = Command::new("ip")
        .args(["netns", "del", "geocdn-lab-probe"])
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        return Some("cannot create network namespaces".into());
    }
    None
}

/// Tears the lab down when dropped, whatever happened.
struct Lab;

impl Lab {
    fn up(work: &Path) -> Self {
        let bin_dir = binary("geodns").parent().unwrap().to_path_buf();
        binary("edge");
        binary("geocdn-demo");
        let output = Command::new("bash")
            .arg(lab_script())
            .arg("up")
            .arg(work)
            .env("BIN_DIR", bin_dir)
            .env("TTL", "2s")
            .output()
            .unwrap();
        let lab = Self;
        assert!(
            output.status.success(),
            "lab up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        lab
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("bash")
            .arg(lab_script())
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "lab {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(lab_script()).arg("down").status();
    }
}

fn in_client(region: &str, command: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", &format!("geocdn-lab-client-{region}")])
        .args(command)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn resolve(region: &str) -> String {
    in_client(
        region,
        &[
            "dig",
            "@198.18.0.2",
            "www.cdn.example.com",
            "+short",
            "+time=2",
            "+tries=1",
        ],
    )
}

fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

#[test]
fn clients_reach_their_region_through_unbound_and_fail_over() {
    if let Some(reason) = missing_requirement() {
        e2e::requirements::missing(
            &format!("the resolver lab needs root, ip, unbound, dig and curl: {reason}"),
            "run as root after apt-get install iproute2 unbound bind9-dnsutils curl",
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let lab = Lab::up(work.path());
    let log = |name: &str| {
        std::fs::read_to_string(work.path().join(format!("{name}.log"))).unwrap_or_default()
    };

    assert!(
        wait_for(Duration::from_secs(10), || resolve("eu") == "198.18.1.11"),
        "EU client did not get the EU edge: {:?}\ngeodns:\n{}\nunbound:\n{}",
        resolve("eu"),
        log("geodns"),
        log("unbound")
    );
    assert_eq!(resolve("us"), "198.18.1.12");
    assert_eq!(resolve("ap"), "198.18.1.13");

    // The EU client fetches from the edge it was given: MISS, then HIT.
    let fetch = || {
        in_client(
            "eu",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "http://198.18.1.11:8080/hello.txt",
            ],
        )
    };
    assert!(fetch().to_ascii_lowercase().contains("x-cache: miss"));
    assert!(fetch().to_ascii_lowercase().contains("x-cache: hit"));

    // Kill the EU edge: once the resolver's answer (TTL 2 s) expires and the
    // health checks see it down, the EU client goes to the next nearest.
    lab.run(&["stop-edge", "eu"]);
    assert!(
        wait_for(Duration::from_secs(15), || resolve("eu") == "198.18.1.12"),
        "EU client still sent to {:?}",
        resolve("eu")
    );
    assert_eq!(resolve("us"), "198.18.1.12");
}
