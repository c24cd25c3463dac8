//! Building a [`Zone`] from its configuration section and zone file.

use std::collections::HashMap;
use std::path::Path;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

use sha2::{Digest, Sha256};

use super::{Node, RrSet, SerialSource, ServiceId, Zone};
use crate::config::ZoneConfig;

/// A zone that cannot be served, with the configuration key to blame.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ZoneError {
    /// Dotted key path, e.g. `zones."example.com".records[2]`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Builds the zone `apex` from `config`; `geo_names` are the (relative)
/// names of geo services in it. Relative paths resolve against `base_dir`.
pub fn build_zone(
    apex: &str,
    config: &ZoneConfig,
    base_dir: &Path,
    geo_names: &[(String, ServiceId)],
) -> Result<Zone, ZoneError> {
    let zone_key = format!("zones.\"{apex}\"");
    let error = |key: String, message: String| ZoneError { key, message };
    let origin = absolute_name(apex).map_err(|message| error(zone_key.clone(), message))?;
    let apex_lower = LowerName::new(&origin);
    let default_ttl = ttl_seconds(config.ttl.as_std());

    let mut records: Vec<(Record, String)> = Vec::new();
    let mut file_soa = None;
    if let Some(file) = &config.file {
        let path = base_dir.join(file);
        let key = format!("{zone_key}.file");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| error(key.clone(), format!("{}: {e}", path.display())))?;
        let parsed = Parser::new(text, Some(path.clone()), Some(origin.clone()))
            .parse()
            .map_err(|e| error(key.clone(), format!("{}: {e}", path.display())))?;
        for set in parsed.1.into_values() {
            for record in set.records_without_rrsigs() {
                if record.record_type() == RecordType::SOA {
                    file_soa = Some(record.clone());
                } else {
                    records.push((record.clone(), key.clone()));
                }
            }
        }
    }

    for (index, record) in config.records.iter().enumerate() {
        let key = format!("{zone_key}.records[{index}]");
        let ttl = record
            .ttl
            .map_or(default_ttl, |ttl| ttl_seconds(ttl.as_std()));
        let text = format!(
            "$ORIGIN {origin}\n{} {ttl} IN {} {}\n",
            record.name, record.record_type, record.value
        );
        let (_, sets) = Parser::new(text, None, Some(origin.clone()))
            .parse()
            .map_err(|e| {
                error(
                    key.clone(),
                    format!(
                        "invalid record: {} {} \"{}\": {e}",
                        record.name, record.record_type, record.value
                    ),
                )
            })?;
        for set in sets.into_values() {
            for parsed in set.records_without_rrsigs() {
                if parsed.record_type() == RecordType::SOA {
                    return Err(error(key, "give the SOA in the zone's soa key".into()));
                }
                records.push((parsed.clone(), key.clone()));
            }
        }
    }

    for (index, ns) in config.ns.iter().enumerate() {
        let key = format!("{zone_key}.ns[{index}]");
        let target = absolute_name(ns).map_err(|message| error(key.clone(), message))?;
        records.push((
            Record::from_rdata(
                origin.clone(),
                default_ttl,
                RData::NS(hickory_proto::rr::rdata::NS(target)),
            ),
            key,
        ));
    }

    let (soa, serial_source) = match (&config.soa, file_soa) {
        (Some(soa), _) => {
            let key = format!("{zone_key}.soa");
            let mname = absolute_name(&soa.mname).map_err(|m| error(format!("{key}.mname"), m))?;
            let rname = absolute_name(&soa.rname).map_err(|m| error(format!("{key}.rname"), m))?;
            let (serial, source) = match soa.serial {
                Some(serial) => (serial, SerialSource::Configured),
                // Replaced below, once the content is known.
                None => (0, SerialSource::Content),
            };
            let seconds = |d: shared::Duration| ttl_seconds(d.as_std());
            let record = Record::from_rdata(
                origin.clone(),
                seconds(soa.ttl),
                RData::SOA(SOA::new(
                    mname,
                    rname,
                    serial,
                    seconds(soa.refresh) as i32,
                    seconds(soa.retry) as i32,
                    seconds(soa.expire) as i32,
                    seconds(soa.minimum),
                )),
            );
            (record, source)
        }
        (None, Some(soa)) => (soa, SerialSource::Configured),
        (None, None) => {
            return Err(error(
                format!("{zone_key}.soa"),
                "every zone needs a start of authority: set soa = { mname, rname } or give a zone file with an SOA".into(),
            ));
        }
    };

    let mut nodes: HashMap<LowerName, Node> = HashMap::new();
    nodes.insert(apex_lower.clone(), Node::default());
    for (record, key) in records {
        let owner = LowerName::new(&record.name);
        if !apex_lower.zone_of(&owner) {
            return Err(error(
                key,
                format!("{} is outside the zone {origin}", record.name),
            ));
        }
        add_with_ancestors(&mut nodes, &apex_lower, &owner);
        let node = nodes.entry(owner).or_default();
        match node
            .rrsets
            .iter_mut()
            .find(|set| set.record_type == record.record_type())
        {
            Some(set) => {
                // One TTL per RRset (RFC 2181 section 5.2): keep the lowest.
                let ttl = set.records[0].ttl.min(record.ttl);
                if !set
                    .records
                    .iter()
                    .any(|existing| existing.data == record.data)
                {
                    set.records.push(record);
                }
                set.records.iter_mut().for_each(|r| r.ttl = ttl);
            }
            None => node.rrsets.push(RrSet {
                record_type: record.record_type(),
                records: vec![record],
            }),
        }
    }

    for (name, service) in geo_names {
        let owner = Name::parse(name, Some(&origin)).map_err(|e| {
            error(
                format!("services (name {name})"),
                format!("invalid name: {e}"),
            )
        })?;
        let owner = LowerName::new(&owner);
        if !apex_lower.zone_of(&owner) {
            return Err(error(
                format!("services (name {name})"),
                format!("outside the zone {origin}"),
            ));
        }
        add_with_ancestors(&mut nodes, &apex_lower, &owner);
        let node = nodes.entry(owner).or_default();
        if node.geo.is_some() {
            return Err(error(
                format!("services (name {name})"),
                "served by two services".into(),
            ));
        }
        node.geo = Some(*service);
    }

    let content_digest = digest_of(&soa, &nodes);
    let mut zone = Zone {
        origin,
        apex: apex_lower,
        soa,
        nodes,
        allow_transfer: config.allow_transfer.clone(),
        notify: config.notify.clone(),
        serial_source,
        content_digest,
    };
    if serial_source == SerialSource::Content
        && let RData::SOA(soa) = &mut zone.soa.data
    {
        soa.serial = serial_from_digest(content_digest);
    }
    check_consistency(&zone, &zone_key)?;
    Ok(zone)
}

