//! Following etcd: read the member and admin records, then watch for
//! changes from the revision read; on any failure keep the last view, back
//! off and start over. Both binaries use it: geodns for the edges it answers
//! with, edges for the peers of their region.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::SystemTime;

use etcd_client::{EventType, GetOptions, WatchOptions};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Backoff, ClusterError, ClusterView, EtcdConfig, KeyLayout};

/// The follower's metrics (`cluster_connected`, `cluster_members`,
/// `cluster_drained`, `cluster_reconnects`), the same in both binaries.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetrics {
    connected: Gauge,
    members: Gauge,
    drained: Gauge,
    reconnects: Counter,
}

impl ClusterMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "cluster_connected",
            "1 while the etcd watch is live, 0 while working from the last membership seen",
            metrics.connected.clone(),
        );
        registry.register(
            "cluster_members",
            "Edges announced through etcd, as last seen",
            metrics.members.clone(),
        );
        registry.register(
            "cluster_drained",
            "Edges drained by an operator through etcd, as last seen",
            metrics.drained.clone(),
        );
        registry.register(
            "cluster_reconnects",
            "Times the etcd watch was lost and had to be re-established",
            metrics.reconnects.clone(),
        );
        metrics
    }
}

/// The follower's connection state, for `/status`.
#[derive(Debug, Default)]
pub struct ClusterStatus {
    connected: AtomicBool,
    revision: AtomicI64,
    last_error: Mutex<Option<(SystemTime, String)>>,
}

/// [`ClusterStatus`] as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatusReport {
    /// Whether the watch is live.
    pub connected: bool,
    /// The etcd revision last applied.
    pub revision: i64,
    /// The last failure and when it happened.
    pub last_error: Option<String>,
    /// When that was.
    pub last_error_at: Option<SystemTime>,
}

impl ClusterStatus {
    fn set_connected(&self, revision: i64) {
        self.connected.store(true, Ordering::Release);
        self.revision.store(revision, Ordering::Release);
    }

    fn set_revision(&self, revision: i64) {
        self.revision.store(revision, Ordering::Release);
    }

    fn set_failed(&self, error: String) {
        self.connected.store(false, Ordering::Release);
        *self.last_error.lock() = Some((SystemTime::now(), error));
    }

    /// Whether the watch is live now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// A copy for display.
    pub fn report(&self) -> ClusterStatusReport {
        let last = self.last_error.lock().clone();
        ClusterStatusReport {
            connected: self.is_connected(),
            revision: self.revision.load(Ordering::Acquire),
            last_error_at: last.as_ref().map(|(at, _)| *at),
            last_error: last.map(|(_, error)| error),
        }
    }
}

/// Starts following etcd; the receiver sees each new view (the first one
/// once the initial read succeeds), the status says whether it is live.
pub fn follow(
    config: EtcdConfig,
    metrics: ClusterMetrics,
    shutdown: CancellationToken,
) -> (watch::Receiver<Arc<ClusterView>>, Arc<ClusterStatus>) {
    let initial = config
        .state_file
        .as_deref()
        .and_then(load_state)
        .unwrap_or_default();
    let (sender, receiver) = watch::channel(Arc::new(initial));
    let status = Arc::new(ClusterStatus::default());
    let follower = Follower {
        keys: config.keys(),
        config,
        sender,
        status: status.clone(),
        metrics,
    };
    tokio::spawn(follower.run(shutdown));
    (receiver, status)
}

struct Follower {
    config: EtcdConfig,
    keys: KeyLayout,
    sender: watch::Sender<Arc<ClusterView>>,
    status: Arc<ClusterStatus>,
    metrics: ClusterMetrics,
}

impl Follower {
    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        loop {
            let error = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.follow(&mut backoff) => match result {
                    Ok(()) => ClusterError::Lost("etcd closed the watch".into()),
                    Err(error) => error,
                },
            };
            self.metrics.connected.set(0);
            self.metrics.reconnects.inc();
            let delay = backoff.next_delay();
            let kept = self.sender.borrow().members.len();
            tracing::warn!(
                %error,
                members_kept = kept,
                retry_in = ?delay,
                "etcd unavailable: working from the last membership seen"
            );
            self.status.set_failed(error.to_string());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection's life: a consistent read, then the watch from the
    /// next revision. Returns when the watch ends.
    async fn follow(&self, backoff: &mut Backoff) -> Result<(), ClusterError> {
        let mut client = self.config.connect().await?;
        let prefixed = || Some(GetOptions::new().with_prefix());
        let members = client.get(self.keys.members(), prefixed()).await?;
        let revision = members.header().map_or(0, |header| header.revision());
        let admin = client.get(self.keys.admin(), prefixed()).await?;
        let challenges = client
            .get(self.keys.acme_dns_challenges(), prefixed())
            .await?;
        let mut view = ClusterView::default();
        for kv in members
            .kvs()
            .iter()
            .chain(admin.kvs())
            .chain(challenges.kvs())
        {
            if let Ok(key) = kv.key_str() {
                view.apply_put(&self.keys, key, kv.value());
            }
        }
        // Admin and challenges were read at a revision at or after `revision`: replaying their
        // events from `revision + 1` converges to the same state.
        let mut stream = client
            .watch(
                format!("{}/", self.config.prefix),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;
        tracing::info!(
            members = view.members.len(),
            drained = view.admin.len(),
            revision,
            "following etcd"
        );
        self.publish(view.clone());
        self.status.set_connected(revision);
        self.metrics.connected.set(1);
        backoff.reset();
        while let Some(response) = stream.message().await? {
            if response.canceled() {
                return Err(ClusterError::Lost(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                )));
            }
            let mut changed = false;
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Ok(key) = kv.key_str() else { continue };
                changed |= match event.event_type() {
                    EventType::Put => view.apply_put(&self.keys, key, kv.value()),
                    EventType::Delete => view.apply_delete(&self.keys, key),
                };
                self.status.set_revision(kv.mod_revision());
            }
            if changed {
                self.publish(view.clone());
            }
        }
        Ok(())
    }

    fn publish(&self, view: ClusterView) {
        self.metrics
            .members
            .set(i64::try_from(view.members.len()).unwrap_or(i64::MAX));
        self.metrics
            .drained
            .set(i64::try_from(view.admin.len()).unwrap_or(i64::MAX));
        if let Some(path) = &self.config.state_file
            && **self.sender.borrow() != view
            && let Err(error) = save_state(path, &view)
        {
            tracing::warn!(path = %path.display(), %error, "cannot save the membership");
        }
        self.sender.send_if_modified(|current| {
            if **current == view {
                false
            } else {
                *current = Arc::new(view);
                true
            }
        });
    }
}

/// The membership saved by a previous run, if readable.
fn load_state(path: &std::path::Path) -> Option<ClusterView> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice::<ClusterView>(&bytes) {
        Ok(view) => {
            tracing::info!(
                path = %path.display(),
                members = view.members.len(),
                "starting from the membership saved by the last run"
            );
            Some(view)
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "ignoring an unreadable saved membership");
            None
        }
    }
}

/// Writes `view` beside `path` and renames it into place, so that a crash
/// never leaves half a file.
fn save_state(path: &std::path::Path, view: &ClusterView) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(view)?)?;
    std::fs::rename(&temporary, path)
}
