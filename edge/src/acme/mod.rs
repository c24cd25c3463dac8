//! Automatic certificates from an ACME CA (RFC 8555), with instant-acme.
//!
//! For each `[[acme.certificates]]` a task keeps a valid certificate in the
//! state directory ([`store`]) and served by [`TlsTermination`]:
//!
//! - at start, the kept certificate is served at once; one missing, unreadable
//!   or not covering the configured names is ordered at once;
//! - the next order is planned in the CA's suggested renewal window (RFC 9773)
//!   when the CA offers renewal information, else at about two thirds of the
//!   lifetime, spread at random ([`renewal`]);
//! - the CA validates each name by HTTP-01 (answered by the plain listener
//!   through [`Challenges::http_answer`]) or TLS-ALPN-01 (answered by the TLS
//!   listener through [`Challenges::tls_alpn_certificate`]);
//! - a failed order is retried with exponential backoff, the current
//!   certificate serving meanwhile; every failure is logged with the CA's
//!   reason and counted;
//! - with `[cluster]`, one edge orders each certificate and every edge
//!   serves it and answers its challenges ([`cluster`]).

mod account;
mod challenges;
mod cluster;
mod metrics;
mod order;
pub mod renewal;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{Account, CertificateIdentifier};
use tokio_util::sync::CancellationToken;

pub use self::account::AccountError;
pub use self::challenges::{ACME_TLS_ALPN, ChallengeError, Challenges, HTTP_CHALLENGE_PATH};
pub use self::metrics::AcmeMetrics;
pub use self::order::OrderError;
use crate::config::{AcmeConfig, CertificateFiles};
use crate::tls::{Certificate, CertificateError, TlsTermination};

/// The longest single sleep: long waits are cut so that a clock that jumps
/// (a suspended machine) is noticed within this.
const LONGEST_SLEEP: Duration = Duration::from_secs(3600);

/// Bounds on how soon and how late the CA may ask to be asked again about
/// renewal (its `Retry-After`).
const RECHECK_BOUNDS: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(86_400));

/// The certificate files `[acme]` keeps, for [`TlsTermination`] to serve.
pub fn managed_files(config: &AcmeConfig) -> Vec<CertificateFiles> {
    config
        .certificates
        .iter()
        .map(|certificate| store::certificate_files(&config.state_directory, &certificate.names))
        .collect()
}

/// How long to wait before looking again when another edge of the
/// cluster holds a certificate's lock.
const LOCKED_RECHECK: Duration = Duration::from_secs(60);

/// What every certificate's task shares.
struct Shared {
    config: AcmeConfig,
    /// `server.name`, which spreads renewal times and names the orderer.
    node: String,
    cluster: Option<cluster::AcmeCluster>,
    challenges: Arc<Challenges>,
    termination: Arc<TlsTermination>,
    metrics: Arc<AcmeMetrics>,
}

/// What `run` is given.
pub struct AcmeTasks {
    /// `[acme]`.
    pub config: AcmeConfig,
    /// `[cluster]`, to order once for the fleet.
    pub etcd: Option<shared::cluster::EtcdConfig>,
    /// `server.name`.
    pub node: String,
    /// The answers served by the listeners.
    pub challenges: Arc<Challenges>,
    /// Where new certificates are served.
    pub termination: Arc<TlsTermination>,
    /// Metrics.
    pub metrics: Arc<AcmeMetrics>,
}

/// Follows the cluster's certificates and challenges (with `[cluster]`),
/// opens the account (retrying while the CA cannot be reached), then keeps
/// every configured certificate until `shutdown`.
pub async fn run(tasks: AcmeTasks, shutdown: CancellationToken) {
    let AcmeTasks {
        config,
        etcd,
        node,
        challenges,
        termination,
        metrics,
    } = tasks;
    let shared = Arc::new(Shared {
        cluster: etcd
            .clone()
            .map(|etcd| cluster::AcmeCluster::new(etcd, &node)),
        config,
        node,
        challenges,
        termination,
        metrics,
    });
    if let Some(etcd) = etcd {
        cluster::follow(etcd, shared.clone(), shutdown.clone());
    }
    let mut failures = 0;
    let account = loop {
        match account::open(&shared.config).await {
            Ok(account) => break account,
            Err(error) => {
                failures += 1;
                shared.metrics.account_failed();
                let wait = renewal::backoff(failures);
                tracing::error!(
                    error = %shared::report::describe(&error),
                    retry_in = %humantime::format_duration(wait),
                    "ACME account unavailable; no certificate can be ordered"
                );
                if !sleep(wait, &shutdown).await {
                    return;
                }
            }
        }
    };
    for certificate in &shared.config.certificates {
        tokio::spawn(keep(
            shared.clone(),
            account.clone(),
            certificate.names.clone(),
            shutdown.clone(),
        ));
    }
}

