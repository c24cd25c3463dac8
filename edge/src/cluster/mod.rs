//! The edge in a cluster (`[cluster]`, see [`shared::cluster`] for the key
//! layout):
//!
//! - [`announce`]: keeps this edge's member record alive under a lease, so
//!   that every geodns answers with it (and stops when it dies);
//! - [`purges`]: applies purges published by any edge or `geodns ctl`, and
//!   publishes the ones sent to this edge's admin API;
//! - the fill ring follows the announced edges of this edge's region and
//!   service ([`follow_ring`]).
//!
//! When etcd is away the edge keeps serving: the ring keeps its last
//! members, and the record is announced again when etcd returns.

mod announce;
mod purges;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use shared::cluster::{ClusterMetrics, ClusterView, MemberRecord};
use shared::metrics::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{AnnounceConfig, Config, DEFAULT_ADMIN_PORT, Location};
use crate::proxy::{Edge, Peer, peer_url};

pub use purges::PurgePublisher;

/// What the cluster tasks of an edge report.
#[derive(Debug, Clone, Default)]
pub struct EdgeClusterMetrics {
    /// 1 while this edge's announcement is live in etcd.
    pub announced: Gauge,
    /// Purges published by others and applied here.
    pub purges_applied: Counter,
    /// Times the purge history was compacted while this edge was away, so
    /// that it purged everything.
    pub full_purges: Counter,
}

impl EdgeClusterMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "edge_cluster_announced",
            "1 while this edge's member record is live in etcd",
            metrics.announced.clone(),
        );
        registry.register(
            "edge_cluster_purges_applied",
            "Purges published by other edges or geodns ctl and applied here",
            metrics.purges_applied.clone(),
        );
        registry.register(
            "edge_cluster_full_purges",
            "Whole-cache purges because purge history was compacted while disconnected",
            metrics.full_purges.clone(),
        );
        metrics
    }
}

/// The running cluster tasks of one edge.
pub struct Cluster {
    publisher: Arc<PurgePublisher>,
    leave: CancellationToken,
    announcer: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Checks `[cluster]` and `[announce]` beyond what the schema can.
    pub fn validate(config: &Config) -> anyhow::Result<()> {
        if let Some(etcd) = &config.cluster {
            etcd.validate()?;
        }
        if let Some(announce) = &config.announce {
            if config.cluster.is_none() {
                anyhow::bail!("announce: needs a [cluster] section to announce to");
            }
            member_record(config, announce, 0)?;
        }
        Ok(())
    }

    /// Starts announcing, following purges and the ring; `None` without `[cluster]`.
    pub fn start(
        config: &Config,
        edge: &Edge,
        registry: &mut Registry,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        let Some(etcd) = &config.cluster else {
            return Ok(None);
        };
        Self::validate(config)?;
        let metrics = EdgeClusterMetrics::register(registry);
        let leave = CancellationToken::new();
        let announcer = match &config.announce {
            Some(announce) => {
                let capacity = config.cache.capacity.bytes();
                let record = member_record(config, announce, capacity)?;
                let ttl = announce.ttl.as_std().max(Duration::from_secs(1));
                let task = announce::Announcer::new(
                    etcd.clone(),
                    record,
                    ttl,
                    edge.clone(),
                    metrics.announced.clone(),
                );
                let stop = leave.clone();
                Some(tokio::spawn(task.run(stop)))
            }
            None => {
                tracing::info!(
                    "[cluster] without [announce]: following purges only; geodns will not learn of this edge from etcd"
                );
                None
            }
        };
        purges::Follower::new(etcd.clone(), edge.clone(), metrics).spawn(shutdown.clone());
        if config.fill.from_cluster
            && let Some(announce) = &config.announce
        {
            let follower_metrics = ClusterMetrics::register(registry);
            let (view, _) =
                shared::cluster::follow(etcd.clone(), follower_metrics, shutdown.clone());
            tokio::spawn(follow_ring(
                view,
                edge.clone(),
                announce.service.clone(),
                announce.region.clone(),
            ));
        }
        Ok(Some(Self {
            publisher: Arc::new(PurgePublisher::new(etcd.clone(), edge.name())),
            leave,
            announcer,
        }))
    }

    /// Publishes purges for the admin API.
    pub fn publisher(&self) -> Arc<PurgePublisher> {
        self.publisher.clone()
    }

    /// Withdraws the member record at once (a clean stop), bounded in time.
    pub async fn leave(self) {
        self.leave.cancel();
        if let Some(announcer) = self.announcer {
            let _ = tokio::time::timeout(Duration::from_secs(3), announcer).await;
        }
    }
}

