//! Everything a query needs, immutable, behind one `ArcSwap`.
//!
//! A reload builds a whole new snapshot off the query path and swaps it in
//! atomically; a reload that fails validation publishes nothing. Health
//! states are not part of it: they change every few seconds and live in
//! shared atomics that the snapshot's edges point to.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::bail;
use geoip::Coordinates;
use hickory_proto::rr::LowerName;
use shared::EdgeStatus;

use crate::cluster::ClusterView;
use crate::config::{Config, EdgeConfig, Fallback, HealthConfig, ServiceConfig};
use crate::geo::{Edge, GeoMaps, Rule, Service};
use crate::health::{HealthCheck, HealthTable};
use crate::metrics::{DnsMetrics, ServiceCounters};
use crate::sources::Places;
use crate::zone::{ServiceId, Zone, build_zone};

/// Whether building a snapshot opens the geoip sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// Open the databases and override files (serving, full checks).
    Open,
    /// Leave them out: structure-only checks for a host without them.
    Skip,
}

/// Every error found in a configuration, so that one check shows them all.
#[derive(Debug)]
pub struct ConfigErrors(Vec<anyhow::Error>);

impl ConfigErrors {
    /// `Ok` when `errors` is empty.
    fn check(mut errors: Vec<anyhow::Error>) -> anyhow::Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Self(errors).into()),
        }
    }

    /// `error` (one, or several as `ConfigErrors`) with each message
    /// pointing at its line in the file at `path` where its key is written.
    fn located(path: &Path, error: anyhow::Error) -> anyhow::Error {
        let messages = match error.downcast::<ConfigErrors>() {
            Ok(errors) => errors
                .0
                .iter()
                .map(|error| shared::report::describe(error.as_ref()))
                .collect(),
            Err(error) => vec![shared::report::describe(error.as_ref())],
        };
        match shared::config::SemanticErrors::check(path, messages) {
            Ok(()) => anyhow::anyhow!("{}: invalid configuration", path.display()),
            Err(errors) => errors.into(),
        }
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} errors:", self.0.len())?;
        for error in &self.0 {
            write!(f, "\n  {}", shared::report::describe(error.as_ref()))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The state queries read.
#[derive(Debug)]
pub struct Snapshot {
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    /// The configuration it was built from.
    pub config: Config,
    /// Zones, in config order.
    pub zones: Arc<Vec<Zone>>,
    zone_index: Arc<HashMap<LowerName, usize>>,
    /// Geo services, indexed by [`ServiceId`].
    pub services: Vec<Service>,
    /// Counters per service, same index.
    pub counters: Vec<ServiceCounters>,
    /// Every address with its place, shared by the snapshots of one load.
    pub places: Arc<Places>,
    /// Rankings and answers of the services over every client network.
    pub geo: GeoMaps,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// DNS-01 answers published by edges ordering certificates, by owner
    /// name (see [`crate::acme_challenges`]).
    pub acme_txt: Arc<HashMap<LowerName, Vec<hickory_proto::rr::Record>>>,
    /// Unique per snapshot built by this process, in order: what answer
    /// caches compare to notice a new snapshot (an address could be reused
    /// by the allocator once the old one is freed).
    pub generation: u64,
}

/// The generation of the next snapshot.
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Snapshot {
    /// Loads `path` and builds a snapshot from it and the cluster view.
    pub fn load(
        path: &Path,
        health: &HealthTable,
        metrics: &DnsMetrics,
        cluster: &ClusterView,
    ) -> anyhow::Result<Self> {
        Self::load_with(path, health, metrics, cluster, Sources::Open)
    }

    /// Loads `path` and builds a snapshot from it and the cluster view,
    /// opening the geoip sources or (`Sources::Skip`) leaving them out: to
    /// check a configuration on a host that lacks its databases.
    pub fn load_with(
        path: &Path,
        health: &HealthTable,
        metrics: &DnsMetrics,
        cluster: &ClusterView,
        sources: Sources,
    ) -> anyhow::Result<Self> {
        let mut config: Config = shared::config::load(path)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        if let Some(etcd) = &mut config.cluster {
            etcd.resolve_paths(base_dir);
        }
        let mut snapshot = Self::build_with(config, base_dir, health, metrics, cluster, sources)
            .map_err(|error| ConfigErrors::located(path, error))?;
        snapshot.source = Some(path.to_path_buf());
        Ok(snapshot)
    }

    /// Validates `config` and builds the snapshot; relative paths in it are
    /// taken from `base_dir`. Edges announced in `cluster` join their services.
    pub fn build(
        config: Config,
        base_dir: &Path,
        health: &HealthTable,
        metrics: &DnsMetrics,
        cluster: &ClusterView,
    ) -> anyhow::Result<Self> {
        Self::build_with(config, base_dir, health, metrics, cluster, Sources::Open)
    }

    /// [`Snapshot::build`], with the geoip sources opened or skipped. Every
    /// error is reported, not only the first: sections are checked
    /// independently, and a failed geoip source does not hide the errors of
    /// the services.
    fn build_with(
        config: Config,
        base_dir: &Path,
        health: &HealthTable,
        metrics: &DnsMetrics,
        cluster: &ClusterView,
        sources: Sources,
    ) -> anyhow::Result<Self> {
        let mut errors = Vec::new();
        if let Some(etcd) = &config.cluster
            && let Err(error) = etcd.validate()
        {
            errors.push(anyhow::Error::from(error));
        }
        if let Err(error) = config.admin.validate() {
            errors.push(anyhow::Error::msg(error));
        }
        if let Err(error) = config.server.validate() {
            errors.push(anyhow::Error::msg(error));
        }
        if let Some(Err(error)) = config.dnstap.as_ref().map(|dnstap| dnstap.validate()) {
            errors.push(anyhow::Error::msg(error));
        }
        let health_sections = std::iter::once(("health", &config.health)).chain(
            config.services.values().filter_map(|service| {
                service
                    .health
                    .as_ref()
                    .map(|health| ("services.*.health", health))
            }),
        );
        for (key, section) in health_sections {
            if !(section.saturated_at > 0.0 && section.saturated_at <= 1.0) {
                errors.push(anyhow::anyhow!(
                    "{key}.saturated_at: {} is not a share between 0 (excluded) and 1",
                    section.saturated_at
                ));
            }
        }
        let places = match sources {
            Sources::Open => match crate::sources::open_locator(&config.geoip, base_dir)
                .and_then(|locator| Places::build(&locator))
            {
                Ok(places) => {
                    if places.databases.is_empty()
                        && places.overrides == 0
                        && !config.services.is_empty()
                    {
                        tracing::warn!(
                            "no geoip databases or overrides configured: every client gets the fallback answer"
                        );
                    }
                    Some(places)
                }
                Err(error) => {
                    errors.push(error);
                    None
                }
            },
            Sources::Skip => None,
        };
        let (services, counters) = build_services(
            &config,
            places.as_ref(),
            health,
            metrics,
            cluster,
            &mut errors,
        );
        let (zones, zone_index) = build_zones(&config, base_dir, &mut errors);
        ConfigErrors::check(errors)?;
        let places = Arc::new(places.unwrap_or_else(Places::empty));
        let geo = GeoMaps::build(&services, &places.table, health.epoch());
        let mut snapshot = Self {
            source: None,
            config,
            zones: Arc::new(zones),
            zone_index: Arc::new(zone_index),
            services,
            counters,
            places,
            geo,
            loaded_at: SystemTime::now(),
            acme_txt: Arc::default(),
            generation: next_generation(),
        };
        snapshot.acme_txt = Arc::new(snapshot.challenge_records(cluster));
        Ok(snapshot)
    }

    /// The same configuration with the edges of a new cluster view; zones
    /// and databases are shared, not rebuilt.
    pub fn with_cluster(
        &self,
        health: &HealthTable,
        metrics: &DnsMetrics,
        cluster: &ClusterView,
    ) -> anyhow::Result<Self> {
        let mut errors = Vec::new();
        let (services, counters) = build_services(
            &self.config,
            Some(&self.places),
            health,
            metrics,
            cluster,
            &mut errors,
        );
        ConfigErrors::check(errors)?;
        let geo = GeoMaps::build(&services, &self.places.table, health.epoch());
        Ok(Self {
            source: self.source.clone(),
            config: self.config.clone(),
            zones: self.zones.clone(),
            zone_index: self.zone_index.clone(),
            services,
            counters,
            places: self.places.clone(),
            geo,
            loaded_at: self.loaded_at,
            acme_txt: Arc::new(self.challenge_records(cluster)),
            generation: next_generation(),
        })
    }

    /// The size and build times of the geo maps, with the answers as now computed.
    pub fn geo_figures(&self) -> crate::metrics::GeoMapFigures {
        let answers = self.geo.current();
        let table = &self.places.table;
        crate::metrics::GeoMapFigures {
            place_runs: table.v4.runs.len() + table.v6.runs.len(),
            ranking_classes: self.geo.ranking_classes(),
            answer_runs: answers.runs(),
            bytes: table.heap_bytes() + self.geo.heap_bytes(),
            places_took: self.places.took,
            rankings_took: self.geo.rankings_took,
            answers_took: answers.took,
        }
    }

    /// The DNS-01 answers of `cluster` that fall in our zones.
    fn challenge_records(
        &self,
        cluster: &ClusterView,
    ) -> HashMap<LowerName, Vec<hickory_proto::rr::Record>> {
        crate::acme_challenges::challenge_records(cluster, |owner| self.find_zone(owner).is_some())
    }

    /// Carries content-derived SOA serials forward from `previous` (the
    /// snapshot this one replaces), so that a reload which changes a zone
    /// always moves its serial forward; see [`Zone::follow_serial`].
    pub fn follow_serials(&mut self, previous: &Snapshot) {
        let mut zones = self.zones.as_ref().clone();
        for zone in &mut zones {
            if let Some(old) = previous.find_zone(zone.apex())
                && old.apex() == zone.apex()
            {
                zone.follow_serial(old);
            }
        }
        self.zones = Arc::new(zones);
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
    pub fn health_checks(&self) -> HashMap<String, HealthCheck> {
        let mut checks = HashMap::new();
        for service in &self.services {
            for edge in &service.edges {
                if let Some(health) = &edge.health {
                    checks
                        .entry(health.url().to_string())
                        .or_insert_with(|| HealthCheck {
                            edge: edge.name.clone(),
                            config: service.health,
                        });
                }
            }
        }
        checks
    }
}

/// The geo services with their static and announced edges, and their counters.
/// Services with errors are left out and their errors added to `errors`.
fn build_services(
    config: &Config,
    places: Option<&Places>,
    health: &HealthTable,
    metrics: &DnsMetrics,
    cluster: &ClusterView,
    errors: &mut Vec<anyhow::Error>,
) -> (Vec<Service>, Vec<ServiceCounters>) {
    let mut services = Vec::new();
    let mut counters = Vec::new();
    for (name, service) in &config.services {
        let key = format!("services.{name}");
        if !config.zones.contains_key(&service.zone) {
            errors.push(anyhow::anyhow!(
                "{key}.zone: no zone \"{}\" is configured",
                service.zone
            ));
        }
        let clustered = config.cluster.is_some();
        let built = build_service(
            name,
            service,
            &config.health,
            places,
            health,
            &key,
            clustered,
        );
        let mut built = match built {
            Ok(built) => built,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        add_members(&mut built, cluster, health);
        let edge_names: Vec<String> = built.edges.iter().map(|edge| edge.name.clone()).collect();
        counters.push(metrics.service_counters(name, &edge_names));
        services.push(built);
    }
    (services, counters)
}

/// Zones with the owner names of the geo services in each, and the index by apex.
/// Zones with errors are left out and their errors added to `errors`.
fn build_zones(
    config: &Config,
    base_dir: &Path,
    errors: &mut Vec<anyhow::Error>,
) -> (Vec<Zone>, HashMap<LowerName, usize>) {
    let mut geo_names: HashMap<&str, Vec<(String, ServiceId)>> = HashMap::new();
    for (id, service) in config.services.values().enumerate() {
        for owner in &service.names {
            geo_names
                .entry(service.zone.as_str())
                .or_default()
                .push((owner.clone(), id));
        }
    }
    let mut zones = Vec::new();
    let mut zone_index = HashMap::new();
    for (apex, zone_config) in &config.zones {
        let names = geo_names.get(apex.as_str()).map_or(&[][..], Vec::as_slice);
        let zone = match build_zone(apex, zone_config, base_dir, names) {
            Ok(zone) => zone,
            Err(error) => {
                errors.push(error.into());
                continue;
            }
        };
        if zone_index
            .insert(zone.apex().clone(), zones.len())
            .is_some()
        {
            errors.push(anyhow::anyhow!("zones.\"{apex}\": configured twice"));
            continue;
        }
        zones.push(zone);
    }
    (zones, zone_index)
}

/// Adds the edges announced for `service` (by name order, so every geodns
/// ranks them alike) and marks drained ones. A static edge wins over an
/// announcement with its name. Announced edges are not answered with until
/// their health checks pass.
fn add_members(service: &mut Service, cluster: &ClusterView, health: &HealthTable) {
    for member in cluster.members.values() {
        if member.service != service.name {
            continue;
        }
        if service.edges.iter().any(|edge| edge.name == member.name) {
            tracing::warn!(
                edge = member.name,
                service = service.name,
                "an announced edge has the name of a configured one; the configured one wins"
            );
            continue;
        }
        let Ok(location) = Coordinates::new(member.latitude, member.longitude) else {
            tracing::warn!(
                edge = member.name,
                "announced coordinates out of range; edge ignored"
            );
            continue;
        };
        if !is_http_url(&member.health_url) {
            tracing::warn!(
                edge = member.name,
                url = member.health_url,
                "announced health URL is not http:// or https://host...; edge ignored"
            );
            continue;
        }
        service.edges.push(Edge {
            name: member.name.clone(),
            region: member.region.clone(),
            location,
            ipv4: member.ipv4.clone(),
            ipv6: member.ipv6.clone(),
            weight: member.weight,
            bias_km: 0.0,
            health: Some(health.entry_with(&member.health_url, &member.name, EdgeStatus::Down)),
            drained: member.status == EdgeStatus::Draining,
            announced: true,
        });
    }
    for edge in &mut service.edges {
        edge.drained |= cluster.is_drained(&edge.name);
    }
}

fn is_http_url(url: &str) -> bool {
    url.parse::<hyper::Uri>()
        .is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some())
}

fn build_service(
    name: &str,
    config: &ServiceConfig,
    defaults: &HealthConfig,
    places: Option<&Places>,
    health: &HealthTable,
    key: &str,
    clustered: bool,
) -> anyhow::Result<Service> {
    if config.names.is_empty() {
        bail!("{key}.names: a service needs at least one name");
    }
    if config.edges.is_empty() && !clustered {
        bail!(
            "{key}.edges: a service needs at least one edge (or a [cluster] section for edges that announce themselves)"
        );
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
        edges.push(build_edge(edge, places, health, &edge_key)?);
    }
    let regions: BTreeSet<&str> = edges.iter().map(|edge| edge.region.as_str()).collect();
    // With a cluster, regions may be served by announced edges only.
    if let Fallback::Region(region) = &config.fallback
        && !clustered
        && !regions.contains(region.as_str())
    {
        bail!("{key}.fallback: no edge is in region \"{region}\"");
    }
    let mut rules = Vec::new();
    for (index, rule) in config.rules.iter().enumerate() {
        if let Some(missing) = rule
            .regions
            .iter()
            .find(|region| !clustered && !regions.contains(region.as_str()))
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

/// Without `places` (geoip sources skipped or failed to open), an edge
/// without a configured location is not checked for one.
fn build_edge(
    config: &EdgeConfig,
    places: Option<&Places>,
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
    let location = match (config.location, places) {
        (Some(location), _) => location,
        (None, None) => Coordinates::ZERO,
        (None, Some(places)) => match places.table.locate(address).location {
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
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                bail!("{key}.health: \"{url}\" must be an http:// or https:// URL with a host");
            }
            Some(health.entry(url, &config.name))
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
        drained: false,
        announced: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(health: &HealthTable, metrics: &DnsMetrics) -> Snapshot {
        let config: Config = toml::from_str(
            "[zones.\"cdn.test\"]\nsoa = { mname = \"ns1.cdn.test\", rname = \"h.cdn.test\" }\nns = [\"ns.example.net\"]\n",
        )
        .expect("config");
        Snapshot::build(
            config,
            Path::new("."),
            health,
            metrics,
            &ClusterView::default(),
        )
        .expect("snapshot")
    }

    #[test]
    fn every_snapshot_has_a_new_generation_even_at_a_reused_address() {
        let metrics = DnsMetrics::register(&mut prometheus_client::registry::Registry::default());
        let health = HealthTable::new(metrics.clone(), tokio_util::sync::CancellationToken::new());
        let mut seen = Vec::new();
        for _ in 0..8 {
            let snapshot = Arc::new(build(&health, &metrics));
            seen.push((Arc::as_ptr(&snapshot) as usize, snapshot.generation));
            let rebuilt = snapshot.with_cluster(&health, &metrics, &ClusterView::default());
            seen.push((0, rebuilt.expect("rebuilt").generation));
        }
        let mut generations: Vec<u64> = seen.iter().map(|(_, generation)| *generation).collect();
        generations.dedup();
        assert_eq!(generations.len(), seen.len(), "{seen:?}");
    }
}
