//! ACME across a cluster (`[acme]` with `[cluster]`): one edge orders each
//! certificate, every edge serves it and answers its challenges, so that a
//! fleet asks the CA for one certificate, not one per edge (Let's Encrypt
//! issues five per week for one set of names). Keys are listed in
//! [`shared::cluster`].
//!
//! - **Ordering.** An edge whose certificate is due takes the certificate's
//!   lock: a key put only if absent, under a lease kept alive while it
//!   orders ([`AcmeCluster::try_lock`]). An edge that finds the lock held
//!   looks again a minute later, by which time the holder has usually
//!   stored the new certificate and every edge serves it.
//! - **Lock held.** The edge first reads the stored certificate: one newer
//!   than its own (renewed by another edge meanwhile) is taken instead of
//!   ordering. Challenge answers are put under the lock's lease, so they
//!   vanish with it, also when the ordering edge dies.
//! - **Following** ([`follow`]): every edge watches `<prefix>/acme/`,
//!   serves the challenge answers while they exist, and writes each stored
//!   certificate newer than its own to its state directory and serves it.
//!
//! Without etcd, each edge keeps serving what it has; a due certificate is
//! ordered once etcd is back (renewal starts with a third of the lifetime
//! left, weeks for a 90-day certificate).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use serde::{Deserialize, Serialize};
use shared::cluster::{
    AcmeChallengeRecord, Backoff, ClusterError, EtcdClient, EtcdConfig, KeyLayout, decode, encode,
};
use tokio_util::sync::CancellationToken;

use super::Shared;

/// The lease of a lock, kept alive every third of it while ordering: an
/// edge that dies holding it frees the name this long after.
const LOCK_TTL: Duration = Duration::from_secs(30);

/// A certificate as stored in etcd: the chain, its key, and who ordered it.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct CertificateRecord {
    /// The names ordered.
    pub names: Vec<String>,
    /// The chain, PEM.
    pub chain_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The edge that ordered it.
    pub ordered_by: String,
}

impl std::fmt::Debug for CertificateRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every log line.
        f.debug_struct("CertificateRecord")
            .field("names", &self.names)
            .field("ordered_by", &self.ordered_by)
            .finish_non_exhaustive()
    }
}

/// This edge's view of the cluster, for ordering.
pub(super) struct AcmeCluster {
    etcd: EtcdConfig,
    node: String,
}

/// A certificate's lock, held; released (with the challenge answers put
/// under it) by [`Held::release`], or by its lease expiring.
pub(super) struct Held {
    client: EtcdClient,
    lease: i64,
    keeper: tokio::task::JoinHandle<()>,
    keys: KeyLayout,
    node: String,
}

impl AcmeCluster {
    /// Orders as edge `node` through `etcd`.
    pub(super) fn new(etcd: EtcdConfig, node: &str) -> Self {
        Self {
            etcd,
            node: node.to_string(),
        }
    }

    /// Takes the lock of `certificate` (its first name); `Err` with the
    /// holder's name when another edge has it.
    pub(super) async fn try_lock(
        &self,
        certificate: &str,
    ) -> Result<Result<Held, String>, ClusterError> {
        let mut client = self.etcd.connect().await?;
        let ttl = i64::try_from(LOCK_TTL.as_secs()).unwrap_or(30);
        let lease = client.lease_grant(ttl, None).await?.id();
        let (mut keeper, mut renewals) = client.lease_keep_alive(lease).await?;
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                if keeper.keep_alive().await.is_err() || renewals.message().await.is_err() {
                    return;
                }
            }
        });
        let keys = self.etcd.keys();
        let key = keys.acme_lock(certificate);
        let take = Txn::new()
            .when(vec![Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![TxnOp::put(
                key.clone(),
                self.node.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else(vec![TxnOp::get(key, None)]);
        let held = Held {
            client,
            lease,
            keeper,
            keys,
            node: self.node.clone(),
        };
        let mut held = held;
        let response = match held.client.txn(take).await {
            Ok(response) => response,
            Err(error) => {
                held.release().await;
                return Err(error.into());
            }
        };
        if response.succeeded() {
            return Ok(Ok(held));
        }
        let holder = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => get
                    .kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                _ => None,
            })
            .unwrap_or_else(|| "another edge".into());
        held.release().await;
        Ok(Err(holder))
    }
}

