//! Networks CSV (overrides and database building): any text gives rows or
//! an error that names the line, never a panic; rows that parse make an
//! override table that answers lookups.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rows) = geoip::parse_network_csv(Path::new("fuzz.csv"), data) else {
        return;
    };
    if let Ok(overrides) = geoip::Overrides::from_rows(rows) {
        let locator = geoip::Locator::new(overrides, Vec::new());
        for ip in [
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201)),
        ] {
            let _ = locator.locate(ip);
        }
    }
});