/// When to order a certificate next.
struct Plan {
    /// When to order.
    at: SystemTime,
    /// The certificate being replaced, told to a CA with renewal information.
    replaces: Option<CertificateIdentifier<'static>>,
    /// When to ask the CA again (its `Retry-After`), if before `at`.
    recheck: Option<SystemTime>,
}

/// Keeps the certificate for `names` valid until `shutdown`.
async fn keep(
    shared: Arc<Shared>,
    account: Account,
    names: Vec<String>,
    shutdown: CancellationToken,
) {
    let files = store::certificate_files(&shared.config.state_directory, &names);
    let label = names[0].clone();
    let mut failures = 0;
    loop {
        let plan = plan(&account, &files, &names, &shared.node).await;
        shared.metrics.next_order(&label, plan.at);
        let wake = plan.recheck.map_or(plan.at, |recheck| recheck.min(plan.at));
        if !sleep_until(wake, &shutdown).await {
            return;
        }
        // A certificate another edge stored meanwhile moves the plan.
        let plan = self::plan(&account, &files, &names, &shared.node).await;
        if SystemTime::now() < plan.at {
            continue;
        }
        let attempt = tokio::select! {
            attempt = shared.attempt(&account, &names, &files, plan.replaces) => attempt,
            _ = shutdown.cancelled() => return,
        };
        let wait = match attempt {
            Ok(Attempt::Issued) => {
                failures = 0;
                continue;
            }
            Ok(Attempt::Adopted) => continue,
            Ok(Attempt::Locked(holder)) => {
                tracing::info!(
                    certificate = %label,
                    holder,
                    "another edge is ordering this certificate; looking again in a minute"
                );
                LOCKED_RECHECK
            }
            Err(error) => {
                failures += 1;
                shared.metrics.ordered(false);
                let wait = renewal::backoff(failures);
                tracing::error!(
                    certificate = %label,
                    %error,
                    retry_in = %humantime::format_duration(wait),
                    "ACME order failed; the current certificate (if any) keeps serving"
                );
                wait
            }
        };
        if !sleep(wait, &shutdown).await {
            return;
        }
    }
}

/// What one attempt to renew came to.
enum Attempt {
    /// Ordered, saved and served.
    Issued,
    /// Another edge had stored a newer certificate, now served here.
    Adopted,
    /// Another edge (named) holds the lock.
    Locked(String),
}

