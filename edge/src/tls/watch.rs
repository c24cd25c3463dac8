//! Re-reads the certificate files when they change, as ACME clients and
//! secret mounts replace them (a rename, or a symlink that moves); SIGHUP
//! re-reads them too, with the whole configuration ([`crate::reload`]). Files are compared by what `stat` says through symlinks, every
//! `tls.watch_interval`. A change that does not load (a certificate written
//! before its key, say) leaves the current certificates serving and is
//! tried again at the next change.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::TlsTermination;

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    device: u64,
    inode: u64,
    length: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(Stamp {
        device: metadata.dev(),
        inode: metadata.ino(),
        length: metadata.len(),
        modified: metadata.modified().ok(),
    })
}

fn stamps(termination: &TlsTermination) -> Vec<Option<Stamp>> {
    termination
        .files()
        .iter()
        .flat_map(|files| [stamp(&files.certificate), stamp(&files.key)])
        .collect()
}

/// Reloads `termination` when its files change, until `shutdown`;
/// refreshes the expiry gauge meanwhile.
pub async fn watch(
    termination: Arc<TlsTermination>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut seen = stamps(&termination);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        termination.refresh_expiry(SystemTime::now());
        let now = stamps(&termination);
        if now == seen {
            continue;
        }
        seen = now;
        let why = "files changed";
        match termination.reload() {
            Ok(count) => tracing::info!(certificates = count, why, "TLS certificates reloaded"),
            Err(error) => tracing::error!(
                %error,
                why,
                "TLS certificates not reloaded; the current ones keep serving"
            ),
        }
    }
}
