//! `geodns run`: wiring the pieces together and keeping them running.
//!
//! Start: load and validate the config (exit on error), start health
//! checkers, bind DNS and admin listeners. SIGHUP: build a new snapshot from
//! the file; publish it only if it validates, else keep serving the old one
//! and say why. SIGTERM/SIGINT: stop accepting, finish, exit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use shared::{AdminServer, Signals};
use tokio_util::sync::CancellationToken;

use crate::answer::Responder;
use crate::config::DEFAULT_ADMIN_PORT;
use crate::health::HealthTable;
use crate::metrics::DnsMetrics;
use crate::server::DnsServer;
use crate::snapshot::Snapshot;

/// A running geodns.
pub struct Daemon {
    config_path: PathBuf,
    snapshot: Arc<ArcSwap<Snapshot>>,
    health: Arc<HealthTable>,
    metrics: Arc<DnsMetrics>,
    dns: DnsServer,
    admin: AdminServer,
}

impl Daemon {
    /// Loads `config_path` and starts serving; stops when `shutdown` is cancelled.
    pub async fn start(config_path: &Path, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let mut registry = shared::metrics::new_registry("geodns", env!("CARGO_PKG_VERSION"));
        let metrics = DnsMetrics::register(&mut registry);
        let health = Arc::new(HealthTable::new(metrics.clone(), shutdown.clone()));
        let snapshot = Snapshot::load(config_path, &health, &metrics)?;
        health.reconcile(&snapshot.health_checks());
        let server_config = snapshot.config.server.clone();
        let admin_config = snapshot.config.admin.clone();
        log_loaded(&snapshot);
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let responder = Responder::new(
            snapshot.clone(),
            health.clone(),
            metrics.clone(),
            server_config.max_udp_payload,
        );
        let dns = DnsServer::start(&server_config, responder, metrics.clone(), shutdown.clone())?;
        let router = crate::admin::router(snapshot.clone(), health.clone(), Arc::new(registry));
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
        Ok(Self {
            config_path: config_path.to_path_buf(),
            snapshot,
            health,
            metrics,
            dns,
            admin,
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

    /// Rebuilds the snapshot from the file; keeps the old one on error.
    pub fn reload(&self) -> anyhow::Result<()> {
        let result = Snapshot::load(&self.config_path, &self.health, &self.metrics);
        self.metrics.reload(result.is_ok());
        let snapshot = result?;
        let current = self.snapshot.load();
        if snapshot.config.server.listen != current.config.server.listen
            || snapshot.config.admin != current.config.admin
        {
            tracing::warn!("server.listen and [admin] changes take effect at the next restart");
        }
        self.health.reconcile(&snapshot.health_checks());
        log_loaded(&snapshot);
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    /// Serves until shutdown, reloading on each SIGHUP.
    pub async fn run(self, mut signals: Signals) {
        loop {
            tokio::select! {
                _ = signals.shutdown.cancelled() => break,
                changed = signals.reload.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    match self.reload() {
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
        self.admin.stopped().await;
        tracing::info!("stopped");
    }
}

fn log_loaded(snapshot: &Snapshot) {
    tracing::info!(
        zones = snapshot.zones.len(),
        services = snapshot.services.len(),
        databases = snapshot.locator.databases().len(),
        overrides = snapshot.locator.overrides().len(),
        "configuration loaded"
    );
}