impl Shared {
    /// Orders the certificate for `names`: directly when alone, under its
    /// lock in a cluster, where a newer stored certificate is taken instead.
    async fn attempt(
        &self,
        account: &Account,
        names: &[String],
        files: &CertificateFiles,
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<Attempt, String> {
        let label = &names[0];
        let describe = |error: &(dyn std::error::Error + 'static)| shared::report::describe(error);
        let mut held = match &self.cluster {
            None => None,
            Some(cluster) => match cluster.try_lock(label).await {
                Ok(Ok(held)) => Some(held),
                Ok(Err(holder)) => return Ok(Attempt::Locked(holder)),
                Err(error) => return Err(format!("etcd: {}", describe(&error))),
            },
        };
        if let Some(lock) = held.as_mut() {
            match lock.stored(label).await {
                Ok(Some(record)) if self.adopt(names, &record) => {
                    if let Some(lock) = held.take() {
                        lock.release().await;
                    }
                    return Ok(Attempt::Adopted);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(certificate = %label, error = %describe(&error), "cannot read the stored ACME certificate; ordering")
                }
            }
        }
        tracing::info!(certificate = %label, names = ?names, "ordering an ACME certificate");
        let ordered = order::obtain(
            account,
            names,
            self.config.challenge,
            &self.challenges,
            held.as_mut(),
            replaces,
        )
        .await;
        let result = match ordered {
            // Served here first: this edge's own follower then finds the
            // stored record no newer than what it serves.
            Ok(issued) => {
                let installed = self.install(names, files, &issued.chain_pem, &issued.key_pem);
                if installed.is_ok()
                    && let Some(held) = held.as_mut()
                    && let Err(error) = held
                        .store(label, names, &issued.chain_pem, &issued.key_pem)
                        .await
                {
                    tracing::warn!(certificate = %label, error = %describe(&error), "the new ACME certificate is served here but not stored for the other edges");
                }
                installed.map(|()| Attempt::Issued)
            }
            Err(error) => Err(describe(&error)),
        };
        if let Some(held) = held {
            held.release().await;
        }
        result
    }

    /// Saves and serves a newly issued certificate.
    fn install(
        &self,
        names: &[String],
        files: &CertificateFiles,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<(), String> {
        store::save_certificate(files, chain_pem, key_pem).map_err(|error| {
            format!(
                "{}: cannot save the certificate: {error}",
                files.certificate.display()
            )
        })?;
        self.metrics.ordered(true);
        match self.termination.reload() {
            Ok(_) => {
                tracing::info!(certificate = %names[0], file = %files.certificate.display(), "ACME certificate issued and served")
            }
            Err(error) => {
                tracing::error!(certificate = %names[0], %error, "ACME certificate issued but not loaded; the current certificates keep serving")
            }
        }
        Ok(())
    }

    /// Serves `record` (stored by an edge of the cluster) when it covers
    /// `names` and outlives the certificate in hand; whether it did.
    fn adopt(&self, names: &[String], record: &cluster::CertificateRecord) -> bool {
        let files = store::certificate_files(&self.config.state_directory, names);
        let provider = crate::tls::provider();
        let theirs = match Certificate::from_pem(
            &files,
            record.chain_pem.as_bytes(),
            record.key_pem.as_bytes(),
            &provider,
        ) {
            Ok(theirs) => theirs,
            Err(error) => {
                tracing::warn!(certificate = %names[0], ordered_by = record.ordered_by, %error, "ignoring a stored ACME certificate");
                return false;
            }
        };
        if !names.iter().all(|name| theirs.names.covers_exact(name)) {
            return false;
        }
        let newer = Certificate::load(&files, &provider)
            .map_or(true, |ours| theirs.not_after > ours.not_after);
        if !newer {
            return false;
        }
        if let Err(error) = store::save_certificate(&files, &record.chain_pem, &record.key_pem) {
            tracing::error!(certificate = %names[0], %error, "cannot save the ACME certificate from the cluster");
            return false;
        }
        match self.termination.reload() {
            Ok(_) => {
                tracing::info!(certificate = %names[0], ordered_by = record.ordered_by, "ACME certificate from the cluster served")
            }
            Err(error) => {
                tracing::error!(certificate = %names[0], %error, "ACME certificate from the cluster not loaded")
            }
        }
        true
    }
}

/// Decides when the certificate in `files` is next ordered.
async fn plan(account: &Account, files: &CertificateFiles, names: &[String], node: &str) -> Plan {
    let now = SystemTime::now();
    let at_once = Plan {
        at: now,
        replaces: None,
        recheck: None,
    };
    let certificate = match Certificate::load(files, &crate::tls::provider()) {
        Ok(certificate) => certificate,
        Err(CertificateError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return at_once;
        }
        Err(error) => {
            tracing::warn!(%error, "the kept ACME certificate cannot be used; ordering a new one");
            return at_once;
        }
    };
    if let Some(missing) = names
        .iter()
        .find(|name| !certificate.names.covers_exact(name))
    {
        tracing::info!(
            certificate = %names[0],
            missing = %missing,
            "the kept ACME certificate does not cover every configured name; ordering a new one"
        );
        return at_once;
    }
    let leaf = certificate.key.end_entity_cert().ok();
    let random = spread(leaf.map_or(&[][..], |der| der.as_ref()), node);
    let identifier = leaf
        .and_then(|der| CertificateIdentifier::try_from(der).ok())
        .map(CertificateIdentifier::into_owned);
    if let Some(identifier) = identifier {
        match account.renewal_info(&identifier).await {
            Ok((info, retry_after)) => {
                let window = &info.suggested_window;
                let retry_after = retry_after.clamp(RECHECK_BOUNDS.0, RECHECK_BOUNDS.1);
                return Plan {
                    at: renewal::in_window(window.start.into(), window.end.into(), random),
                    replaces: Some(identifier),
                    recheck: Some(now + retry_after),
                };
            }
            Err(instant_acme::Error::Unsupported(_)) => {}
            Err(error) => tracing::debug!(
                certificate = %names[0],
                error = %shared::report::describe(&error),
                "no renewal information from the CA; renewing by lifetime"
            ),
        }
    }
    Plan {
        at: renewal::by_lifetime(
            renewal::Validity {
                not_before: certificate.not_before,
                not_after: certificate.not_after,
            },
            random,
        ),
        replaces: None,
        recheck: None,
    }
}

/// A fraction in [0, 1) fixed for one certificate on one edge: the same
/// plan every time it is made (across restarts too), different on each
/// edge and for each certificate.
fn spread(leaf: &[u8], node: &str) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    leaf.hash(&mut hasher);
    node.hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Sleeps until `at` by the wall clock; false when `shutdown` came first.
async fn sleep_until(at: SystemTime, shutdown: &CancellationToken) -> bool {
    loop {
        let Ok(left) = at.duration_since(SystemTime::now()) else {
            return true;
        };
        if left.is_zero() {
            return true;
        }
        if !sleep(left.min(LONGEST_SLEEP), shutdown).await {
            return false;
        }
    }
}

/// Sleeps for `duration`; false when `shutdown` came first.
async fn sleep(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = shutdown.cancelled() => false,
    }
}
