//! Bad files give errors that name them, never panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use geoip::{FieldPath, GeoDb, GeoIpError, SchemaConfig, build_from_csv};

fn open_error(path: &Path) -> String {
    GeoDb::open(path).expect_err("should not open").to_string()
}

fn built_database(dir: &Path) -> std::path::PathBuf {
    let csv = dir.join("nets.csv");
    let out = dir.join("good.mmdb");
    std::fs::write(
        &csv,
        "192.0.2.0/24,52.37,4.90,NL\n2001:db8::/32,40.7,-74.0,US\n",
    )
    .unwrap();
    build_from_csv(&csv, &out).unwrap();
    out
}

#[test]
fn missing_file() {
    let message = open_error(Path::new("/nonexistent/GeoLite2-City.mmdb"));
    assert!(
        message.starts_with("/nonexistent/GeoLite2-City.mmdb: cannot open MaxMind database"),
        "{message}"
    );
}

#[test]
fn directory_instead_of_file() {
    let dir = tempfile::tempdir().unwrap();
    let message = open_error(dir.path());
    assert!(message.contains("is a directory"), "{message}");
}

#[test]
fn not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.mmdb");
    std::fs::write(&path, "just some text, not a database\n").unwrap();
    let message = open_error(&path);
    assert!(
        message.starts_with(&format!("{}: cannot open MaxMind database", path.display())),
        "{message}"
    );
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.mmdb");
    std::fs::write(&path, "").unwrap();
    assert!(matches!(GeoDb::open(&path), Err(GeoIpError::Open { .. })));
}

#[test]
fn truncated_database_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(built_database(dir.path())).unwrap();
    let path = dir.path().join("cut.mmdb");
    // Cuts that remove the metadata fail to open; every cut must fail or
    // open cleanly, and lookups on what opens must not panic.
    for cut in (0..good.len()).step_by(7) {
        std::fs::write(&path, &good[..cut]).unwrap();
        if let Ok(db) = GeoDb::open(&path) {
            let _ = db.lookup("192.0.2.1".parse().unwrap());
            let _ = db.lookup("2001:db8::1".parse().unwrap());
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(built_database(dir.path())).unwrap();
    let path = dir.path().join("flipped.mmdb");
    for position in (0..good.len()).step_by(3) {
        let mut bad = good.clone();
        bad[position] ^= 0xA5;
        std::fs::write(&path, &bad).unwrap();
        if let Ok(db) = GeoDb::open(&path) {
            let _ = db.lookup("192.0.2.1".parse().unwrap());
            let _ = db.lookup("2001:db8::1".parse().unwrap());
        }
    }
}

#[test]
fn database_without_coordinates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("asn.mmdb");
    let mut writer = mmdb_writer::Writer::new("Example-ASN");
    #[derive(serde::Serialize)]
    struct Asn {
        autonomous_system_number: u32,
    }
    writer
        .insert(
            "192.0.2.0/24".parse::<ipnet::IpNet>().unwrap(),
            &Asn {
                autonomous_system_number: 64_512,
            },
        )
        .unwrap();
    std::fs::write(&path, writer.to_bytes().unwrap()).unwrap();
    let message = open_error(&path);
    assert!(message.contains("no coordinates found"), "{message}");
    assert!(message.contains("Example-ASN"), "{message}");
}

#[test]
fn configured_paths_that_find_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = built_database(dir.path());
    let config = SchemaConfig {
        latitude: Some(FieldPath::parse("geo.lat").unwrap()),
        ..SchemaConfig::default()
    };
    let message = GeoDb::open_with(&path, &config).unwrap_err().to_string();
    assert!(
        message.contains("no coordinates found at geo.lat/location.longitude"),
        "{message}"
    );
}

#[test]
fn csv_with_a_bad_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nets.csv");
    std::fs::write(
        &csv,
        "# offices\n192.0.2.0/24,52.37,4.90,NL\n198.51.100.0/24,52.37\n",
    )
    .unwrap();
    let message = build_from_csv(&csv, &dir.path().join("out.mmdb"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!("{}:3: expected network,latitude", csv.display())),
        "{message}"
    );
    assert!(!dir.path().join("out.mmdb").exists());
}

#[test]
fn csv_with_no_networks_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nets.csv");
    std::fs::write(&csv, "network,latitude,longitude\n").unwrap();
    let message = build_from_csv(&csv, &dir.path().join("out.mmdb"))
        .unwrap_err()
        .to_string();
    assert!(message.ends_with("no networks in file"), "{message}");
}
