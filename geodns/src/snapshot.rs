//! Everything a query needs, immutable, behind one `ArcSwap`.
//!
//! A reload builds a whole new snapshot off the query path and swaps it in
//! atomically; a reload that fails validation publishes nothing. Health
//! states are not part of it: they change every few seconds and live in
//! shared atomics that the snapshot's edges point to.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use geoip::Locator;
use hickory_proto::rr::LowerName;

use crate::config::{Config, EdgeConfig, Fallback, HealthConfig, ServiceConfig};
use crate::geo::{Edge, Rule, ScopeFinder, Service};
use crate::health::HealthTable;
use crate::metrics::{DnsMetrics, ServiceCounters};
use crate::zone::{ServiceId, Zone, build_zone};

/// The state queries read.
#[derive(Debug)]
pub struct Snapshot {
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    /// The configuration it was built from.
    pub config: Config,
    /// Zones, in config order.
    pub zones: Vec<Zone>,
    zone_index: HashMap<LowerName, usize>,
    /// Geo services, indexed by [`ServiceId`].
    pub services: Vec<Service>,
    /// Counters per service, same index.
    pub counters: Vec<ServiceCounters>,
    /// Geolocation.
    pub locator: Locator,
    /// ECS scope memo.
    pub scope: ScopeFinder,
    /// When it was built.
    pub loaded_at: SystemTime,
}

impl Snapshot {
    /// Loads `path` and builds a snapshot from it.
    pub fn load(path: &Path, health: &HealthTable, metrics: &DnsMetrics) -> anyhow::Result<Self> {
        let config: Config = shared::config::load(path)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let mut snapshot = Self::build(config, base_dir, health, metrics)
            .with_context(|| format!("{}", path.display()))?;
        snapshot.source = Some(path.to_path_buf());
        Ok(snapshot)
    }

    /// Validates `config` and builds the snapshot; relative paths in it are
    /// taken from `base_dir`.
    pub fn build(
        config: Config,
        base_dir: &Path,
        health: &HealthTable,
        metrics: &DnsMetrics,
    ) -> anyhow::Result<Self> {
        let locator = crate::sources::open_locator(&config.geoip, base_dir)?;
        if locator.databases().is_empty()
            && locator.overrides().is_empty()
            && !config.services.is_empty()
        {
            tracing::warn!(
                "no geoip databases or overrides configured: every client gets the fallback answer"
            );
        }
        let mut services = Vec::new();
        let mut counters = Vec::new();
        let mut geo_names: HashMap<&str, Vec<(String, ServiceId)>> = HashMap::new();
        for (name, service) in &config.services {
            let key = format!("services.{name}");
            if !config.zones.contains_key(&service.zone) {
                bail!("{key}.zone: no zone \"{}\" is configured", service.zone);
            }
            let id = services.len();
            for owner in &service.names {
                geo_names
                    .entry(service.zone.as_str())
                    .or_default()
                    .push((owner.clone(), id));
            }
            let built = build_service(name, service, &config.health, &locator, health, &key)?;
            let edge_names: Vec<String> =
                built.edges.iter().map(|edge| edge.name.clone()).collect();
            counters.push(metrics.service_counters(name, &edge_names));
            services.push(built);
        }
        let mut zones = Vec::new();
        let mut zone_index = HashMap::new();
        for (apex, zone_config) in &config.zones {
            let names = geo_names.get(apex.as_str()).map_or(&[][..], Vec::as_slice);
            let zone = build_zone(apex, zone_config, base_dir, names)?;
            if zone_index
                .insert(zone.apex().clone(), zones.len())
                .is_some()
            {
                bail!("zones.\"{apex}\": configured twice");
            }
            zones.push(zone);
        }
        Ok(Self {
            source: None,
            config,
            zones,
            zone_index,
            services,
            counters,
            locator,
            scope: ScopeFinder::default(),
            loaded_at: SystemTime::now(),
        })
    }

    /// The zone that holds `qname`: the one with the longest matching apex.
    pub fn find_zone(&self, qname: &LowerName) -> Option<&Zone> {
        let mut name = qname.clone();
        loop {
            if let Some(index) = self.zone_index.get(&name) {
                return self.zones.get(*index);
            }
            if name.is_root() {
                return None;
            }
            name = name.base_name();
        }
    }

