//! Purges across the cluster.
//!
//! Publishing: a purge sent to this edge's admin API is applied here and
//! written under `<prefix>/purges/` (see [`shared::cluster::publish_purge`]).
//!
//! Following: a watch on that prefix applies every purge published by
//! others. The last revision applied is remembered across reconnections, so
//! an edge cut off for a while catches up on what it missed; if etcd has
//! compacted that history away, the edge cannot tell what changed and
//! purges everything.

use std::time::{Duration, Instant};

use etcd_client::{EventType, GetOptions, WatchOptions};
use shared::cluster::{
    Backoff, ClusterError, EtcdClient, EtcdConfig, PurgeRecord, PurgeScope, decode,
};
use tokio_util::sync::CancellationToken;

use super::EdgeClusterMetrics;
use crate::proxy::Edge;

/// Publishes purges on behalf of the admin API, over one lazily made
/// connection, putting the records of half an hour under one lease.
pub struct PurgePublisher {
    etcd: EtcdConfig,
    from: String,
    client: tokio::sync::Mutex<Option<Publishing>>,
}

struct Publishing {
    client: EtcdClient,
    lease: Option<(i64, Instant)>,
}

/// How long one lease carries new purge records; they then live between
/// `PURGE_RETENTION - LEASE_REUSE` and `PURGE_RETENTION`.
const LEASE_REUSE: Duration = Duration::from_secs(30 * 60);

impl PurgePublisher {
    /// Publishes as edge `from`.
    pub fn new(etcd: EtcdConfig, from: &str) -> Self {
        Self {
            etcd,
            from: from.to_string(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Publishes `scope`; returns the etcd revision of the record.
    pub async fn publish(&self, scope: PurgeScope) -> Result<i64, ClusterError> {
        let mut state = self.client.lock().await;
        if state.is_none() {
            *state = Some(Publishing {
                client: self.etcd.connect().await?,
                lease: None,
            });
        }
        let Some(publishing) = state.as_mut() else {
            return Err(ClusterError::Lost("no etcd connection".into()));
        };
        let result = self.publish_on(publishing, scope).await;
        if result.is_err() {
            // Reconnect (and take a new lease) next time rather than reuse a
            // broken channel.
            *state = None;
        }
        result
    }

    async fn publish_on(
        &self,
        publishing: &mut Publishing,
        scope: PurgeScope,
    ) -> Result<i64, ClusterError> {
        let lease = match publishing.lease {
            Some((lease, granted)) if granted.elapsed() < LEASE_REUSE => lease,
            _ => {
                let lease = shared::cluster::grant_purge_lease(&mut publishing.client).await?;
                publishing.lease = Some((lease, Instant::now()));
                lease
            }
        };
        shared::cluster::publish_purge(&mut publishing.client, &self.etcd, scope, &self.from, lease)
            .await
    }
}

/// Applies the purges others publish.
pub struct Follower {
    etcd: EtcdConfig,
    edge: Edge,
    metrics: EdgeClusterMetrics,
    /// The last revision applied (or known to need nothing).
    applied: Option<i64>,
}

impl Follower {
    /// Follows purges for `edge`.
    pub fn new(etcd: EtcdConfig, edge: Edge, metrics: EdgeClusterMetrics) -> Self {
        Self {
            etcd,
            edge,
            metrics,
            applied: None,
        }
    }

    /// Runs until `shutdown`.
    pub fn spawn(mut self, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut backoff = Backoff::default();
            loop {
                let error = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    result = self.session(&mut backoff) => match result {
                        Ok(()) => ClusterError::Lost("etcd closed the purge watch".into()),
                        Err(error) => error,
                    },
                };
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in = ?delay, "purge watch lost; catching up when etcd is back");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        });
    }

    async fn session(&mut self, backoff: &mut Backoff) -> Result<(), ClusterError> {
        let mut client = self.etcd.connect().await?;
        let prefix = self.etcd.keys().purges();
        let start = match self.applied {
            Some(revision) => revision + 1,
            None => {
                // A fresh start has an empty cache: nothing older matters.
                let now = client
                    .get(
                        prefix.clone(),
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                    .await?;
                let revision = now.header().map_or(0, |header| header.revision());
                self.applied = Some(revision);
                revision + 1
            }
        };
        let mut stream = client
            .watch(
                prefix,
                Some(WatchOptions::new().with_prefix().with_start_revision(start)),
            )
            .await?;
        backoff.reset();
        tracing::debug!(from_revision = start, "following purges");
        while let Some(response) = stream.message().await? {
            if response.compact_revision() > 0 {
                let removed = self.edge.store().clear();
                self.metrics.full_purges.inc();
                tracing::warn!(
                    missed_from = start,
                    compacted_to = response.compact_revision(),
                    removed,
                    "purge history compacted while away: purged everything"
                );
                self.applied = Some(response.compact_revision() - 1);
                return Err(ClusterError::Lost("purge history compacted".into()));
            }
            if response.canceled() {
                return Err(ClusterError::Lost(format!(
                    "etcd cancelled the purge watch: {}",
                    response.cancel_reason()
                )));
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                if event.event_type() == EventType::Put {
                    self.apply(kv.key_str().unwrap_or_default(), kv.value());
                }
                self.applied = Some(kv.mod_revision());
            }
        }
        Ok(())
    }

    fn apply(&self, key: &str, value: &[u8]) {
        match decode::<PurgeRecord>(key, value) {
            Ok(record) if record.from == self.edge.name() => {}
            Ok(record) => {
                let removed = self.edge.purge(&record.scope);
                self.metrics.purges_applied.inc();
                tracing::info!(from = record.from, scope = ?record.scope, removed, "cluster purge applied");
            }
            Err(error) => tracing::warn!(%error, "ignoring purge record"),
        }
    }
}
