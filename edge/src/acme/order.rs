//! One order (RFC 8555 section 7.4): ask for the names, answer each
//! authorization's challenge, wait for the CA to validate, send a CSR for a
//! fresh ECDSA P-256 key, and fetch the chain.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};

use super::challenges::{ChallengeError, Challenges, Published, encode_hex};
use super::cluster::Held;
use crate::config::AcmeChallenge;

/// How long the CA may take to validate, then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(180));

/// A certificate chain and its private key, both PEM.
pub(super) struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Why an order did not give a certificate.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The CA refused or failed a request.
    #[error("{step}: {source}")]
    Ca {
        /// What was being done.
        step: &'static str,
        /// What the CA or the connection said.
        source: instant_acme::Error,
    },
    /// The CA does not offer the configured challenge for a name.
    #[error("{name}: the CA offers no {wanted} challenge (it offers {offered})")]
    NoChallenge {
        /// The name.
        name: String,
        /// `acme.challenge`.
        wanted: &'static str,
        /// What it offers.
        offered: String,
    },
    /// An authorization can no longer be satisfied.
    #[error("{name}: the authorization is {status:?}")]
    Authorization {
        /// The name.
        name: String,
        /// Its state.
        status: AuthorizationStatus,
    },
    /// The challenge answer could not be prepared.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// Validation failed: why, per name, as the CA says.
    #[error("validation failed: {0}")]
    Invalid(String),
    /// The certificate request could not be made.
    #[error("certificate request: {0}")]
    Request(#[from] rcgen::Error),
    /// The answers could not be published to the other edges.
    #[error("publishing the challenge answers in etcd: {0}")]
    Cluster(#[from] shared::cluster::ClusterError),
    /// DNS-01 answers are served by geodns, reached through etcd only.
    #[error("dns-01 needs [cluster]: geodns learns the answers through etcd")]
    NoCluster,
}

fn ca(step: &'static str) -> impl FnOnce(instant_acme::Error) -> OrderError {
    move |source| OrderError::Ca { step, source }
}

fn challenge_type(challenge: AcmeChallenge) -> (ChallengeType, &'static str) {
    match challenge {
        AcmeChallenge::Http01 => (ChallengeType::Http01, "http-01"),
        AcmeChallenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
        AcmeChallenge::Dns01 => (ChallengeType::Dns01, "dns-01"),
    }
}

/// How long other edges get to see published answers before the CA is
/// told to validate (an etcd watch delivers in milliseconds).
const PROPAGATION: Duration = Duration::from_secs(1);

/// Orders a certificate for `names`, proving control with `challenge`;
/// `replaces` names the certificate it renews, for a CA with renewal
/// information (RFC 9773 section 5). With `cluster`, the answers are also
/// published for the other edges, since the CA may reach any of them.
pub(super) async fn obtain(
    account: &Account,
    names: &[String],
    challenge: AcmeChallenge,
    challenges: &Arc<Challenges>,
    mut cluster: Option<&mut Held>,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, OrderError> {
    let identifiers: Vec<Identifier> = names
        .iter()
        .map(|name| Identifier::Dns(name.clone()))
        .collect();
    let mut request = NewOrder::new(&identifiers);
    if let Some(replaces) = replaces {
        request = request.replaces(replaces);
    }
    let mut order = account
        .new_order(&request)
        .await
        .map_err(ca("creating the order"))?;
    let (wanted, wanted_name) = challenge_type(challenge);
    // Answers stay published until the order is done either way.
    let mut published: Vec<Published> = Vec::new();
    let mut answers = 0;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(ca("fetching an authorization"))?;
        let name = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            status => return Err(OrderError::Authorization { name, status }),
        }
        let offered = authorization
            .challenges
            .iter()
            .map(|offered| format!("{:?}", offered.r#type))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(handle) = authorization.challenge(wanted.clone()) else {
            return Err(OrderError::NoChallenge {
                name,
                wanted: wanted_name,
                offered,
            });
        };
        let key_authorization = handle.key_authorization();
        let (local, record) = match challenge {
            AcmeChallenge::Http01 => (
                Some(challenges.publish_http(&handle.token, key_authorization.as_str())),
                shared::cluster::AcmeChallengeRecord::Http01 {
                    token: handle.token.clone(),
                    key_authorization: key_authorization.as_str().to_string(),
                },
            ),
            AcmeChallenge::TlsAlpn01 => (
                Some(challenges.publish_tls_alpn(&name, key_authorization.digest().as_ref())?),
                shared::cluster::AcmeChallengeRecord::TlsAlpn01 {
                    name: name.clone(),
                    digest: encode_hex(key_authorization.digest().as_ref()),
                },
            ),
            AcmeChallenge::Dns01 => {
                // A wildcard is validated at its base name (section 8.4).
                let base = match handle.identifier().identifier {
                    Identifier::Dns(base) => base.clone(),
                    other => format!("{other:?}"),
                };
                (
                    None,
                    shared::cluster::AcmeChallengeRecord::Dns01 {
                        name: base,
                        value: key_authorization.dns_value(),
                    },
                )
            }
        };
        match cluster.as_deref_mut() {
            Some(cluster) => cluster.publish(&record).await?,
            None if local.is_none() => return Err(OrderError::NoCluster),
            None => {}
        }
        published.extend(local);
        answers += 1;
    }
    if cluster.is_some() && answers > 0 {
        tokio::time::sleep(PROPAGATION).await;
    }
    // Every answer is in place before the CA is asked to check any.
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(ca("fetching an authorization"))?;
        if authorization.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut handle) = authorization.challenge(wanted.clone()) {
            handle
                .set_ready()
                .await
                .map_err(ca("telling the CA the challenge is ready"))?;
        }
    }
    let status = match order.poll_ready(&POLL).await {
        Ok(status) => status,
        Err(instant_acme::Error::Api(problem)) => {
            return Err(OrderError::Invalid(problem.to_string()));
        }
        Err(error) => return Err(ca("waiting for validation")(error)),
    };
    if status != OrderStatus::Ready {
        return Err(OrderError::Invalid(why_invalid(&mut order).await));
    }
    drop(published);
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(ca("finalizing the order"))?;
    let chain_pem = order
        .poll_certificate(&POLL)
        .await
        .map_err(ca("fetching the certificate"))?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// What the CA says about each failed challenge of an invalid order.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let Ok(mut authorization) = authorization else {
            continue;
        };
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        let name = state.identifier().to_string();
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!("{name}: {problem}"));
            }
        }
    }
    if reasons.is_empty() {
        "the order became invalid (the CA gave no reason)".into()
    } else {
        reasons.join("; ")
    }
}
