//! The real GeoLite2 City and DB-IP (flat) databases, read through GeoDb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use e2e::geo_databases::real_databases;
use geoip::{Continent, Coordinates, GeoDb, Locator, Overrides, Preset, Source, great_circle_km};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn amsterdam() -> Coordinates {
    Coordinates::new(52.3676, 4.9041).unwrap()
}

#[test]
fn geolite2_places_ripe_ncc_in_amsterdam() {
    let db = GeoDb::open(real_databases().geolite2_city).unwrap();
    assert_eq!(db.database_type(), "GeoLite2-City");
    assert_eq!(db.schema(), &Preset::Maxmind.schema());
    let found = db.lookup(ip("193.0.0.1")).unwrap();
    let location = found.location.expect("193.0.0.1 is in GeoLite2");
    let distance = great_circle_km(location.coordinates, amsterdam());
    assert!(
        distance < 50.0,
        "{} is {distance} km from Amsterdam",
        location.coordinates
    );
    assert_eq!(location.country.unwrap().as_str(), "NL");
    assert_eq!(location.continent, Some(Continent::EU));
    assert!(found.network.contains(&ip("193.0.0.1")));
    assert_eq!(found.network.to_string(), "193.0.0.0/21");
}

#[test]
fn dbip_flat_layout_is_detected_and_read_as_floats() {
    let databases = real_databases();
    let v4 = GeoDb::open(&databases.dbip_flat_ipv4).unwrap();
    assert_eq!(v4.schema(), &Preset::Flat.schema());
    let location = v4.lookup(ip("193.0.0.1")).unwrap().location.unwrap();
    assert!(great_circle_km(location.coordinates, amsterdam()) < 50.0);
    assert_eq!(location.country.unwrap().as_str(), "NL");
    // The flat layout has no continent; it is derived from the country.
    assert_eq!(location.continent, Some(Continent::EU));

    let v6 = GeoDb::open(&databases.dbip_flat_ipv6).unwrap();
    let location = v6.lookup(ip("2001:67c:2e8::1")).unwrap().location.unwrap();
    assert!(great_circle_km(location.coordinates, amsterdam()) < 50.0);
}

#[test]
fn each_database_knows_the_families_it_holds() {
    let databases = real_databases();
    let (v4, v6) = (ip("193.0.0.1"), ip("2001:67c:2e8::1"));
    let geolite2 = GeoDb::open(&databases.geolite2_city).unwrap();
    assert!(geolite2.holds_family_of(v4) && geolite2.holds_family_of(v6));
    let dbip_v4 = GeoDb::open(&databases.dbip_flat_ipv4).unwrap();
    assert!(dbip_v4.holds_family_of(v4) && !dbip_v4.holds_family_of(v6));
    // An IPv6 tree whose IPv4 part is empty.
    let dbip_v6 = GeoDb::open(&databases.dbip_flat_ipv6).unwrap();
    assert_eq!(dbip_v6.ip_version(), 6);
    assert!(!dbip_v6.holds_family_of(v4) && dbip_v6.holds_family_of(v6));
}

#[test]
fn split_dbip_files_serve_both_families_through_one_locator() {
    let databases = real_databases();
    let locator = Locator::new(
        Overrides::new(),
        vec![
            GeoDb::open(&databases.dbip_flat_ipv4).unwrap(),
            GeoDb::open(&databases.dbip_flat_ipv6).unwrap(),
        ],
    );
    let v4 = locator.locate(ip("193.0.0.1")).unwrap();
    assert_eq!(v4.source, Source::Database { index: 0 });
    assert_eq!(v4.network.to_string(), "193.0.0.0/21");
    let v6 = locator.locate(ip("2001:67c:2e8::1")).unwrap();
    assert_eq!(v6.source, Source::Database { index: 1 });
    assert!(v6.network.contains(&ip("2001:67c:2e8::1")));
}

#[test]
fn country_level_networks_are_placed_at_the_country_point() {
    let db = GeoDb::open(real_databases().geolite2_city).unwrap();
    // GeoLite2 places 8.8.8.8 only at the United States' country point.
    let location = db.lookup(ip("8.8.8.8")).unwrap().location.unwrap();
    assert_eq!(location.country.unwrap().as_str(), "US");
    let us = geoip::centroid_of("US".parse().unwrap()).unwrap();
    assert!(great_circle_km(location.coordinates, us) < 1.0);
}

#[test]
fn uncovered_addresses_are_unknown_with_their_gap() {
    let db = GeoDb::open(real_databases().geolite2_city).unwrap();
    for address in ["10.1.2.3", "127.0.0.1", "fe80::1"] {
        let found = db.lookup(ip(address)).unwrap();
        assert_eq!(found.location, None, "{address}");
        assert!(
            found.network.contains(&ip(address)),
            "{address} in {}",
            found.network
        );
    }
}

#[test]
fn ipv6_lookup_in_ipv4_only_database_is_unknown_not_an_error() {
    let db = GeoDb::open(real_databases().dbip_flat_ipv4).unwrap();
    let found = db.lookup(ip("2001:db8::1")).unwrap();
    assert_eq!(found.location, None);
    assert_eq!(found.network.to_string(), "::/0");
}

#[test]
fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
    let db = GeoDb::open(real_databases().geolite2_city).unwrap();
    let mapped = db.lookup(ip("::ffff:193.0.0.1")).unwrap();
    assert_eq!(mapped, db.lookup(ip("193.0.0.1")).unwrap());
}

#[test]
fn networks_returned_hold_one_record_across_the_block() {
    // The first and last address of each returned network must see the same
    // record: the property ECS scopes rely on.
    let db = GeoDb::open(real_databases().geolite2_city).unwrap();
    let mut state = 0x9e37_79b9_u32;
    for _ in 0..2_000 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let address = IpAddr::V4(state.into());
        let found = db.lookup(address).unwrap();
        for edge in [found.network.network(), found.network.broadcast()] {
            let other = db.lookup(edge).unwrap();
            assert_eq!(other.network, found.network, "{address} vs {edge}");
            assert_eq!(other.location, found.location, "{address} vs {edge}");
        }
    }
}
