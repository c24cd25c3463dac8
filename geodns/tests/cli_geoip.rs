//! `geodns geoip build` and `geodns geoip lookup`, run as the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const CSV: &str = "\
network,latitude,longitude,country,continent
192.0.2.0/24,52.3676,4.9041,NL,EU
198.51.100.0/24,40.7128,-74.0060,US,NA
2001:db8::/32,35.6762,139.6503,JP,AS
";

fn geodns(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geodns"))
        .args(args)
        .output()
        .expect("run geodns")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn build(dir: &Path) -> String {
    let csv = dir.join("nets.csv");
    let out = dir.join("nets.mmdb");
    std::fs::write(&csv, CSV).unwrap();
    let output = geodns(&[
        "geoip",
        "build",
        csv.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("wrote 3 networks ("),
        "{}",
        stdout(&output)
    );
    out.to_str().unwrap().to_string()
}

#[test]
fn build_then_lookup_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = build(dir.path());
    let output = geodns(&[
        "geoip",
        "lookup",
        &db,
        "192.0.2.10",
        "2001:db8::1",
        "203.0.113.1",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("192.0.2.10\n  location  52.3676, 4.9041 (NL, EU)\n  network   192.0.2.0/24\n  source    GeoCDN-City"), "{text}");
    assert!(
        text.contains("2001:db8::1\n  location  35.6762, 139.6503 (JP, AS)"),
        "{text}"
    );
    assert!(
        text.contains("203.0.113.1\n  location  unknown\n"),
        "{text}"
    );
}

#[test]
fn lookup_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let db = build(dir.path());
    let output = geodns(&[
        "geoip",
        "lookup",
        "--json",
        &db,
        "198.51.100.7",
        "203.0.113.1",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["network"], "198.51.100.0/24");
    assert_eq!(lines[0]["location"]["country"], "US");
    assert_eq!(lines[0]["location"]["coordinates"]["latitude"], 40.7128);
    assert_eq!(lines[0]["source"], "database");
    assert_eq!(lines[1]["source"], "unknown");
    assert!(lines[1]["location"].is_null());
}

#[test]
fn overrides_take_precedence_and_narrow_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let db = build(dir.path());
    let toml = dir.path().join("overrides.toml");
    std::fs::write(
        &toml,
        "[places.sydney]\nlatitude = -33.8688\nlongitude = 151.2093\ncountry = \"AU\"\n\n\
         [[networks]]\nnetwork = \"192.0.2.128/25\"\nplace = \"sydney\"\n",
    )
    .unwrap();
    let csv = dir.path().join("overrides.csv");
    std::fs::write(&csv, "203.0.113.0/24,51.5074,-0.1278,GB\n").unwrap();
    let output = geodns(&[
        "geoip",
        "lookup",
        "--json",
        &db,
        "--overrides",
        toml.to_str().unwrap(),
        "--overrides",
        csv.to_str().unwrap(),
        "192.0.2.200",
        "192.0.2.1",
        "203.0.113.9",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["source"], "override");
    assert_eq!(lines[0]["place"], "sydney");
    assert_eq!(lines[0]["location"]["continent"], "OC");
    assert_eq!(lines[0]["network"], "192.0.2.128/25");
    // The database's /24 holds the override's /25: only the lower half is uniform.
    assert_eq!(lines[1]["source"], "database");
    assert_eq!(lines[1]["network"], "192.0.2.0/25");
    assert_eq!(lines[2]["location"]["country"], "GB");
}

#[test]
fn bad_override_toml_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = build(dir.path());
    let toml = dir.path().join("overrides.toml");
    std::fs::write(
        &toml,
        "[places.x]\nlatitude = 1.0\nlongitude = 2.0\ncountry = \"NLD\"\n",
    )
    .unwrap();
    let output = geodns(&[
        "geoip",
        "lookup",
        &db,
        "--overrides",
        toml.to_str().unwrap(),
        "192.0.2.1",
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "{}:4:11: places.x.country: invalid country code \"NLD\"",
            toml.display()
        )),
        "{message}"
    );
}

#[test]
fn missing_database_is_a_clear_error() {
    let output = geodns(&["geoip", "lookup", "/nonexistent/city.mmdb", "192.0.2.1"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with("error: /nonexistent/city.mmdb: cannot open MaxMind database"),
        "{message}"
    );
}

#[test]
fn bad_csv_line_fails_the_build_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nets.csv");
    std::fs::write(&csv, "192.0.2.0/24,52.37,4.90\n192.0.2.0/33,1,1\n").unwrap();
    let out = dir.path().join("out.mmdb");
    let output = geodns(&[
        "geoip",
        "build",
        csv.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "{}:2: invalid network \"192.0.2.0/33\"",
            csv.display()
        )),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}

#[test]
fn real_geolite2_and_dbip_agree_on_amsterdam() {
    let databases = e2e::geo_databases::real_databases();
    for db in [&databases.geolite2_city, &databases.dbip_flat_ipv4] {
        let output = geodns(&[
            "geoip",
            "lookup",
            "--json",
            db.to_str().unwrap(),
            "193.0.0.1",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let value: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
        let latitude = value["location"]["coordinates"]["latitude"]
            .as_f64()
            .unwrap();
        let longitude = value["location"]["coordinates"]["longitude"]
            .as_f64()
            .unwrap();
        assert!(
            (latitude - 52.37).abs() < 0.2 && (longitude - 4.90).abs() < 0.2,
            "{value}"
        );
    }
}
