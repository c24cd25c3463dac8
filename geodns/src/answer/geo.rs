//! Deciding a geo answer: the client's entry in the answer map, in the
//! family it asked in.
//!
//! Shared by the query path and by `explain`, so that what an operator is
//! shown is what clients get.

use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record};

use crate::geo::{AnswerMap, Family, Selection, alias};
use crate::snapshot::Snapshot;
use crate::zone::ServiceId;

/// Everything a geo answer depends on.
#[derive(Debug, Clone)]
pub struct GeoDecision {
    /// The chosen edges.
    pub selection: Selection,
    /// The widest prefix over which the same edges are chosen.
    pub scope: u8,
}

/// Decides the answer of `service_id` for a client at `client`, from the
/// precomputed `answers` (see [`crate::geo::GeoMaps`]).
///
/// Clients in IPv6 ranges that embed an IPv4 address are answered as that
/// address, and their scope is given back in IPv6 terms (see
/// [`crate::geo::alias`]): the scope is always in the family of `client`.
pub fn decide(
    answers: &AnswerMap,
    service_id: ServiceId,
    family: Family,
    client: IpAddr,
) -> Option<GeoDecision> {
    let (lookup, alias) = alias::lookup_address(client);
    let (selection, scope) = answers.lookup(service_id, family, lookup)?;
    let scope = match alias {
        Some(alias) => alias.v6_scope(scope),
        None => scope,
    };
    Some(GeoDecision {
        selection: selection.clone(),
        scope,
    })
}

/// The A or AAAA records of the chosen edges, owned by `owner`.
pub fn records(
    snapshot: &Snapshot,
    service_id: ServiceId,
    family: Family,
    selection: &Selection,
    owner: &Name,
) -> Vec<Record> {
    let Some(service) = snapshot.services.get(service_id) else {
        return Vec::new();
    };
    selection
        .edges
        .iter()
        .filter_map(|&index| service.edges.get(index))
        .flat_map(|edge| -> Vec<RData> {
            match family {
                Family::V4 => edge.ipv4.iter().map(|ip| RData::A(A(*ip))).collect(),
                Family::V6 => edge.ipv6.iter().map(|ip| RData::AAAA(AAAA(*ip))).collect(),
            }
        })
        .map(|data| Record::from_rdata(owner.clone(), service.ttl, data))
        .collect()
}
