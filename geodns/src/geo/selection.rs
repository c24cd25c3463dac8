//! Choosing the edges for one answer.
//!
//! Rank the healthy edges that have an address of the asked family by
//! great-circle distance from the client (plus each edge's bias), and take
//! the first `answers`. Rules can pin countries or continents to regions.
//! When the client cannot be located, the fallback decides. When no edge of
//! the family is healthy, the saturated edges that are up are used; when
//! none is up, every edge counts as healthy (fail open): a DNS server that
//! answers nothing turns a partial outage into a total one.

use geoip::{Location, great_circle_km};
use serde::Serialize;

use super::service::{Edge, Service};
use crate::config::Fallback;

/// Address family of the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Family {
    /// A records.
    V4,
    /// AAAA records.
    V6,
}

/// Why these edges were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Nearest healthy edges.
    Nearest,
    /// A rule pinned the client's country or continent to regions.
    Rule,
    /// Client location unknown: the configured fallback.
    Fallback,
    /// No edge was healthy: all were treated as up.
    FailOpen,
}

/// The chosen edges (indices into `Service::edges`), best first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selection {
    /// Chosen edges, best first.
    pub edges: Vec<usize>,
    /// Why.
    pub reason: Reason,
}

fn has_family(edge: &Edge, family: Family) -> bool {
    match family {
        Family::V4 => !edge.ipv4.is_empty(),
        Family::V6 => !edge.ipv6.is_empty(),
    }
}

/// Picks the edges of `service` for a client at `location`.
pub fn select(service: &Service, location: Option<&Location>, family: Family) -> Selection {
    let with_family: Vec<usize> = (0..service.edges.len())
        .filter(|&index| has_family(&service.edges[index], family))
        .collect();
    let healthy: Vec<usize> = with_family
        .iter()
        .copied()
        .filter(|&index| service.edges[index].is_up())
        .collect();
    // Every edge saturated: the ones that serve still beat failing open.
    let healthy = if healthy.is_empty() {
        with_family
            .iter()
            .copied()
            .filter(|&index| service.edges[index].is_serving())
            .collect()
    } else {
        healthy
    };
    // A family no edge has (AAAA for an IPv4-only service) is a plain
    // NODATA, not an outage.
    let (pool, fail_open) = if healthy.is_empty() {
        let fail_open = !with_family.is_empty();
        (with_family, fail_open)
    } else {
        (healthy, false)
    };
    let finish = |mut edges: Vec<usize>, reason: Reason| {
        edges.truncate(service.answers.max(1));
        Selection {
            edges,
            reason: if fail_open { Reason::FailOpen } else { reason },
        }
    };

    let Some(location) = location else {
        let preferred: Vec<usize> = match &service.fallback {
            Fallback::Region(region) => pool
                .iter()
                .copied()
                .filter(|&index| &service.edges[index].region == region)
                .collect(),
            Fallback::Weighted => Vec::new(),
        };
        let mut ranked = if preferred.is_empty() {
            pool
        } else {
            preferred
        };
        ranked.sort_by(|&a, &b| by_weight(service, a, b));
        return finish(ranked, Reason::Fallback);
    };

    if let Some(rule) = matching_rule(service, location).map(|index| &service.rules[index]) {
        let pinned: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&index| rule.regions.contains(&service.edges[index].region))
            .collect();
        if !pinned.is_empty() {
            return finish(rank_by_distance(service, location, pinned), Reason::Rule);
        }
    }
    finish(rank_by_distance(service, location, pool), Reason::Nearest)
}

/// The index of the first rule of `service` that matches a client at
/// `location` (by country or continent).
pub fn matching_rule(service: &Service, location: &Location) -> Option<usize> {
    service.rules.iter().position(|rule| {
        location
            .country
            .is_some_and(|country| rule.countries.contains(&country))
            || location
                .continent
                .is_some_and(|continent| rule.continents.contains(&continent))
    })
}

/// The effective distance used for ranking: great-circle plus bias.
pub fn effective_km(edge: &Edge, location: &Location) -> f64 {
    great_circle_km(location.coordinates, edge.location) + edge.bias_km
}

fn rank_by_distance(service: &Service, location: &Location, mut edges: Vec<usize>) -> Vec<usize> {
    let distance: Vec<f64> = service
        .edges
        .iter()
        .map(|edge| effective_km(edge, location))
        .collect();
    edges.sort_by(|&a, &b| {
        distance[a]
            .total_cmp(&distance[b])
            .then_with(|| by_weight(service, a, b))
    });
    edges
}

fn by_weight(service: &Service, a: usize, b: usize) -> std::cmp::Ordering {
    let (edge_a, edge_b) = (&service.edges[a], &service.edges[b]);
    edge_b
        .weight
        .cmp(&edge_a.weight)
        .then_with(|| edge_a.name.cmp(&edge_b.name))
}

#[cfg(test)]
mod tests;
