//! The flattened table answers as the locator it was built from: same
//! place and source for every sampled address, and a network that never
//! reaches past addresses with another place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use e2e::geo_databases::real_databases;
use geoip::{Coordinates, GeoDb, Location, LocationTable, Locator, Override, Overrides};
use ipnet::{IpNet, Ipv6Net};

/// A small xorshift, so samples are the same on every run.
struct Sampler(u64);

impl Sampler {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn v4(&mut self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self.next() as u32))
    }

    /// Mostly inside 2000::/4, where the IPv6 networks are.
    fn v6(&mut self) -> IpAddr {
        let high = (0x2u64 << 60) | (self.next() >> 4);
        IpAddr::V6(Ipv6Addr::from(
            (u128::from(high) << 64) | u128::from(self.next()),
        ))
    }
}

fn same_place(table: &LocationTable, locator: &Locator, ip: IpAddr) {
    // Alias ranges are barriers in the table: their clients are located by
    // the IPv4 address they embed, never as IPv6.
    if let IpAddr::V6(v6) = ip
        && barriers().iter().any(|range| range.contains(&v6))
    {
        return;
    }
    let expected = locator.locate(ip).unwrap();
    let found = table.locate(ip);
    assert_eq!(found.location, expected.location, "{ip}");
    assert_eq!(found.source, expected.source, "{ip}");
    assert!(
        found.network.contains(&ip),
        "{ip} outside {}",
        found.network
    );
    // The network holds one place: its first and last addresses agree.
    for edge in [found.network.network(), found.network.broadcast()] {
        let at_edge = locator.locate(edge).unwrap();
        assert_eq!(
            at_edge.location, expected.location,
            "{ip}: {edge} in {}",
            found.network
        );
    }
}

fn barriers() -> Vec<Ipv6Net> {
    ["::/96", "::ffff:0:0/96", "2001::/32", "2002::/16"]
        .iter()
        .map(|net| net.parse().unwrap())
        .collect()
}

#[test]
fn geolite2_table_matches_the_locator() {
    let databases = real_databases();
    let locator = Locator::new(
        Overrides::new(),
        vec![GeoDb::open(&databases.geolite2_city).unwrap()],
    );
    let started = Instant::now();
    let table = LocationTable::build(&locator, &barriers()).unwrap();
    eprintln!(
        "built in {:?}: {} + {} runs, {} + {} places, {} MB",
        started.elapsed(),
        table.v4.runs.len(),
        table.v6.runs.len(),
        table.v4.places(),
        table.v6.places(),
        table.heap_bytes() / 1_000_000
    );
    let mut sampler = Sampler(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        same_place(&table, &locator, sampler.v4());
        same_place(&table, &locator, sampler.v6());
    }
    // Known places.
    let ripe = table.locate("193.0.0.1".parse().unwrap());
    assert_eq!(ripe.location.unwrap().country.unwrap().as_str(), "NL");
    // The IPv4 data under ::/96 and its aliases are barriers in the IPv6 table.
    for alias in ["::193.0.0.1", "2001::1", "2002:c100:1::1"] {
        let found = table.locate(alias.parse().unwrap());
        assert_eq!(found.location, None, "{alias}");
    }
    // No IPv6 network reaches into an alias range.
    let outside = table.locate("2003::1".parse().unwrap());
    assert!(outside.network.prefix_len() >= 16, "{}", outside.network);
}

#[test]
fn split_dbip_files_and_overrides_paint_in_priority_order() {
    let databases = real_databases();
    let mut overrides = Overrides::new();
    let tokyo = Location {
        coordinates: Coordinates::new(35.68, 139.69).unwrap(),
        country: Some("JP".parse().unwrap()),
        continent: None,
    };
    let osaka = Location {
        coordinates: Coordinates::new(34.69, 135.50).unwrap(),
        ..tokyo
    };
    let net = |text: &str| text.parse::<IpNet>().unwrap();
    let place = |location, name: &str| Override {
        location,
        place: Some(name.to_string()),
    };
    overrides
        .insert(net("193.0.0.0/16"), place(tokyo, "tokyo"))
        .unwrap();
    overrides
        .insert(net("193.0.4.0/24"), place(osaka, "osaka"))
        .unwrap();
    overrides
        .insert(net("2001:67c::/32"), place(tokyo, "tokyo"))
        .unwrap();
    let locator = Locator::new(
        overrides,
        vec![
            GeoDb::open(&databases.dbip_flat_ipv4).unwrap(),
            GeoDb::open(&databases.dbip_flat_ipv6).unwrap(),
        ],
    );
    let table = LocationTable::build(&locator, &barriers()).unwrap();
    let mut sampler = Sampler(42);
    for _ in 0..10_000 {
        same_place(&table, &locator, sampler.v4());
        same_place(&table, &locator, sampler.v6());
    }
    for ip in [
        "193.0.0.1",
        "193.0.4.1",
        "193.0.255.255",
        "193.1.0.0",
        "2001:67c:2e8::1",
    ] {
        same_place(&table, &locator, ip.parse().unwrap());
    }
    let inner = table.locate("193.0.4.9".parse().unwrap());
    assert_eq!(inner.network, net("193.0.4.0/24"));
    assert_eq!(inner.location, Some(osaka));
}

#[test]
fn an_empty_locator_knows_nothing() {
    let table = LocationTable::build(&Locator::default(), &barriers()).unwrap();
    let found = table.locate("192.0.2.1".parse().unwrap());
    assert_eq!(found.location, None);
    assert_eq!(found.network.prefix_len(), 0);
}
