//! MaxMind databases damaged in any way: the input truncates and patches a
//! valid City-layout database (built once from a networks CSV). Opening it
//! gives a database or a clear error, and lookups give a result or an
//! error, never a panic or a hang.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const NETWORKS: &str = "\
192.0.2.0/24,52.3676,4.9041,NL,EU
198.51.100.0/24,40.7128,-74.0060,US,NA
203.0.113.0/25,35.6762,139.6503,JP,AS
2001:db8:1::/48,52.52,13.40,DE,EU
";

fn valid_database() -> &'static [u8] {
    static DATABASE: OnceLock<Vec<u8>> = OnceLock::new();
    DATABASE.get_or_init(|| {
        let dir = geocdn_fuzz::scratch_dir();
        let (csv, mmdb) = (dir.join("seed.csv"), dir.join("seed.mmdb"));
        std::fs::write(&csv, NETWORKS).expect("seed csv");
        geoip::build_from_csv(&csv, &mmdb).expect("seed database");
        std::fs::read(&mmdb).expect("seed database")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut database = valid_database().to_vec();
    // First two bytes: how much to cut from the end; then (offset, byte)
    // patches of three bytes each.
    let (cut, patches) = match data {
        [high, low, rest @ ..] => (usize::from(u16::from_be_bytes([*high, *low])), rest),
        _ => (0, data),
    };
    database.truncate(database.len().saturating_sub(cut));
    for patch in patches.chunks_exact(3) {
        if database.is_empty() {
            break;
        }
        let at = usize::from(u16::from_be_bytes([patch[0], patch[1]])) % database.len();
        database[at] = patch[2];
    }
    let path = geocdn_fuzz::scratch_dir().join("fuzz.mmdb");
    std::fs::write(&path, &database).expect("scratch database");
    let Ok(db) = geoip::GeoDb::open(&path) else {
        return;
    };
    for ip in [
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200)),
        IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2a00, 0, 0, 0, 0, 0, 0, 1)),
    ] {
        let _ = db.lookup(ip);
    }
});