impl Held {
    /// The certificate stored for `certificate`, if any.
    pub(super) async fn stored(
        &mut self,
        certificate: &str,
    ) -> Result<Option<CertificateRecord>, ClusterError> {
        let key = self.keys.acme_certificate(certificate);
        let response = self.client.get(key.clone(), None).await?;
        response
            .kvs()
            .first()
            .map(|kv| decode::<CertificateRecord>(&key, kv.value()))
            .transpose()
    }

    /// Publishes a challenge answer for every edge (or geodns) to serve
    /// while the lock is held.
    pub(super) async fn publish(
        &mut self,
        record: &AcmeChallengeRecord,
    ) -> Result<(), ClusterError> {
        let key = format!("{}{}", self.keys.acme_challenges(), record.id());
        self.client
            .put(
                key,
                encode(record),
                Some(PutOptions::new().with_lease(self.lease)),
            )
            .await?;
        Ok(())
    }

    /// Stores a newly issued certificate for every edge to serve.
    pub(super) async fn store(
        &mut self,
        certificate: &str,
        names: &[String],
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<(), ClusterError> {
        let record = CertificateRecord {
            names: names.to_vec(),
            chain_pem: chain_pem.to_string(),
            key_pem: key_pem.to_string(),
            ordered_by: self.node.clone(),
        };
        self.client
            .put(
                self.keys.acme_certificate(certificate),
                encode(&record),
                None,
            )
            .await?;
        Ok(())
    }

    /// Frees the lock and withdraws the answers put under it.
    pub(super) async fn release(mut self) {
        self.keeper.abort();
        if let Err(error) = self.client.lease_revoke(self.lease).await {
            tracing::debug!(%error, "ACME lock lease not revoked; it expires on its own");
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Follows `<prefix>/acme/` until `shutdown` (see the module docs).
pub(super) fn follow(etcd: EtcdConfig, shared: Arc<Shared>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            let error = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = session(&etcd, &shared, &mut backoff) => match result {
                    Ok(()) => ClusterError::Lost("etcd closed the ACME watch".into()),
                    Err(error) => error,
                },
            };
            let delay = backoff.next_delay();
            tracing::warn!(%error, retry_in = ?delay, "ACME watch lost; serving the certificates in hand");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    });
}

async fn session(
    etcd: &EtcdConfig,
    shared: &Shared,
    backoff: &mut Backoff,
) -> Result<(), ClusterError> {
    let mut client = etcd.connect().await?;
    let keys = etcd.keys();
    let prefix = keys.acme();
    let snapshot = client
        .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
        .await?;
    shared.challenges.clear_remote();
    for kv in snapshot.kvs() {
        apply_put(shared, &keys, kv.key_str().unwrap_or_default(), kv.value());
    }
    let revision = snapshot.header().map_or(0, |header| header.revision());
    let mut stream = client
        .watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    backoff.reset();
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            return Err(ClusterError::Lost(format!(
                "etcd cancelled the ACME watch: {}",
                response.cancel_reason()
            )));
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = kv.key_str().unwrap_or_default();
            match event.event_type() {
                EventType::Put => apply_put(shared, &keys, key, kv.value()),
                EventType::Delete => shared.challenges.remove_remote(key),
            }
        }
    }
    Ok(())
}

fn apply_put(shared: &Shared, keys: &KeyLayout, key: &str, value: &[u8]) {
    if key.starts_with(&keys.acme_challenges()) {
        match decode::<AcmeChallengeRecord>(key, value) {
            Ok(record) => {
                if let Err(error) = shared.challenges.add_remote(key, &record) {
                    tracing::warn!(%error, "ignoring a published ACME challenge");
                }
            }
            Err(error) => tracing::warn!(%error, "ignoring a published ACME challenge"),
        }
    } else if let Some(name) = key.strip_prefix(&keys.acme_certificates()) {
        let Some(configured) = shared
            .config
            .certificates
            .iter()
            .find(|certificate| certificate.names.first().is_some_and(|first| first == name))
        else {
            return;
        };
        match decode::<CertificateRecord>(key, value) {
            Ok(record) => {
                shared.adopt(&configured.names, &record);
            }
            Err(error) => tracing::warn!(%error, "ignoring a stored ACME certificate"),
        }
    }
}
