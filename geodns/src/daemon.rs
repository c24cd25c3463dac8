//! `geodns run`: wiring the pieces together and keeping them running.
//!
//! Start: load and validate the config (exit on error), start health
//! checkers, bind DNS and admin listeners. SIGHUP: build a new snapshot from
//! the file; publish it only if it validates, else keep serving the old one
//! and say why. With `[cluster]`: follow etcd and publish a snapshot with
//! the announced edges whenever membership or admin state changes.
//! SIGTERM/SIGINT: stop accepting, finish, exit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use shared::{AdminServer, Signals};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::answer::Responder;
use crate::answer::cookie::ServerCookies;
use crate::answer::rate_limit::RateLimiter;
use crate::cluster::ClusterView;
use crate::config::DEFAULT_ADMIN_PORT;
use crate::dnstap::{QueryLog, QueryLogWriter};
use crate::health::HealthTable;
use crate::metrics::DnsMetrics;
use crate::server::DnsServer;
use crate::snapshot::Snapshot;

/// How long shutdown waits for the dnstap writer to drain its queue.
const QUERY_LOG_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// How often the answer map is compared with the health epoch.
const ANSWERS_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// A running geodns.
pub struct Daemon {
    config_path: PathBuf,
    snapshot: Arc<ArcSwap<Snapshot>>,
    health: Arc<HealthTable>,
    metrics: Arc<DnsMetrics>,
    dns: DnsServer,
    /// The dnstap writer, when `[dnstap]` is configured.
    query_log: Option<QueryLogWriter>,
    admin: AdminServer,
    /// Membership from etcd, when `[cluster]` is configured.
    cluster: Option<watch::Receiver<Arc<ClusterView>>>,
}

