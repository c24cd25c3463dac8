//! The answers to the CA's challenges while an order is being validated:
//! HTTP-01 key authorizations by token (RFC 8555 section 8.3) and
//! TLS-ALPN-01 certificates by name (RFC 8737). Entries exist only for the
//! orders this edge placed, so their number is bounded by the configured
//! names, and each is removed when its order ends ([`Published`]). In a
//! cluster, the answers other edges publish in etcd are added and removed
//! by key ([`Challenges::add_remote`]), so that whichever edge the CA's
//! validation reaches answers it.

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
    /// Answers published in etcd, by etcd key.
    remote: Mutex<HashMap<String, Entry>>,
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
            remote: Mutex::default(),
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

    /// Serves an answer another edge published at etcd `key`, until
    /// [`Challenges::remove_remote`]. DNS-01 answers are geodns's.
    pub(super) fn add_remote(
        &self,
        key: &str,
        record: &shared::cluster::AcmeChallengeRecord,
    ) -> Result<(), ChallengeError> {
        use shared::cluster::AcmeChallengeRecord as Record;
        let entry = match record {
            Record::Http01 {
                token,
                key_authorization,
            } => {
                self.http
                    .lock()
                    .insert(token.clone(), key_authorization.clone());
                Entry::Http(token.clone())
            }
            Record::TlsAlpn01 { name, digest } => {
                let bytes = decode_hex(digest).ok_or_else(|| ChallengeError {
                    name: name.clone(),
                    reason: "the published digest is not 32 bytes of hex".into(),
                })?;
                let (name, certificate) = self.tls_alpn_certificate_for(name, &bytes)?;
                self.tls_alpn.lock().insert(name.clone(), certificate);
                Entry::TlsAlpn(name)
            }
            Record::Dns01 { .. } => return Ok(()),
        };
        self.remote.lock().insert(key.to_string(), entry);
        Ok(())
    }

    /// Withdraws the answer published at etcd `key`.
    pub(super) fn remove_remote(&self, key: &str) {
        if let Some(entry) = self.remote.lock().remove(key) {
            self.remove(&entry);
        }
    }

    /// Withdraws every answer published in etcd (before reading them anew).
    pub(super) fn clear_remote(&self) {
        let entries: Vec<Entry> = self.remote.lock().drain().map(|(_, entry)| entry).collect();
        for entry in &entries {
            self.remove(entry);
        }
    }

    fn remove(&self, entry: &Entry) {
        match entry {
            Entry::Http(token) => {
                self.http.lock().remove(token);
            }
            Entry::TlsAlpn(name) => {
                self.tls_alpn.lock().remove(name);
            }
        }
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
        let (name, certified) = self.tls_alpn_certificate_for(name, digest)?;
        self.tls_alpn.lock().insert(name.clone(), certified);
        Ok(Published {
            challenges: self.clone(),
            entry: Entry::TlsAlpn(name),
        })
    }

    /// A self-signed certificate for `name` with the acmeIdentifier
    /// extension holding `digest` (RFC 8737 section 3).
    fn tls_alpn_certificate_for(
        &self,
        name: &str,
        digest: &[u8],
    ) -> Result<(String, Arc<CertifiedKey>), ChallengeError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let failed = |reason: String| ChallengeError {
            name: name.clone(),
            reason,
        };
        if digest.len() != 32 {
            return Err(failed("the digest is not a SHA-256".into()));
        }
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
        Ok((name, Arc::new(certified)))
    }
}

/// Lower-case hex of `bytes`.
pub(super) fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
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
        self.challenges.remove(&self.entry);
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

    #[test]
    fn answers_from_etcd_are_added_and_withdrawn_by_key() {
        use shared::cluster::AcmeChallengeRecord as Record;
        let challenges = Challenges::new(crate::tls::provider());
        let http = Record::Http01 {
            token: "t".into(),
            key_authorization: "t.k".into(),
        };
        let tls = Record::TlsAlpn01 {
            name: "cdn.example.com".into(),
            digest: encode_hex(&[9; 32]),
        };
        challenges
            .add_remote("/p/acme/challenges/http-01/t", &http)
            .unwrap();
        challenges
            .add_remote("/p/acme/challenges/tls-alpn-01/cdn.example.com", &tls)
            .unwrap();
        assert_eq!(
            challenges
                .http_answer("/.well-known/acme-challenge/t")
                .as_deref(),
            Some("t.k")
        );
        assert!(challenges.tls_alpn_certificate("cdn.example.com").is_some());
        challenges.remove_remote("/p/acme/challenges/http-01/t");
        assert_eq!(
            challenges.http_answer("/.well-known/acme-challenge/t"),
            None
        );
        challenges.clear_remote();
        assert!(challenges.tls_alpn_certificate("cdn.example.com").is_none());
        let bad = Record::TlsAlpn01 {
            name: "cdn.example.com".into(),
            digest: "zz".into(),
        };
        assert!(challenges.add_remote("k", &bad).is_err());
    }
}
