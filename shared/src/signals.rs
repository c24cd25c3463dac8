//! Process lifecycle signals: SIGTERM/SIGINT for graceful shutdown, SIGHUP for reload.
//!
//! The first SIGTERM or SIGINT cancels [`Signals::shutdown`], and every task that
//! holds a clone finishes what it is doing and stops. A second one means the
//! operator is out of patience: the process exits at once with status 130.
//! SIGHUP bumps a counter in a `watch` channel, so bursts of reload signals
//! coalesce into one reload and a slow reload never queues up stale requests.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Handles to the signal listener, made by [`Signals::install`].
#[derive(Debug, Clone)]
pub struct Signals {
    /// Cancelled on the first SIGTERM or SIGINT.
    pub shutdown: CancellationToken,
    /// Changes on every SIGHUP; `changed().await` waits for the next reload request.
    pub reload: watch::Receiver<u64>,
}

impl Signals {
    /// Starts listening. Must be called inside a Tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let shutdown = CancellationToken::new();
        let (reload_tx, reload) = watch::channel(0u64);

        let token = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = terminate.recv() => "SIGTERM",
                    _ = interrupt.recv() => "SIGINT",
                    _ = hangup.recv() => {
                        reload_tx.send_modify(|generation| *generation += 1);
                        tracing::info!("SIGHUP received: reloading");
                        continue;
                    }
                };
                if token.is_cancelled() {
                    tracing::warn!("{name} received again: exiting immediately");
                    std::process::exit(130);
                }
                tracing::info!("{name} received: shutting down gracefully");
                token.cancel();
            }
        });
        Ok(Self { shutdown, reload })
    }

    /// Signals that are never delivered, for tests and embedded use; cancel
    /// `shutdown` by hand to stop.
    pub fn manual() -> (Self, watch::Sender<u64>) {
        let (reload_tx, reload) = watch::channel(0u64);
        let signals = Self {
            shutdown: CancellationToken::new(),
            reload,
        };
        (signals, reload_tx)
    }
}
