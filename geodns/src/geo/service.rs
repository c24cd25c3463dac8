//! A geo service as queries see it: resolved edges with coordinates and
//! live health.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use geoip::{Continent, Coordinates, CountryCode};

use crate::config::{Fallback, HealthConfig};
use crate::health::EdgeHealth;

/// One edge of a service.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Unique within the service.
    pub name: String,
    /// Region, for rules and fallback.
    pub region: String,
    /// Where it is (configured, or located by its address).
    pub location: Coordinates,
    /// A answers.
    pub ipv4: Vec<Ipv4Addr>,
    /// AAAA answers.
    pub ipv6: Vec<Ipv6Addr>,
    /// Preference among equals and for the fallback.
    pub weight: u32,
    /// Added to this edge's distance when ranking.
    pub bias_km: f64,
    /// Live health, shared with the checker; `None` when the edge is not checked.
    pub health: Option<Arc<EdgeHealth>>,
    /// Drained by an operator (`geodns ctl drain`) or by the edge's own
    /// announcement: no new clients whatever the health checks say.
    pub drained: bool,
    /// Announced through etcd rather than configured.
    pub announced: bool,
}

impl Edge {
    /// Whether answers may send new clients here.
    pub fn is_up(&self) -> bool {
        !self.drained
            && self
                .health
                .as_ref()
                .is_none_or(|health| health.accepts_new_clients())
    }

    /// Whether it is up, saturated or not: the pool when every edge is
    /// saturated, before failing open to edges that are down.
    pub fn is_serving(&self) -> bool {
        !self.drained
            && self
                .health
                .as_ref()
                .is_none_or(|health| health.is_serving())
    }
}

/// Clients matching `countries` or `continents` go to `regions` first.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Client countries matched.
    pub countries: Vec<CountryCode>,
    /// Client continents matched.
    pub continents: Vec<Continent>,
    /// Regions preferred for them.
    pub regions: Vec<String>,
}

/// A geo-balanced service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its name in the config.
    pub name: String,
    /// Answer TTL in seconds.
    pub ttl: u32,
    /// Edges per answer.
    pub answers: usize,
    /// Answer for unlocated clients.
    pub fallback: Fallback,
    /// The edges.
    pub edges: Vec<Edge>,
    /// Placement rules, first match wins.
    pub rules: Vec<Rule>,
    /// How its edges are checked.
    pub health: HealthConfig,
}
