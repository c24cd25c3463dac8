//! `geodns run` and `geodns check-config`.

use std::io::Write;
use std::path::Path;

use shared::Signals;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterView;
use crate::daemon::Daemon;
use crate::health::HealthTable;
use crate::metrics::DnsMetrics;
use crate::snapshot::{Snapshot, Sources};

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
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

/// Builds a snapshot the way `run` would, without serving; with
/// `Sources::Skip`, without opening the geoip sources.
pub fn check_config(config: &Path, sources: Sources, out: &mut impl Write) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let metrics = DnsMetrics::register(&mut shared::metrics::Registry::default());
        let health = HealthTable::new(metrics.clone(), CancellationToken::new());
        // Announced edges are not part of the file: checked only when running.
        let snapshot =
            Snapshot::load_with(config, &health, &metrics, &ClusterView::default(), sources)?;
        let edges: usize = snapshot
            .services
            .iter()
            .map(|service| service.edges.len())
            .sum();
        let counted = format!(
            "{} zones, {} services, {edges} edges",
            snapshot.zones.len(),
            snapshot.services.len()
        );
        let file = &snapshot.config.geoip;
        match sources {
            Sources::Skip => writeln!(
                out,
                "{}: structure OK ({counted}; {} databases and {} override files not opened)",
                config.display(),
                file.databases.len(),
                file.overrides.len(),
            )?,
            Sources::Open => writeln!(
                out,
                "{}: OK ({counted}, {} databases, {} overrides)",
                config.display(),
                snapshot.places.databases.len(),
                snapshot.places.overrides,
            )?,
        }
        Ok(())
    })
}
