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
//!   reason and counted.

mod account;
mod challenges;
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

/// What every certificate's task shares.
struct Shared {
    config: AcmeConfig,
    challenges: Arc<Challenges>,
    termination: Arc<TlsTermination>,
    metrics: Arc<AcmeMetrics>,
}

/// Opens the account (retrying while the CA cannot be reached), then keeps
/// every configured certificate until `shutdown`.
pub async fn run(
    config: AcmeConfig,
    challenges: Arc<Challenges>,
    termination: Arc<TlsTermination>,
    metrics: Arc<AcmeMetrics>,
    shutdown: CancellationToken,
) {
    let mut failures = 0;
    let account = loop {
        match account::open(&config).await {
            Ok(account) => break account,
            Err(error) => {
                failures += 1;
                metrics.account_failed();
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
    let shared = Arc::new(Shared {
        config,
        challenges,
        termination,
        metrics,
    });
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
        let plan = plan(&account, &files, &names).await;
        shared.metrics.next_order(&label, plan.at);
        let wake = plan.recheck.map_or(plan.at, |recheck| recheck.min(plan.at));
        if !sleep_until(wake, &shutdown).await {
            return;
        }
        if SystemTime::now() < plan.at {
            continue;
        }
        tracing::info!(certificate = %label, names = ?names, "ordering an ACME certificate");
        let ordered = tokio::select! {
            ordered = order::obtain(
                &account,
                &names,
                shared.config.challenge,
                &shared.challenges,
                plan.replaces,
            ) => ordered,
            _ = shutdown.cancelled() => return,
        };
        let saved = ordered
            .map_err(|error| shared::report::describe(&error))
            .and_then(|issued| {
                store::save_certificate(&files, &issued.chain_pem, &issued.key_pem).map_err(
                    |error| {
                        format!(
                            "{}: cannot save the certificate: {error}",
                            files.certificate.display()
                        )
                    },
                )
            });
        match saved {
            Ok(()) => {
                failures = 0;
                shared.metrics.ordered(true);
                match shared.termination.reload() {
                    Ok(_) => {
                        tracing::info!(certificate = %label, file = %files.certificate.display(), "ACME certificate issued and served")
                    }
                    Err(error) => {
                        tracing::error!(certificate = %label, %error, "ACME certificate issued but not loaded; the current certificates keep serving")
                    }
                }
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
                if !sleep(wait, &shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Decides when the certificate in `files` is next ordered.
async fn plan(account: &Account, files: &CertificateFiles, names: &[String]) -> Plan {
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
    let random: f64 = rand::random();
    let identifier = certificate
        .key
        .end_entity_cert()
        .ok()
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
