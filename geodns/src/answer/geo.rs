//! Deciding a geo answer: locate the client, pick edges, find the scope.
//!
//! Shared by the query path and by `explain`, so that what an operator is
//! shown is what clients get.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use geoip::Located;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record};

use shared::log_limit::LogLimiter;

use crate::geo::{Family, ScopeKey, Selection, alias, select};
use crate::snapshot::Snapshot;
use crate::zone::ServiceId;

/// Failed lookups (a damaged database) are logged once per ten seconds:
/// every query would otherwise write a line.
static LOOKUP_FAILED: LazyLock<LogLimiter> =
    LazyLock::new(|| LogLimiter::new(Duration::from_secs(10)));

/// Everything a geo answer depends on.
#[derive(Debug, Clone)]
pub struct GeoDecision {
    /// Where the client was placed (`None` when the lookup failed outright).
    pub located: Option<Located>,
    /// The chosen edges.
    pub selection: Selection,
    /// The widest prefix over which the same edges are chosen.
    pub scope: u8,
}

/// Decides the answer of `service_id` for a client at `client`.
///
/// Clients in IPv6 ranges that embed an IPv4 address are located by that
/// address, and their scope is given back in IPv6 terms (see
/// [`crate::geo::alias`]): the scope is always in the family of `client`.
pub fn decide(
    snapshot: &Snapshot,
    service_id: ServiceId,
    family: Family,
    client: IpAddr,
    epoch: u64,
) -> Option<GeoDecision> {
    let service = snapshot.services.get(service_id)?;
    let (lookup, alias) = alias::lookup_address(client);
    let located = match snapshot.locator.locate(lookup) {
        Ok(located) => Some(located),
        Err(error) => {
            if let Some(left_out) = LOOKUP_FAILED.admit() {
                tracing::warn!(%client, %error, left_out, "geoip lookup failed; using the fallback");
            }
            None
        }
    };
    let location = located.as_ref().and_then(|found| found.location.as_ref());
    let selection = select(service, location, family);
    let scope = match &located {
        Some(found) => snapshot
            .scope
            .merged_block(
                &snapshot.locator,
                service,
                ScopeKey {
                    service_id,
                    family,
                    epoch,
                },
                found,
                &selection.edges,
            )
            .prefix_len(),
        None => 0,
    };
    let scope = match alias {
        Some(alias) => alias.v6_scope(scope),
        None => scope,
    };
    Some(GeoDecision {
        located,
        selection,
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
