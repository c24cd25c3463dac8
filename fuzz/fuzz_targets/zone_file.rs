//! Zone files (RFC 1035 master format, through hickory's parser and our
//! checks): any text gives a zone or a clear error, never a panic; a zone
//! that builds answers for its apex SOA.
#![no_main]

use geodns::config::ZoneConfig;
use hickory_proto::rr::{LowerName, Name, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = geocdn_fuzz::scratch_dir();
    std::fs::write(dir.join("zone.db"), text).expect("scratch zone file");
    let config: ZoneConfig = toml::from_str("file = \"zone.db\"").expect("zone config");
    let geo = [("www".to_string(), 0)];
    if let Ok(zone) = geodns::zone::build_zone("fuzz.example", &config, dir, &geo) {
        let apex = LowerName::new(&Name::from_ascii("fuzz.example.").unwrap());
        let _ = zone.resolve(&apex, RecordType::SOA);
        let _ = zone.resolve(&apex, RecordType::ANY);
        let _ = zone.glue_for(zone.apex_ns());
        for set in zone.rrsets() {
            if let Some(record) = set.records.first() {
                let _ = zone.resolve(&LowerName::new(&record.name), set.record_type);
            }
        }
    }
});
