//! The answers to the CA's challenges while an order is being validated:
//! HTTP-01 key authorizations by token (RFC 8555 section 8.3) and
//! TLS-ALPN-01 certificates by name (RFC 8737). Entries exist only for the
//! orders this edge placed, so their number is bounded by the configured
//! names, and each is removed when its order ends ([`Published`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// Where the CA fetches HTTP-01 key authorizations.
pub const HTTP_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737
/// section 6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Challenge answers being served.
pub struct Challenges {
    http: Mutex<HashMap<String, String>>,
    tls_alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges")
            .field("http", &self.http.lock().len())
            .field("tls_alpn", &self.tls_alpn.lock().len())
            .finish()
    }
}

/// Why a TLS-ALPN-01 certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the tls-alpn-01 certificate for {name}: {reason}")]
pub struct ChallengeError {
    name: String,
    reason: String,
}

impl Challenges {
    /// An empty set, signing TLS-ALPN-01 certificates with `provider`.
    pub fn new(provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(Self {
            http: Mutex::default(),
            tls_alpn: Mutex::default(),
            provider,
        })
    }

    /// The key authorization for an HTTP-01 request to `path`, if one of
    /// our orders published it.
    pub fn http_answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP_CHALLENGE_PATH)?;
        self.http.lock().get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for `name`, if an order is validating it.
    pub fn tls_alpn_certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.tls_alpn.lock().get(&name).cloned()
    }

    /// Serves `key_authorization` for `token` until the guard drops.
    pub(super) fn publish_http(
        self: &Arc<Self>,
        token: &str,
        key_authorization: &str,
    ) -> Published {
        self.http
            .lock()
            .insert(token.to_string(), key_authorization.to_string());
        Published {
            challenges: self.clone(),
            entry: Entry::Http(token.to_string()),
        }
    }

    /// Serves a TLS-ALPN-01 certificate for `name`, carrying the SHA-256
    /// `digest` of the key authorization, until the guard drops.
    pub(super) fn publish_tls_alpn(
        self: &Arc<Self>,
        name: &str,
        digest: &[u8],
    ) -> Result<Published, ChallengeError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let failed = |reason: String| ChallengeError {
            name: name.clone(),
            reason,
        };
        let mut params = rcgen::CertificateParams::new(vec![name.clone()])
            .map_err(|error| failed(error.to_string()))?;
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
        let key = rcgen::KeyPair::generate().map_err(|error| failed(error.to_string()))?;
        let certificate = params
            .self_signed(&key)
            .map_err(|error| failed(error.to_string()))?;
        let signing_key = self
            .provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            )))
            .map_err(|error| failed(error.to_string()))?;
        let certified = CertifiedKey::new(vec![certificate.der().clone()], signing_key);
        self.tls_alpn
            .lock()
            .insert(name.clone(), Arc::new(certified));
        Ok(Published {
            challenges: self.clone(),
            entry: Entry::TlsAlpn(name),
        })
    }
}

enum Entry {
    Http(String),
    TlsAlpn(String),
}

/// One published answer, withdrawn when dropped.
pub(super) struct Published {
    challenges: Arc<Challenges>,
    entry: Entry,
}

impl Drop for Published {
    fn drop(&mut self) {
        match &self.entry {
            Entry::Http(token) => {
                self.challenges.http.lock().remove(token);
            }
            Entry::TlsAlpn(name) => {
                self.challenges.tls_alpn.lock().remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_live_as_long_as_their_guard() {
        let challenges = Challenges::new(crate::tls::provider());
        let http = challenges.publish_http("token-1", "token-1.thumbprint");
        let tls = challenges
            .publish_tls_alpn("Cdn.Example.com.", &[7; 32])
            .unwrap();
        assert_eq!(
            challenges
                .http_answer("/.well-known/acme-challenge/token-1")
                .as_deref(),
            Some("token-1.thumbprint")
        );
        assert_eq!(
            challenges.http_answer("/.well-known/acme-challenge/other"),
            None
        );
        assert_eq!(challenges.http_answer("/token-1"), None);
        assert!(challenges.tls_alpn_certificate("cdn.example.com").is_some());
        drop((http, tls));
        assert_eq!(
            challenges.http_answer("/.well-known/acme-challenge/token-1"),
            None
        );
        assert!(challenges.tls_alpn_certificate("cdn.example.com").is_none());
    }
}
