//! Lookups per second on the real GeoLite2 City database with random IPv4
//! addresses: the cost geodns pays per query that misses its answer cache.
//!
//! Run with `cargo bench -p geoip --bench lookup`; the database is fetched on
//! first use like in the tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use geoip::{GeoDb, Locator, Overrides};
use rand::{Rng, SeedableRng};

const BATCH: usize = 10_000;

fn random_ipv4(count: usize) -> Vec<IpAddr> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..count)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng.random::<u32>())))
        .collect()
}

fn lookups(c: &mut Criterion) {
    let databases = e2e::geo_databases::real_databases();
    let addresses = random_ipv4(BATCH);
    let mut group = c.benchmark_group("geolite2_city_random_ipv4");
    group.throughput(Throughput::Elements(BATCH as u64));

    let db = GeoDb::open(&databases.geolite2_city).expect("open GeoLite2");
    group.bench_function("GeoDb::lookup", |b| {
        b.iter(|| {
            for ip in &addresses {
                black_box(db.lookup(*ip).ok());
            }
        })
    });

    let locator = Locator::new(Overrides::new(), vec![db]);
    group.bench_function("Locator::locate", |b| {
        b.iter(|| {
            for ip in &addresses {
                black_box(locator.locate(*ip).ok());
            }
        })
    });

    let raw = maxminddb::Reader::open_readfile(&databases.geolite2_city).expect("open raw");
    group.bench_function("maxminddb tree walk only", |b| {
        b.iter(|| {
            for ip in &addresses {
                black_box(raw.lookup(*ip).map(|r| r.offset()).ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
