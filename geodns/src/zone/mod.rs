//! Authoritative zone data and the name lookup of RFC 1034 section 4.3.2.
//!
//! A zone is a map from owner name to node. Every ancestor of an owner name
//! up to the apex exists as a node too (possibly empty), so that an empty
//! non-terminal answers NODATA rather than NXDOMAIN (RFC 8020). Nodes hold
//! static RRsets and, for geo names, the service that answers A and AAAA.

mod build;

use std::collections::HashMap;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

pub use build::{ZoneError, build_zone};

/// Index of a geo service in the snapshot.
pub type ServiceId = usize;

/// One RRset: all records of one type at one name.
#[derive(Debug, Clone)]
pub struct RrSet {
    /// The type of every record in it.
    pub record_type: RecordType,
    /// The records (same name, type and TTL).
    pub records: Vec<Record>,
}

/// What lives at one owner name.
#[derive(Debug, Clone, Default)]
pub struct Node {
    rrsets: Vec<RrSet>,
    geo: Option<ServiceId>,
}

impl Node {
    fn rrset(&self, record_type: RecordType) -> Option<&RrSet> {
        self.rrsets
            .iter()
            .find(|set| set.record_type == record_type)
    }

    fn has_data(&self) -> bool {
        !self.rrsets.is_empty() || self.geo.is_some()
    }
}

/// A zone we are authoritative for.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    apex: LowerName,
    soa: Record,
    nodes: HashMap<LowerName, Node>,
    allow_transfer: Vec<ipnet::IpNet>,
    notify: Vec<std::net::SocketAddr>,
    serial_source: SerialSource,
    content_digest: u64,
}

/// Where a zone's SOA serial came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialSource {
    /// Set by the operator (`soa.serial` or the zone file's SOA).
    Configured,
    /// Derived from the zone's content: the same on every server given the
    /// same configuration, and moved forward on a reload that changes it.
    Content,
}

/// The outcome of looking a name up in a zone.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution<'z> {
    /// Records of the asked type (owner names already set to the query name
    /// for wildcard matches).
    Records(Vec<Record>),
    /// An alias: answer it and continue at its target.
    Cname(Box<Record>),
    /// A geo name: the service picks the addresses.
    Geo(ServiceId),
    /// The name exists but has no data of this type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// The name is below a zone cut: refer to the child's name servers.
    Referral {
        /// NS RRset at the cut.
        ns: &'z [Record],
        /// Addresses of in-zone name servers.
        glue: Vec<Record>,
    },
}

impl Zone {
    /// The apex name as configured.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The apex name, lowercased, for comparisons.
    pub fn apex(&self) -> &LowerName {
        &self.apex
    }