/// A digest of what the zone serves apart from the SOA serial: every record
/// in presentation form, geo names, and the SOA's other fields, sorted so
/// that the order of the configuration does not matter.
fn digest_of(soa: &Record, nodes: &HashMap<LowerName, Node>) -> u64 {
    let mut lines: Vec<String> = nodes
        .iter()
        .flat_map(|(name, node)| {
            let records = node
                .rrsets
                .iter()
                .flat_map(|set| set.records.iter().map(|record| record.to_string()));
            let geo = node.geo.map(|_| format!("{name} GEO"));
            records.chain(geo)
        })
        .collect();
    let mut soa = soa.clone();
    if let RData::SOA(data) = &mut soa.data {
        data.serial = 0;
    }
    lines.push(soa.to_string());
    lines.sort_unstable();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The serial a zone with `digest` starts with: part of the digest, never 0
/// (which some tools read as "unset").
fn serial_from_digest(digest: u64) -> u32 {
    ((digest >> 32) as u32).max(1)
}

/// Rules that hold across records: CNAME stands alone (RFC 1034 section
/// 3.6.2), geo names take no static addresses, in-zone name servers have
/// addresses to serve as glue, and the apex has NS records.
fn check_consistency(zone: &Zone, zone_key: &str) -> Result<(), ZoneError> {
    let error = |message: String| ZoneError {
        key: zone_key.to_string(),
        message,
    };
    if zone.apex_ns().is_empty() {
        return Err(error(
            "no NS records at the apex: set ns = [\"ns1.example.com\", ...]".into(),
        ));
    }
    for (name, node) in &zone.nodes {
        let has_cname = node.rrset(RecordType::CNAME).is_some();
        if has_cname && (node.rrsets.len() > 1 || node.geo.is_some()) {
            return Err(error(format!("{name} has a CNAME and other data")));
        }
        if node.geo.is_some()
            && (node.rrset(RecordType::A).is_some() || node.rrset(RecordType::AAAA).is_some())
        {
            return Err(error(format!(
                "{name} is a geo name and also has static A/AAAA records"
            )));
        }
        for record in node
            .rrset(RecordType::NS)
            .map_or(&[][..], |set| &set.records)
        {
            let RData::NS(target) = &record.data else {
                continue;
            };
            let target = LowerName::new(&target.0);
            if !zone.apex.zone_of(&target) {
                continue;
            }
            let has_address = zone.nodes.get(&target).is_some_and(|target_node| {
                target_node.rrset(RecordType::A).is_some()
                    || target_node.rrset(RecordType::AAAA).is_some()
            });
            if !has_address {
                return Err(error(format!(
                    "name server {target} is inside the zone but has no A or AAAA record to serve as glue"
                )));
            }
        }
    }
    Ok(())
}

fn add_with_ancestors(nodes: &mut HashMap<LowerName, Node>, apex: &LowerName, owner: &LowerName) {
    let mut name = owner.base_name();
    while name != *apex && apex.zone_of(&name) {
        nodes.entry(name.clone()).or_default();
        name = name.base_name();
    }
}

/// Parses a name given in the config as absolute (the trailing dot is optional).
pub(crate) fn absolute_name(text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text).map_err(|e| format!("invalid name \"{text}\": {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

fn ttl_seconds(duration: std::time::Duration) -> u32 {
    u32::try_from(duration.as_secs())
        .unwrap_or(u32::MAX)
        .min(i32::MAX as u32)
}
