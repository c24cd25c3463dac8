//! Keeping this edge's member record alive in etcd.
//!
//! One session: grant a lease of `[announce] ttl`, put the record under it,
//! renew it every third of the TTL, and put the record again when the
//! edge starts or stops draining. A lost lease (etcd away longer than the
//! TTL) or a lost connection starts a new session after a backoff. On a
//! clean stop the lease is revoked, so geodns drops the edge at once
//! instead of after the TTL.

use std::time::Duration;

use etcd_client::PutOptions;
use prometheus_client::metrics::gauge::Gauge;
use shared::EdgeStatus;
use shared::cluster::{Backoff, ClusterError, EtcdConfig, MemberRecord, decode, encode};
use tokio_util::sync::CancellationToken;

use crate::proxy::Edge;

/// Announces one edge.
pub struct Announcer {
    etcd: EtcdConfig,
    record: MemberRecord,
    ttl: Duration,
    edge: Edge,
    announced: Gauge,
}

impl Announcer {
    /// Announces `record` with a lease of `ttl`, following `edge`'s drain state.
    /// `announced` is set to 1 while the record is live.
    pub fn new(
        etcd: EtcdConfig,
        record: MemberRecord,
        ttl: Duration,
        edge: Edge,
        announced: Gauge,
    ) -> Self {
        Self {
            etcd,
            record,
            ttl,
            edge,
            announced,
        }
    }

    /// Announces until `leave` is cancelled, then withdraws.
    pub async fn run(self, leave: CancellationToken) {
        let mut backoff = Backoff::default();
        loop {
            let ended = self.session(&leave, &mut backoff).await;
            self.announced.set(0);
            match ended {
                Ok(()) => return,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, retry_in = ?delay, "cannot announce this edge in etcd; still serving");
                    tokio::select! {
                        _ = leave.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn current_record(&self) -> MemberRecord {
        let mut record = self.record.clone();
        record.status = if self.edge.is_draining() {
            EdgeStatus::Draining
        } else {
            EdgeStatus::Up
        };
        record
    }

    /// Refuses to take over a name another live edge announces (two edges
    /// with one `server.name` would withdraw each other). A record with our
    /// own fill URL is an earlier run of this edge and is replaced.
    async fn check_name_is_ours(
        &self,
        client: &mut etcd_client::Client,
        key: &str,
    ) -> Result<(), ClusterError> {
        let existing = client.get(key, None).await?;
        let Some(kv) = existing.kvs().first() else {
            return Ok(());
        };
        match decode::<MemberRecord>(key, kv.value()) {
            Ok(other) if other.fill_url != self.record.fill_url => {
                Err(ClusterError::Config(format!(
                    "another edge announces the name \"{}\" (fill_url {}, admin {}); give each edge its own server.name",
                    self.record.name, other.fill_url, other.admin_url
                )))
            }
            _ => Ok(()),
        }
    }

    async fn session(
        &self,
        leave: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), ClusterError> {
        let mut client = self.etcd.connect().await?;
        let key = self.etcd.keys().member(&self.record.name);
        self.check_name_is_ours(&mut client, &key).await?;
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = client.lease_grant(ttl, None).await?.id();
        let mut announced = self.current_record();
        client
            .put(
                key.clone(),
                encode(&announced),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        tracing::info!(key, lease, ttl, "announced in etcd");
        self.announced.set(1);
        backoff.reset();
        let (mut keeper, mut renewals) = client.lease_keep_alive(lease).await?;
        let mut tick = tokio::time::interval(self.ttl / 3);
        loop {
            tokio::select! {
                _ = leave.cancelled() => {
                    let revoked = tokio::time::timeout(
                        Duration::from_secs(2),
                        client.lease_revoke(lease),
                    )
                    .await;
                    match revoked {
                        Ok(Ok(_)) => tracing::info!(key, "withdrawn from etcd"),
                        _ => tracing::warn!(key, "could not withdraw from etcd; the lease will expire"),
                    }
                    return Ok(());
                }
                _ = tick.tick() => {
                    keeper.keep_alive().await?;
                }
                renewal = renewals.message() => match renewal? {
                    Some(renewal) if renewal.ttl() > 0 => {}
                    _ => {
                        return Err(ClusterError::Lost(format!("lease {lease} expired")));
                    }
                },
                _ = self.edge.draining_changed() => {}
            }
            let wanted = self.current_record();
            if wanted != announced {
                client
                    .put(
                        key.clone(),
                        encode(&wanted),
                        Some(PutOptions::new().with_lease(lease)),
                    )
                    .await?;
                tracing::info!(key, status = %wanted.status, "announcement updated");
                announced = wanted;
            }
        }
    }
}