impl Daemon {
    /// Loads `config_path` and starts serving; stops when `shutdown` is cancelled.
    pub async fn start(config_path: &Path, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let mut registry = shared::metrics::new_registry("geodns", env!("CARGO_PKG_VERSION"));
        let metrics = DnsMetrics::register(&mut registry);
        let health = Arc::new(HealthTable::new(metrics.clone(), shutdown.clone()));
        let snapshot = Snapshot::load(config_path, &health, &metrics, &ClusterView::default())?;
        let (cluster, cluster_status) = match &snapshot.config.cluster {
            Some(etcd) => {
                let cluster_metrics = shared::cluster::ClusterMetrics::register(&mut registry);
                let (view, status) =
                    shared::cluster::follow(etcd.clone(), cluster_metrics, shutdown.clone());
                (Some(view), Some(status))
            }
            None => (None, None),
        };
        // A membership saved by the last run is there before etcd answers.
        let saved = cluster
            .as_ref()
            .map(|view| view.borrow().clone())
            .unwrap_or_default();
        let snapshot = if *saved == ClusterView::default() {
            snapshot
        } else {
            snapshot.with_cluster(&health, &metrics, &saved)?
        };
        health.reconcile(&snapshot.health_checks());
        let server_config = snapshot.config.server.clone();
        let admin_config = snapshot.config.admin.clone();
        log_loaded(&snapshot, &metrics);
        crate::memory::release_free_pages();
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let responder = Responder::new(
            snapshot.clone(),
            health.clone(),
            metrics.clone(),
            server_config.max_udp_payload,
            RateLimiter::new(&server_config.rate_limit),
            ServerCookies::new(
                server_config
                    .cookie_secret()
                    .map_err(anyhow::Error::msg)?
                    .unwrap_or_else(rand::random),
            ),
        );
        let (query_log, query_log_writer) = match &snapshot.load().config.dnstap {
            Some(config) => {
                let (log, writer) = QueryLog::open(
                    config,
                    server_config.identity.as_deref(),
                    metrics.dnstap_written.clone(),
                    metrics.dnstap_dropped.clone(),
                )?;
                (Some(log), Some(writer))
            }
            None => (None, None),
        };
        let dns = DnsServer::start(
            &server_config,
            responder,
            metrics.clone(),
            query_log,
            shutdown.clone(),
        )?;
        let router = crate::admin::router(
            snapshot.clone(),
            health.clone(),
            Arc::new(registry),
            cluster_status,
        );
        let admin = AdminServer::start(
            admin_config.listen_or(DEFAULT_ADMIN_PORT),
            &admin_config,
            router,
            shutdown.clone(),
        )
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "admin.listen: cannot listen on {}: {error}",
                admin_config.listen_or(DEFAULT_ADMIN_PORT)
            )
        })?;
        // Once the zones can be transferred: secondaries ask at once.
        crate::server::notify::notify_changed_zones(None, &snapshot.load(), &metrics);
        Ok(Self {
            config_path: config_path.to_path_buf(),
            snapshot,
            health,
            metrics,
            dns,
            query_log: query_log_writer,
            admin,
            cluster,
        })
    }

    /// DNS addresses actually bound.
    pub fn dns_addresses(&self) -> &[SocketAddr] {
        self.dns.addresses()
    }

    /// Admin address actually bound.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// The cluster view last seen (empty without `[cluster]`).
    fn cluster_view(&self) -> Arc<ClusterView> {
        self.cluster
            .as_ref()
            .map(|receiver| receiver.borrow().clone())
            .unwrap_or_default()
    }

    /// Rebuilds the snapshot from the file; keeps the old one on error.
    pub fn reload(&self) -> anyhow::Result<()> {
        let view = self.cluster_view();
        let result = Snapshot::load(&self.config_path, &self.health, &self.metrics, &view);
        self.metrics.reload(result.is_ok());
        let mut snapshot = result?;
        let current = self.snapshot.load();
        snapshot.follow_serials(&current);
        if snapshot
            .config
            .server
            .differs_at_start(&current.config.server)
            || snapshot.config.admin != current.config.admin
            || snapshot.config.cluster != current.config.cluster
            || snapshot.config.dnstap != current.config.dnstap
        {
            tracing::warn!(
                "[server] (but identity and version), [admin], [cluster] and [dnstap] changes take effect at the next restart"
            );
        }
        self.health.reconcile(&snapshot.health_checks());
        crate::server::notify::notify_changed_zones(Some(&current), &snapshot, &self.metrics);
        log_loaded(&snapshot, &self.metrics);
        self.snapshot.store(Arc::new(snapshot));
        drop(current);
        crate::memory::release_free_pages();
        Ok(())
    }

    /// Recomputes the answer map when health has changed since it was
    /// computed, so that queries rarely find it stale (one that does
    /// recomputes it itself).
    fn refresh_answers(&self) {
        let snapshot = self.snapshot.load();
        let epoch = self.health.epoch();
        if !snapshot.geo.is_current(epoch) {
            let answers =
                tokio::task::block_in_place(|| snapshot.geo.answers(&snapshot.services, epoch));
            tracing::info!(
                epoch,
                runs = answers.runs(),
                took = ?answers.took,
                "answer map recomputed after a health change"
            );
            self.metrics.geo_maps(&snapshot.geo_figures());
        }
    }

    /// Publishes the current snapshot with the edges of a new cluster view.
    fn apply_cluster(&self) {
        let view = self.cluster_view();
        let current = self.snapshot.load();
        match current.with_cluster(&self.health, &self.metrics, &view) {
            Ok(snapshot) => {
                self.health.reconcile(&snapshot.health_checks());
                self.metrics.geo_maps(&snapshot.geo_figures());
                self.snapshot.store(Arc::new(snapshot));
                crate::memory::release_free_pages();
                tracing::info!(
                    members = view.members.len(),
                    drained = view.admin.len(),
                    "cluster membership applied"
                );
            }
            Err(error) => tracing::error!(
                "cluster membership not applied: {}",
                shared::report::describe(error.as_ref())
            ),
        }
    }

    /// Serves until shutdown, reloading on each SIGHUP and following the
    /// cluster view.
    pub async fn run(self, mut signals: Signals) {
        let mut cluster = self.cluster.clone();
        let mut answers_check = tokio::time::interval(ANSWERS_CHECK);
        answers_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let cluster_changed = async {
                match cluster.as_mut() {
                    Some(receiver) => receiver.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = signals.shutdown.cancelled() => break,
                _ = answers_check.tick() => self.refresh_answers(),
                alive = cluster_changed => {
                    if alive {
                        tokio::task::block_in_place(|| self.apply_cluster());
                    } else {
                        cluster = None;
                    }
                }
                changed = signals.reload.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    match tokio::task::block_in_place(|| self.reload()) {
                        Ok(()) => tracing::info!(config = %self.config_path.display(), "configuration reloaded"),
                        Err(error) => tracing::error!(
                            "reload failed, still serving the previous configuration: {}",
                            shared::report::describe(error.as_ref())
                        ),
                    }
                }
            }
        }
        self.dns.stopped().await;
        if let Some(writer) = self.query_log {
            // The last TCP connections let go of the log as they close;
            // past the grace time the file may lack its STOP frame.
            let finished = tokio::task::spawn_blocking(move || writer.finish());
            if tokio::time::timeout(QUERY_LOG_GRACE, finished)
                .await
                .is_err()
            {
                tracing::warn!("dnstap log not closed in time; its last frames may be missing");
            }
        }
        self.admin.stopped().await;
        tracing::info!("stopped");
    }
}

fn log_loaded(snapshot: &Snapshot, metrics: &DnsMetrics) {
    let figures = snapshot.geo_figures();
    tracing::info!(
        zones = snapshot.zones.len(),
        services = snapshot.services.len(),
        databases = snapshot.places.databases.len(),
        overrides = snapshot.places.overrides,
        place_runs = figures.place_runs,
        ranking_classes = figures.ranking_classes,
        answer_runs = figures.answer_runs,
        geo_map_mb = figures.bytes / 1_000_000,
        places_took = ?figures.places_took,
        rankings_took = ?figures.rankings_took,
        answers_took = ?figures.answers_took,
        "configuration loaded"
    );
    metrics.geo_maps(&figures);
}
