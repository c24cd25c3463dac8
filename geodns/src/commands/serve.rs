//! `geodns run`, `geodns check-config` and `geodns explain`.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use shared::Signals;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterView;
use crate::cluster::ctl::Control;
use crate::config::{Config, HealthConfig};
use crate::daemon::Daemon;
use crate::health::{HealthProbe, HealthTable};
use crate::metrics::DnsMetrics;
use crate::snapshot::Snapshot;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Serves until SIGTERM or SIGINT.
pub fn run(config: &Path) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let signals = Signals::install()?;
        let daemon = Daemon::start(config, signals.shutdown.clone()).await?;
        daemon.run(signals).await;
        Ok(())
    })
}

/// Builds a snapshot the way `run` would, without serving.
pub fn check_config(config: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let metrics = DnsMetrics::register(&mut shared::metrics::Registry::default());
        let health = HealthTable::new(metrics.clone(), CancellationToken::new());
        // Announced edges are not part of the file: checked only when running.
        let snapshot = Snapshot::load(config, &health, &metrics, &ClusterView::default())?;
        writeln!(
            out,
            "{}: OK ({} zones, {} services, {} edges, {} databases, {} overrides)",
            config.display(),
            snapshot.zones.len(),
            snapshot.services.len(),
            snapshot
                .services
                .iter()
                .map(|service| service.edges.len())
                .sum::<usize>(),
            snapshot.locator.databases().len(),
            snapshot.locator.overrides().len(),
        )?;
        Ok(())
    })
}

/// Explains the answer for `ip`, after one health check of each edge.
pub fn explain(
    config: &Path,
    ip: IpAddr,
    check_health: bool,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let metrics = DnsMetrics::register(&mut shared::metrics::Registry::default());
        let health = Arc::new(HealthTable::new(metrics.clone(), CancellationToken::new()));
        let file: Config = shared::config::load(config)?;
        let cluster = match &file.cluster {
            Some(etcd) => match Control::connect(etcd).await {
                Ok(mut control) => control.view().await,
                Err(error) => Err(error),
            }
            .unwrap_or_else(|error| {
                eprintln!("warning: {error}; explaining with the configured edges only");
                ClusterView::default()
            }),
            None => ClusterView::default(),
        };
        let snapshot = Snapshot::load(config, &health, &metrics, &cluster)?;
        if check_health {
            let once = HealthConfig {
                rise: 1,
                fall: 1,
                ..HealthConfig::default()
            };
            let mut checks = tokio::task::JoinSet::new();
            for url in snapshot.health_checks().into_keys() {
                let mut probe = HealthProbe::new(health.entry(&url), once, metrics.clone());
                checks.spawn(async move { probe.check_once().await });
            }
            while checks.join_next().await.is_some() {}
        }
        let explanation = crate::explain::explain(&snapshot, ip, health.epoch());
        if json {
            serde_json::to_writer_pretty(&mut *out, &explanation)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", explanation.to_text())?;
        }
        Ok(())
    })
}
