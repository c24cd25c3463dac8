//! Why a client gets the answer it gets: the document behind
//! `geodns explain` and the admin `/explain` route.

use std::net::IpAddr;

use geoip::{Location, Source};
use ipnet::IpNet;
use serde::Serialize;
use shared::EdgeStatus;

use crate::answer::decide;
use crate::geo::{Family, Reason};
use crate::snapshot::Snapshot;

/// The explanation for one client address.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The address explained.
    pub client: IpAddr,
    /// Where it was placed; `None` when unknown.
    pub location: Option<Location>,
    /// The network that decided the location.
    pub network: Option<IpNet>,
    /// Which source decided.
    pub source: Option<Source>,
    /// One entry per geo service.
    pub services: Vec<ServiceExplanation>,
}

/// One service's decision.
#[derive(Debug, Serialize)]
pub struct ServiceExplanation {
    /// Service name.
    pub service: String,
    /// Names it answers, relative to its zone.
    pub names: Vec<String>,
    /// Per family.
    pub answers: Vec<FamilyExplanation>,
    /// Every edge with its distance and health.
    pub edges: Vec<EdgeExplanation>,
}

/// The answer for A or AAAA.
#[derive(Debug, Serialize)]
pub struct FamilyExplanation {
    /// `V4` (A) or `V6` (AAAA).
    pub family: Family,
    /// Chosen edges, best first.
    pub chosen: Vec<String>,
    /// Why.
    pub reason: Reason,
    /// The ECS scope prefix a resolver would get.
    pub scope: u8,
}

/// One edge seen from the client.
#[derive(Debug, Serialize)]
pub struct EdgeExplanation {
    /// Edge name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Great-circle distance in km, when the client is located.
    pub distance_km: Option<f64>,
    /// Distance plus bias, as ranked.
    pub ranked_km: Option<f64>,
    /// Health state (`up` when not checked).
    pub status: EdgeStatus,
    /// Last health-check error, if any.
    pub error: Option<String>,
    /// Drained by an operator through etcd (no new clients whatever the health).
    pub drained: bool,
    /// Announced through etcd rather than configured.
    pub announced: bool,
}

/// Explains `client` against every service of `snapshot`.
pub fn explain(snapshot: &Snapshot, client: IpAddr, epoch: u64) -> Explanation {
    let (lookup, _) = crate::geo::alias::lookup_address(client);
    let located = snapshot.places.table.locate(lookup);
    let location = located.location;
    let answers = snapshot.geo.answers(&snapshot.services, epoch);
    let services = snapshot
        .services
        .iter()
        .enumerate()
        .map(|(id, service)| {
            let answers = [Family::V4, Family::V6]
                .into_iter()
                .filter_map(|family| {
                    let decision = decide(&answers, id, family, client)?;
                    if decision.selection.edges.is_empty() {
                        return None;
                    }
                    Some(FamilyExplanation {
                        family,
                        chosen: decision
                            .selection
                            .edges
                            .iter()
                            .filter_map(|&index| service.edges.get(index))
                            .map(|edge| edge.name.clone())
                            .collect(),
                        reason: decision.selection.reason,
                        scope: decision.scope,
                    })
                })
                .collect();
            let edges = service
                .edges
                .iter()
                .map(|edge| EdgeExplanation {
                    name: edge.name.clone(),
                    region: edge.region.clone(),
                    distance_km: location.map(|found| {
                        round_km(geoip::great_circle_km(found.coordinates, edge.location))
                    }),
                    ranked_km: location
                        .map(|found| round_km(crate::geo::effective_km(edge, &found))),
                    status: edge
                        .health
                        .as_ref()
                        .map_or(EdgeStatus::Up, |health| health.status()),
                    error: edge
                        .health
                        .as_ref()
                        .and_then(|health| health.last_check().error),
                    drained: edge.drained,
                    announced: edge.announced,
                })
                .collect();
            ServiceExplanation {
                service: service.name.clone(),
                names: snapshot
                    .config
                    .services
                    .get(&service.name)
                    .map(|config| config.names.clone())
                    .unwrap_or_default(),
                answers,
                edges,
            }
        })
        .collect();
    Explanation {
        client,
        location,
        network: Some(located.network),
        source: Some(located.source),
        services,
    }
}

fn round_km(km: f64) -> f64 {
    (km * 10.0).round() / 10.0
}

impl Explanation {
    /// Human-readable rendering.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "client    {}", self.client);
        match &self.location {
            Some(location) => {
                let _ = write!(out, "location  {}", location.coordinates);
                if let Some(country) = location.country {
                    let _ = write!(out, " ({country}");
                    if let Some(continent) = location.continent {
                        let _ = write!(out, ", {continent}");
                    }
                    let _ = write!(out, ")");
                }
                let _ = writeln!(out);
            }
            None => {
                let _ = writeln!(out, "location  unknown");
            }
        }
        if let Some(network) = self.network {
            let _ = writeln!(out, "network   {network}");
        }
        for service in &self.services {
            let _ = writeln!(
                out,
                "\nservice {} ({})",
                service.service,
                service.names.join(", ")
            );
            for edge in &service.edges {
                let distance = edge
                    .ranked_km
                    .map_or_else(|| "-".to_string(), |km| format!("{km:.0} km"));
                let mut error = edge
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                if edge.drained {
                    error.push_str(" drained by an operator");
                }
                if edge.announced {
                    error.push_str(" [announced]");
                }
                let _ = writeln!(
                    out,
                    "  {:<16} {:<8} {:>10}  {}{}",
                    edge.name, edge.region, distance, edge.status, error
                );
            }
            for answer in &service.answers {
                let kind = match answer.family {
                    Family::V4 => "A",
                    Family::V6 => "AAAA",
                };
                let _ = writeln!(
                    out,
                    "  answer {kind:<4} -> {} ({:?}, ECS scope /{})",
                    answer.chosen.join(", "),
                    answer.reason,
                    answer.scope
                );
            }
        }
        out
    }
}