    /// Health URLs of every edge with the settings to check them with.
    pub fn health_checks(&self) -> HashMap<String, HealthConfig> {
        let mut checks = HashMap::new();
        for service in &self.services {
            for edge in &service.edges {
                if let Some(health) = &edge.health {
                    checks
                        .entry(health.url().to_string())
                        .or_insert(service.health);
                }
            }
        }
        checks
    }
}

fn build_service(
    name: &str,
    config: &ServiceConfig,
    defaults: &HealthConfig,
    locator: &Locator,
    health: &HealthTable,
    key: &str,
) -> anyhow::Result<Service> {
    if config.names.is_empty() {
        bail!("{key}.names: a service needs at least one name");
    }
    if config.edges.is_empty() {
        bail!("{key}.edges: a service needs at least one edge");
    }
    if config.answers == 0 {
        bail!("{key}.answers: must be at least 1");
    }
    let mut seen = BTreeSet::new();
    let mut edges = Vec::new();
    for (index, edge) in config.edges.iter().enumerate() {
        let edge_key = format!("{key}.edges[{index}]");
        if !seen.insert(edge.name.as_str()) {
            bail!("{edge_key}.name: edge \"{}\" appears twice", edge.name);
        }
        edges.push(build_edge(edge, locator, health, &edge_key)?);
    }
    let regions: BTreeSet<&str> = edges.iter().map(|edge| edge.region.as_str()).collect();
    if let Fallback::Region(region) = &config.fallback
        && !regions.contains(region.as_str())
    {
        bail!("{key}.fallback: no edge is in region \"{region}\"");
    }
    let mut rules = Vec::new();
    for (index, rule) in config.rules.iter().enumerate() {
        if let Some(missing) = rule
            .regions
            .iter()
            .find(|region| !regions.contains(region.as_str()))
        {
            bail!("{key}.rules[{index}].regions: no edge is in region \"{missing}\"");
        }
        if rule.countries.is_empty() && rule.continents.is_empty() {
            bail!("{key}.rules[{index}]: give countries or continents to match");
        }
        rules.push(Rule {
            countries: rule.countries.clone(),
            continents: rule.continents.clone(),
            regions: rule.regions.clone(),
        });
    }
    Ok(Service {
        name: name.to_string(),
        ttl: u32::try_from(config.ttl.as_std().as_secs()).unwrap_or(u32::MAX),
        answers: config.answers,
        fallback: config.fallback.clone(),
        edges,
        rules,
        health: config.health.unwrap_or(*defaults),
    })
}

fn build_edge(
    config: &EdgeConfig,
    locator: &Locator,
    health: &HealthTable,
    key: &str,
) -> anyhow::Result<Edge> {
    let first_address: Option<IpAddr> = config
        .ipv4
        .first()
        .map(|ip| IpAddr::V4(*ip))
        .or_else(|| config.ipv6.first().map(|ip| IpAddr::V6(*ip)));
    let Some(address) = first_address else {
        bail!("{key}: an edge needs at least one address in ipv4 or ipv6");
    };
    let location = match config.location {
        Some(location) => location,
        None => match locator
            .locate(address)
            .ok()
            .and_then(|found| found.location)
        {
            Some(found) => found.coordinates,
            None => bail!(
                "{key}.location: not given, and {address} cannot be located in the geoip sources; \
                 set location = {{ latitude = ..., longitude = ... }}"
            ),
        },
    };
    let health = match &config.health {
        Some(url) => {
            let uri: hyper::Uri = url
                .parse()
                .map_err(|error| anyhow::anyhow!("{key}.health: invalid URL \"{url}\": {error}"))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                bail!("{key}.health: \"{url}\" must be an http:// URL with a host");
            }
            Some(health.entry(url))
        }
        None => None,
    };
    Ok(Edge {
        name: config.name.clone(),
        region: config.region.clone(),
        location,
        ipv4: config.ipv4.clone(),
        ipv6: config.ipv6.clone(),
        weight: config.weight,
        bias_km: config.bias_km,
        health,
    })
}
