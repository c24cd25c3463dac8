//! DNS-01 answers (RFC 8555 section 8.4) for certificates the edges order:
//! the edge ordering publishes each `_acme-challenge.<name>` TXT value in
//! etcd, and every geodns following the cluster answers it while it is
//! there. So edges get certificates for names only geodns answers for,
//! wildcards included, with no DNS provider's API.
//!
//! Only names inside one of our zones are answered; the records carry a
//! short TTL (the CA queries authoritative servers directly) and are not
//! part of zone transfers or SOA serials: they live for the minute an
//! order takes.

use std::collections::HashMap;

use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{LowerName, Name, RData, Record};

use crate::cluster::ClusterView;

/// TTL of challenge answers.
const TTL: u32 = 10;

/// The TXT records of every published DNS-01 answer whose owner name
/// `in_our_zones`, by owner name.
pub fn challenge_records(
    view: &ClusterView,
    in_our_zones: impl Fn(&LowerName) -> bool,
) -> HashMap<LowerName, Vec<Record>> {
    let mut records: HashMap<LowerName, Vec<Record>> = HashMap::new();
    for (name, value) in view.dns_challenges.values() {
        let owner = match Name::from_ascii(format!("_acme-challenge.{name}.")) {
            Ok(owner) => owner,
            Err(error) => {
                tracing::warn!(name, %error, "ignoring a DNS-01 answer for an invalid name");
                continue;
            }
        };
        let lower = LowerName::new(&owner);
        if !in_our_zones(&lower) {
            tracing::debug!(name, "ignoring a DNS-01 answer outside our zones");
            continue;
        }
        records.entry(lower).or_default().push(Record::from_rdata(
            owner,
            TTL,
            RData::TXT(TXT::new(vec![value.clone()])),
        ));
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_inside_our_zones_become_txt_records() {
        let mut view = ClusterView::default();
        for (key, name, value) in [
            ("a", "cdn.test", "one"),
            ("b", "cdn.test", "two"),
            ("c", "elsewhere.example", "three"),
        ] {
            view.dns_challenges
                .insert(key.into(), (name.into(), value.into()));
        }
        let zone = LowerName::new(&Name::from_ascii("cdn.test.").unwrap());
        let records = challenge_records(&view, |owner| zone.zone_of(owner));
        assert_eq!(records.len(), 1);
        let owner = LowerName::new(&Name::from_ascii("_acme-challenge.CDN.test.").unwrap());
        assert_eq!(records[&owner].len(), 2);
    }
}