    /// The SOA record.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        }
    }

    /// Secondaries to send NOTIFY to when the serial changes.
    pub fn notify_targets(&self) -> &[std::net::SocketAddr] {
        &self.notify
    }

    /// Where the serial came from.
    pub fn serial_source(&self) -> SerialSource {
        self.serial_source
    }

    /// A digest of everything the zone serves but the serial: equal digests
    /// mean equal content.
    pub fn content_digest(&self) -> u64 {
        self.content_digest
    }

    /// Carries a content-derived serial forward from `previous`, the same
    /// zone as it was before a reload: unchanged content keeps its serial,
    /// and changed content gets a serial greater than the old one in serial
    /// number arithmetic (RFC 1982) even when its digest-derived value is
    /// not, so that secondaries see the change.
    pub fn follow_serial(&mut self, previous: &Zone) {
        if self.serial_source != SerialSource::Content
            || previous.serial_source != SerialSource::Content
        {
            return;
        }
        let old = previous.serial();
        let serial = if self.content_digest == previous.content_digest {
            old
        } else if serial_greater(self.serial(), old) {
            self.serial()
        } else {
            old.wrapping_add(1)
        };
        if let RData::SOA(soa) = &mut self.soa.data {
            soa.serial = serial;
        }
    }

    /// The SOA record as it goes in the authority section of negative
    /// answers: its TTL is the lesser of its own and its MINIMUM field
    /// (RFC 2308 section 3).
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &self.soa.data {
            soa.ttl = soa.ttl.min(data.minimum);
        }
        soa
    }

    /// The NS RRset at the apex.
    pub fn apex_ns(&self) -> &[Record] {
        self.nodes
            .get(&self.apex)
            .and_then(|node| node.rrset(RecordType::NS))
            .map_or(&[], |set| set.records.as_slice())
    }

    /// Whether `client` may transfer this zone.
    pub fn transfer_allowed(&self, client: std::net::IpAddr) -> bool {
        let client = client.to_canonical();
        self.allow_transfer.iter().any(|net| net.contains(&client))
    }

    /// Every RRset, for transfers and `/status`.
    pub fn rrsets(&self) -> impl Iterator<Item = &RrSet> {
        self.nodes.values().flat_map(|node| node.rrsets.iter())
    }

    /// Geo names and their services.
    pub fn geo_names(&self) -> impl Iterator<Item = (&LowerName, ServiceId)> {
        self.nodes
            .iter()
            .filter_map(|(name, node)| node.geo.map(|service| (name, service)))
    }

    /// Addresses of the in-zone name servers among `ns`: the glue that goes
    /// in the additional section of NS answers and referrals.
    pub fn glue_for(&self, ns: &[Record]) -> Vec<Record> {
        ns.iter()
            .filter_map(|record| match &record.data {
                RData::NS(target) => Some(LowerName::new(&target.0)),
                _ => None,
            })
            .filter_map(|target| self.nodes.get(&target))
            .flat_map(|node| {
                [RecordType::A, RecordType::AAAA]
                    .into_iter()
                    .filter_map(|kind| node.rrset(kind))
                    .flat_map(|set| set.records.iter().cloned())
            })
            .collect()
    }

    /// Looks `qname` (which must be at or below the apex) up for `qtype`.
    pub fn resolve(&self, qname: &LowerName, qtype: RecordType) -> Resolution<'_> {
        if qname == &self.apex && qtype == RecordType::SOA {
            return Resolution::Records(vec![self.soa.clone()]);
        }
        if let Some(referral) = self.zone_cut_above(qname, qtype) {
            return referral;
        }
        if let Some(node) = self.nodes.get(qname) {
            return self.answer_from(node, qtype, None);
        }
        // RFC 4592: find the closest encloser and try its wildcard child.
        let mut encloser = qname.base_name();
        while !self.nodes.contains_key(&encloser)
            && self.apex.zone_of(&encloser)
            && !encloser.is_root()
        {
            encloser = encloser.base_name();
        }
        let Ok(wildcard) = Name::from(encloser).prepend_label("*") else {
            return Resolution::NxDomain;
        };
        match self.nodes.get(&LowerName::new(&wildcard)) {
            Some(node) if node.has_data() => self.answer_from(node, qtype, Some(qname)),
            _ => Resolution::NxDomain,
        }
    }

    /// A delegation between the apex and `qname` (or at `qname` itself for
    /// any type but DS, which the parent answers).
    fn zone_cut_above(&self, qname: &LowerName, qtype: RecordType) -> Option<Resolution<'_>> {
        let mut cut = None;
        let mut name = qname.clone();
        while name != self.apex && self.apex.zone_of(&name) {
            let is_qname = &name == qname;
            if let Some(ns) = self
                .nodes
                .get(&name)
                .and_then(|node| node.rrset(RecordType::NS))
                && !(is_qname && qtype == RecordType::DS)
            {
                // Keep going up: the highest cut wins.
                cut = Some(ns);
            }
            name = name.base_name();
        }
        let ns = cut?;
        let glue = self.glue_for(&ns.records);
        Some(Resolution::Referral {
            ns: &ns.records,
            glue,
        })
    }

    fn answer_from(
        &self,
        node: &Node,
        qtype: RecordType,
        synthesise_as: Option<&LowerName>,
    ) -> Resolution<'_> {
        let owned = |records: &[Record]| -> Vec<Record> {
            match synthesise_as {
                None => records.to_vec(),
                Some(owner) => records
                    .iter()
                    .map(|record| {
                        let mut record = record.clone();
                        record.name = Name::from(owner.clone());
                        record
                    })
                    .collect(),
            }
        };
        if let Some(service) = node.geo
            && matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::ANY)
        {
            return Resolution::Geo(service);
        }
        if qtype == RecordType::ANY {
            // RFC 8482 section 4.1: answer with one RRset rather than all.
            return match node.rrsets.first() {
                Some(set) => Resolution::Records(owned(&set.records)),
                None => Resolution::NoData,
            };
        }
        if let Some(set) = node.rrset(qtype) {
            return Resolution::Records(owned(&set.records));
        }
        if let Some(alias) = node
            .rrset(RecordType::CNAME)
            .and_then(|set| set.records.first())
        {
            return Resolution::Cname(Box::new(owned(std::slice::from_ref(alias)).remove(0)));
        }
        Resolution::NoData
    }
}

/// `a > b` in serial number arithmetic (RFC 1982 section 3.2).
pub fn serial_greater(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

#[cfg(test)]
mod tests;
