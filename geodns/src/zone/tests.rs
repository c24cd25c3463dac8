use std::path::Path;

use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::*;
use crate::config::ZoneConfig;

fn zone(extra: &str) -> Zone {
    let text = format!(
        r#"
        soa = {{ mname = "ns1.example.com", rname = "hostmaster.example.com", serial = 1, minimum = "45s" }}
        ns = ["ns1.example.com", "ns.other.net"]
        [[records]]
        name = "ns1"
        type = "A"
        value = "192.0.2.53"
        [[records]]
        name = "www"
        type = "A"
        value = "192.0.2.80"
        [[records]]
        name = "www"
        type = "TXT"
        value = "\"v=1\""
        [[records]]
        name = "alias"
        type = "CNAME"
        value = "www"
        [[records]]
        name = "*.wild"
        type = "A"
        value = "192.0.2.99"
        [[records]]
        name = "a.b.deep"
        type = "A"
        value = "192.0.2.7"
        [[records]]
        name = "sub"
        type = "NS"
        value = "ns.sub"
        [[records]]
        name = "ns.sub"
        type = "A"
        value = "192.0.2.54"
        {extra}
        "#
    );
    let config: ZoneConfig = toml::from_str(&text).unwrap();
    build_zone(
        "example.com",
        &config,
        Path::new("."),
        &[("geo".into(), 0), ("*.img".into(), 1)],
    )
    .unwrap()
}

fn error(extra: &str) -> String {
    let text = format!(
        "soa = {{ mname = \"ns1.example.com\", rname = \"h.example.com\" }}\nns = [\"ns.other.net\"]\n{extra}"
    );
    let config: ZoneConfig = toml::from_str(&text).unwrap();
    build_zone("example.com", &config, Path::new("."), &[])
        .unwrap_err()
        .to_string()
}

fn name(text: &str) -> LowerName {
    LowerName::new(&Name::from_ascii(text).unwrap())
}

#[test]
fn exact_records() {
    let zone = zone("");
    let Resolution::Records(records) = zone.resolve(&name("www.example.com."), RecordType::A)
    else {
        panic!("expected records");
    };
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data, RData::A("192.0.2.80".parse().unwrap()));
}

#[test]
fn missing_type_is_nodata_and_missing_name_is_nxdomain() {
    let zone = zone("");
    assert_eq!(
        zone.resolve(&name("www.example.com."), RecordType::MX),
        Resolution::NoData
    );
    assert_eq!(
        zone.resolve(&name("nope.example.com."), RecordType::A),
        Resolution::NxDomain
    );
}

#[test]
fn empty_non_terminal_is_nodata() {
    let zone = zone("");
    assert_eq!(
        zone.resolve(&name("b.deep.example.com."), RecordType::A),
        Resolution::NoData
    );
    assert_eq!(
        zone.resolve(&name("deep.example.com."), RecordType::A),
        Resolution::NoData
    );
}

#[test]
fn cname_is_returned_for_other_types() {
    let zone = zone("");
    assert!(matches!(
        zone.resolve(&name("alias.example.com."), RecordType::A),
        Resolution::Cname(_)
    ));
    assert!(matches!(
        zone.resolve(&name("alias.example.com."), RecordType::CNAME),
        Resolution::Records(_)
    ));
}

#[test]
fn wildcard_synthesises_the_query_name() {
    let zone = zone("");
    let Resolution::Records(records) = zone.resolve(&name("x.y.wild.example.com."), RecordType::A)
    else {
        panic!("expected synthesis");
    };
    assert_eq!(
        records[0].name,
        Name::from_ascii("x.y.wild.example.com.").unwrap()
    );
    // The wildcard does not cover the name that owns it.
    assert_eq!(
        zone.resolve(&name("wild.example.com."), RecordType::A),
        Resolution::NoData
    );
}

#[test]
fn geo_names_and_wildcard_geo_names() {
    let zone = zone("");
    assert_eq!(
        zone.resolve(&name("geo.example.com."), RecordType::A),
        Resolution::Geo(0)
    );
    assert_eq!(
        zone.resolve(&name("geo.example.com."), RecordType::AAAA),
        Resolution::Geo(0)
    );
    assert_eq!(
        zone.resolve(&name("geo.example.com."), RecordType::TXT),
        Resolution::NoData
    );
    assert_eq!(
        zone.resolve(&name("cat.img.example.com."), RecordType::A),
        Resolution::Geo(1)
    );
}

#[test]
fn delegation_refers_with_glue() {
    let zone = zone("");
    let Resolution::Referral { ns, glue } =
        zone.resolve(&name("host.sub.example.com."), RecordType::A)
    else {
        panic!("expected referral");
    };
    assert_eq!(ns.len(), 1);
    assert_eq!(glue.len(), 1);
}

#[test]
fn negative_soa_ttl_is_the_minimum() {
    let zone = zone("");
    assert_eq!(zone.negative_soa().ttl, 45);
}

#[test]
fn cname_with_other_data_is_rejected() {
    let message = error(
        "[[records]]\nname = \"x\"\ntype = \"CNAME\"\nvalue = \"y\"\n[[records]]\nname = \"x\"\ntype = \"A\"\nvalue = \"192.0.2.1\"\n",
    );
    assert!(message.contains("has a CNAME and other data"), "{message}");
}

#[test]
fn bad_record_names_its_index() {
    let message = error("[[records]]\nname = \"x\"\ntype = \"A\"\nvalue = \"not-an-address\"\n");
    assert!(
        message.starts_with("zones.\"example.com\".records[0]: invalid record"),
        "{message}"
    );
}

#[test]
fn record_outside_the_zone_is_rejected() {
    let message =
        error("[[records]]\nname = \"www.example.org.\"\ntype = \"A\"\nvalue = \"192.0.2.1\"\n");
    assert!(message.contains("outside the zone"), "{message}");
}

#[test]
fn in_zone_name_server_needs_glue() {
    let text = "soa = { mname = \"ns1.example.com\", rname = \"h.example.com\" }\nns = [\"ns1.example.com\"]\n";
    let config: ZoneConfig = toml::from_str(text).unwrap();
    let message = build_zone("example.com", &config, Path::new("."), &[])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("no A or AAAA record to serve as glue"),
        "{message}"
    );
}

#[test]
fn zone_without_soa_is_rejected() {
    let config: ZoneConfig = toml::from_str("ns = [\"ns.other.net\"]\n").unwrap();
    let message = build_zone("example.com", &config, Path::new("."), &[])
        .unwrap_err()
        .to_string();
    assert!(message.contains("needs a start of authority"), "{message}");
}

#[test]
fn zone_file_records_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("example.com.zone"),
        "$TTL 300\n@ IN SOA ns1.other.net. h.example.com. 5 3600 900 604800 30\n@ IN NS ns1.other.net.\nmail IN A 192.0.2.25\n@ IN MX 10 mail\n",
    )
    .unwrap();
    let config: ZoneConfig = toml::from_str("file = \"example.com.zone\"\n").unwrap();
    let zone = build_zone("example.com", &config, dir.path(), &[]).unwrap();
    assert!(matches!(
        zone.resolve(&name("example.com."), RecordType::MX),
        Resolution::Records(_)
    ));
    assert_eq!(zone.negative_soa().ttl, 30);
}