/// The record this edge announces.
fn member_record(
    config: &Config,
    announce: &AnnounceConfig,
    capacity_bytes: u64,
) -> anyhow::Result<MemberRecord> {
    let Location {
        latitude,
        longitude,
    } = announce.location;
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        anyhow::bail!(
            "announce.location: latitude must be within -90..=90 and longitude within -180..=180"
        );
    }
    if announce.ipv4.is_empty() && announce.ipv6.is_empty() {
        anyhow::bail!("announce: give the public addresses geodns answers with, in ipv4 or ipv6");
    }
    if announce.service.is_empty() || announce.region.is_empty() {
        anyhow::bail!("announce: service and region must not be empty");
    }
    let public = announce
        .ipv4
        .first()
        .map(|ip| std::net::IpAddr::V4(*ip))
        .or_else(|| announce.ipv6.first().map(|ip| std::net::IpAddr::V6(*ip)));
    let reachable = |address: std::net::SocketAddr| match (address.ip().is_unspecified(), public) {
        (true, Some(ip)) => std::net::SocketAddr::new(ip, address.port()),
        _ => address,
    };
    let admin_scheme = if config.tls.admin { "https" } else { "http" };
    let admin_url = format!(
        "{admin_scheme}://{}",
        reachable(config.admin.listen_or(DEFAULT_ADMIN_PORT))
    );
    let health_url = match &announce.health_url {
        Some(url) => url.clone(),
        None => format!("{admin_url}/healthz"),
    };
    peer_url(&health_url).map_err(|error| anyhow::anyhow!("announce.health_url: {error}"))?;
    let fill_url = match &announce.fill_url {
        Some(url) => url.clone(),
        None => match config.server.listen.first() {
            Some(address) => format!("http://{}", reachable(*address)),
            None => anyhow::bail!("announce.fill_url: not given and server.listen is empty"),
        },
    };
    peer_url(&fill_url).map_err(|error| anyhow::anyhow!("announce.fill_url: {error}"))?;
    Ok(MemberRecord {
        name: config.server.name.clone(),
        service: announce.service.clone(),
        region: announce.region.clone(),
        latitude,
        longitude,
        ipv4: announce.ipv4.clone(),
        ipv6: announce.ipv6.clone(),
        admin_url,
        health_url,
        fill_url,
        weight: announce.weight,
        capacity_bytes,
        version: env!("CARGO_PKG_VERSION").to_string(),
        status: shared::EdgeStatus::Up,
    })
}

/// Keeps the ring's announced peers in step with the edges of `service`
/// in `region` that are up and not drained.
async fn follow_ring(
    mut view: tokio::sync::watch::Receiver<Arc<ClusterView>>,
    edge: Edge,
    service: String,
    region: String,
) {
    loop {
        let current = view.borrow_and_update().clone();
        let peers: Vec<Peer> = current
            .members
            .values()
            .filter(|member| member.service == service && member.region == region)
            .filter(|member| member.name != edge.name())
            .filter(|member| {
                member.status == shared::EdgeStatus::Up && !current.is_drained(&member.name)
            })
            .filter_map(|member| {
                let base = peer_url(&member.fill_url).ok()?;
                Some(Peer {
                    name: member.name.clone(),
                    base,
                    health: peer_url(&member.health_url).ok(),
                })
            })
            .collect();
        let names: Vec<&str> = peers.iter().map(|peer| peer.name.as_str()).collect();
        tracing::info!(peers = ?names, "fill ring updated");
        edge.ring().set_announced(peers);
        if view.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        shared::config::parse("edge.toml", text).expect("config parses")
    }

    const BASE: &str = r#"
        [server]
        listen = ["0.0.0.0:8080"]
        name = "eu-1"
        [origin]
        urls = ["http://127.0.0.1:9"]
        [admin]
        listen = "0.0.0.0:9180"
        [cluster]
        endpoints = ["http://127.0.0.1:2379"]
    "#;

    #[test]
    fn defaults_use_the_public_address() {
        let config = config(&format!(
            "{BASE}\n[announce]\nservice = \"www\"\nregion = \"eu\"\nlocation = {{ latitude = 52.4, longitude = 4.9 }}\nipv4 = [\"198.51.100.7\"]\n"
        ));
        let record = member_record(&config, config.announce.as_ref().unwrap(), 1).unwrap();
        assert_eq!(record.health_url, "http://198.51.100.7:9180/healthz");
        assert_eq!(record.fill_url, "http://198.51.100.7:8080");
        assert_eq!(record.name, "eu-1");
    }

    #[test]
    fn bad_announcements_name_the_key() {
        let no_address = config(&format!(
            "{BASE}\n[announce]\nservice = \"www\"\nregion = \"eu\"\nlocation = {{ latitude = 52.4, longitude = 4.9 }}\n"
        ));
        let error = Cluster::validate(&no_address).unwrap_err().to_string();
        assert!(error.contains("ipv4 or ipv6"), "{error}");
        let far = config(&format!(
            "{BASE}\n[announce]\nservice = \"www\"\nregion = \"eu\"\nlocation = {{ latitude = 95.0, longitude = 4.9 }}\nipv4 = [\"198.51.100.7\"]\n"
        ));
        let error = Cluster::validate(&far).unwrap_err().to_string();
        assert!(error.contains("announce.location"), "{error}");
        let alone = config(
            "[origin]\nurls = [\"http://127.0.0.1:9\"]\n[announce]\nservice = \"www\"\nregion = \"eu\"\nlocation = { latitude = 1.0, longitude = 2.0 }\nipv4 = [\"198.51.100.7\"]\n",
        );
        let error = Cluster::validate(&alone).unwrap_err().to_string();
        assert!(error.contains("[cluster]"), "{error}");
    }
}
