//! Databases built from CSV read back identically, through `maxminddb`
//! directly and through GeoDb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use geoip::{GeoDb, Preset, build_from_csv, read_network_csv};

const CSV: &str = "\
network,latitude,longitude,country,continent
# A country-wide network with more specific offices inside it, out of order.
198.51.100.128/25,48.8566,2.3522,FR,EU
198.51.100.0/24,52.3676,4.9041,NL,EU
198.51.100.200/32,51.5074,-0.1278,GB,
203.0.113.0/24,35.6762,139.6503,JP,AS
2001:db8::/32,40.7128,-74.0060,US,NA
2001:db8:ab::/48,-33.8688,151.2093,AU,
10.0.0.0/8,37.7749,-122.4194,,
";

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Raw {
    location: RawLocation,
    country: Option<RawCode>,
    continent: Option<RawContinent>,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct RawLocation {
    latitude: f64,
    longitude: f64,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct RawCode {
    iso_code: String,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct RawContinent {
    code: String,
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn built_database_reads_back_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nets.csv");
    let out = dir.path().join("nets.mmdb");
    std::fs::write(&csv, CSV).unwrap();
    let summary = build_from_csv(&csv, &out).unwrap();
    assert_eq!(summary.networks, 7);
    assert_eq!(summary.bytes as u64, std::fs::metadata(&out).unwrap().len());

    let rows = read_network_csv(&csv).unwrap();
    let reader = maxminddb::Reader::open_readfile(&out).unwrap();
    assert_eq!(reader.metadata().database_type, geoip::DATABASE_TYPE);
    let db = GeoDb::open(&out).unwrap();
    assert_eq!(db.schema(), &Preset::Maxmind.schema());

    for row in &rows {
        // Every row's first and last address, unless a more specific row covers it.
        for address in [row.network.network(), row.network.broadcast()] {
            let winner = rows
                .iter()
                .filter(|other| other.network.contains(&address))
                .max_by_key(|other| other.network.prefix_len())
                .unwrap();
            let raw: Raw = reader.lookup(address).unwrap().decode().unwrap().unwrap();
            assert_eq!(
                raw.location.latitude,
                winner.location.coordinates.latitude()
            );
            assert_eq!(
                raw.location.longitude,
                winner.location.coordinates.longitude()
            );
            assert_eq!(
                raw.country.map(|c| c.iso_code),
                winner.location.country.map(|c| c.to_string())
            );
            assert_eq!(
                raw.continent.map(|c| c.code),
                winner.location.continent.map(|c| c.to_string())
            );
            let found = db.lookup(address).unwrap();
            assert_eq!(found.location, Some(winner.location), "{address}");
        }
    }
}

#[test]
fn nested_networks_split_the_enclosing_block() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nets.csv");
    let out = dir.path().join("nets.mmdb");
    std::fs::write(&csv, CSV).unwrap();
    build_from_csv(&csv, &out).unwrap();
    let db = GeoDb::open(&out).unwrap();

    let paris = db.lookup(ip("198.51.100.130")).unwrap();
    // Paris's /25 is itself split by London's /32 at .200.
    assert_eq!(paris.network.to_string(), "198.51.100.128/26");
    // Amsterdam's /24 is split by Paris's /25: the lower half is uniform.
    let amsterdam = db.lookup(ip("198.51.100.5")).unwrap();
    assert_eq!(amsterdam.network.to_string(), "198.51.100.0/25");
    assert_eq!(amsterdam.location.unwrap().country.unwrap().as_str(), "NL");
    let london = db.lookup(ip("198.51.100.200")).unwrap();
    assert_eq!(london.network.to_string(), "198.51.100.200/32");
    // The continent of GB was left empty and derived from the country.
    assert_eq!(
        london.location.unwrap().continent,
        Some(geoip::Continent::EU)
    );

    let unknown = db.lookup(ip("192.0.2.1")).unwrap();
    assert_eq!(unknown.location, None);
}

#[test]
fn rebuilding_replaces_the_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nets.csv");
    let out = dir.path().join("nets.mmdb");
    std::fs::write(&csv, CSV).unwrap();
    build_from_csv(&csv, &out).unwrap();
    let before = GeoDb::open(&out).unwrap();
    std::fs::write(&csv, "10.0.0.0/8,1.0,2.0,NL\n").unwrap();
    build_from_csv(&csv, &out).unwrap();
    // The open mapping still reads the old data; a new open reads the new.
    let old = before.lookup(ip("203.0.113.1")).unwrap();
    assert!(old.location.is_some());
    let new = GeoDb::open(&out)
        .unwrap()
        .lookup(ip("203.0.113.1"))
        .unwrap();
    assert_eq!(new.location, None);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "no temporary file left behind");
}
