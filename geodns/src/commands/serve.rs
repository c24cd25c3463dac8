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
        if sources == Sources::Skip {
            let file = &snapshot.config.geoip;
            return writeln!(
                out,
                "{}: structure OK ({} zones, {} services, {} edges; {} databases and {} override files not opened)",
                config.display(),
                snapshot.zones.len(),
                snapshot.services.len(),
                snapshot
                    .services
                    .iter()
                    .map(|service| service.edges.len())
                    .sum::<usize>(),
                file.databases.len(),
                file.overrides.len(),
            )
            .map_err(Into::into);
        }
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
