//! Certificates from PEM files: each chain with its private key, the names
//! it covers and when it expires. Everything is checked when the files are
//! read (the key belongs to the certificate, the names parse), so that a
//! bad pair is an error at `check-config` and at reload, never a failed
//! handshake later. Errors name the files, never what a key file holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::SignatureAlgorithm;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::config::CertificateFiles;

/// Largest certificate or key file read: a chain is a few kilobytes.
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Why a certificate and key pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than any certificate or key.
    #[error("{}: larger than {MAX_PEM_FILE} bytes, not a PEM certificate or key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// No `BEGIN CERTIFICATE` section, or one that does not decode.
    #[error("{}: no PEM certificate in the file ({reason})", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// No private key section. What the file holds is not repeated.
    #[error("{}: no PEM private key in the file (PKCS#8, PKCS#1 or SEC1 expected)", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A private key of a kind or size that cannot sign.
    #[error("{}: the private key cannot be used: {reason}", path.display())]
    UnusableKey {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The key is not the one the certificate was issued for.
    #[error("{}: this key does not belong to the certificate in {}", key.display(), certificate.display())]
    KeyMismatch {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The end-entity certificate does not parse as X.509.
    #[error("{}: the certificate does not parse: {reason}", path.display())]
    Unparsable {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// Neither a subjectAltName nor a common name to match clients against.
    #[error("{}: the certificate names no host (no subjectAltName DNS name or address)", path.display())]
    NoNames {
        /// The file.
        path: PathBuf,
    },
}

/// The host names and addresses a certificate covers, matched as clients
/// match them (RFC 6125 section 6.4): case-insensitively, a wildcard
/// standing for exactly one leftmost label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateNames {
    exact: Vec<String>,
    /// `*.example.com` kept as `.example.com`.
    wildcard_suffixes: Vec<String>,
}

impl CertificateNames {
    /// Names as written in the certificate (`*.example.com` for wildcards).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut exact = Vec::new();
        let mut wildcard_suffixes = Vec::new();
        for name in names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 => {
                    wildcard_suffixes.push(suffix.to_string());
                }
                _ => exact.push(name),
            }
        }
        Self {
            exact,
            wildcard_suffixes,
        }
    }

    /// Whether `host` (a name or an address, without port) is covered.
    pub fn covers(&self, host: &str) -> bool {
        self.covers_exact(host) || self.covers_by_wildcard(host)
    }

    /// Whether `host` is one of the names as written, wildcards aside.
    pub fn covers_exact(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.exact
            .iter()
            .any(|name| name.eq_ignore_ascii_case(host))
    }

    fn covers_by_wildcard(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        let Some(dot) = host.find('.') else {
            return false;
        };
        // The wildcard is one whole label, and never an address's.
        dot > 0
            && host.parse::<std::net::IpAddr>().is_err()
            && self
                .wildcard_suffixes
                .iter()
                .any(|suffix| suffix.eq_ignore_ascii_case(&host[dot..]))
    }

    /// The first name, which labels the certificate in metrics and logs.
    pub fn first(&self) -> String {
        self.exact.first().cloned().unwrap_or_else(|| {
            self.wildcard_suffixes
                .first()
                .map(|suffix| format!("*{suffix}"))
                .unwrap_or_default()
        })
    }
}

/// One certificate chain ready to serve.
pub struct Certificate {
    /// Where it was read from.
    pub files: CertificateFiles,
    /// What it covers.
    pub names: Arc<CertificateNames>,
    /// The start of its validity.
    pub not_before: SystemTime,
    /// The end of its validity.
    pub not_after: SystemTime,
    /// The chain with its signing key.
    pub key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every log line.
        f.debug_struct("Certificate")
            .field("certificate", &self.files.certificate)
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads and checks one pair of files.
    pub fn load(
        files: &CertificateFiles,
        provider: &CryptoProvider,
    ) -> Result<Self, CertificateError> {
        let chain_pem = read_pem(&files.certificate)?;
        let key_pem = read_pem(&files.key)?;
        Self::from_pem(files, &chain_pem, &key_pem, provider)
    }

    /// Checks a pair held in memory, as if read from `files` (which name
    /// it in errors).
    pub fn from_pem(
        files: &CertificateFiles,
        chain_pem: &[u8],
        key_pem: &[u8],
        provider: &CryptoProvider,
    ) -> Result<Self, CertificateError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| CertificateError::NoCertificate {
                path: files.certificate.clone(),
                reason: error.to_string(),
            })?;
        if chain.is_empty() {
            return Err(CertificateError::NoCertificate {
                path: files.certificate.clone(),
                reason: "no BEGIN CERTIFICATE section".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertificateError::NoKey {
            path: files.key.clone(),
        })?;
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|error| CertificateError::UnusableKey {
                path: files.key.clone(),
                reason: error.to_string(),
            })?;
        let (names, not_before, not_after) =
            describe(&chain[0]).map_err(|reason| CertificateError::Unparsable {
                path: files.certificate.clone(),
                reason,
            })?;
        if names.exact.is_empty() && names.wildcard_suffixes.is_empty() {
            return Err(CertificateError::NoNames {
                path: files.certificate.clone(),
            });
        }
        let key = CertifiedKey::new(chain, signing_key);
        match key.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                return Err(CertificateError::KeyMismatch {
                    certificate: files.certificate.clone(),
                    key: files.key.clone(),
                });
            }
        }
        Ok(Self {
            files: files.clone(),
            names: Arc::new(names),
            not_before,
            not_after,
            key: Arc::new(key),
        })
    }

    /// Whether its key signs with ECDSA or EdDSA, which clients verify
    /// faster than RSA and which is preferred when they support it.
    pub fn is_elliptic(&self) -> bool {
        matches!(
            self.key.key.algorithm(),
            SignatureAlgorithm::ECDSA | SignatureAlgorithm::ED25519 | SignatureAlgorithm::ED448
        )
    }

    /// Time left until it expires (zero once it has).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }
}

/// Reads a PEM file, bounded in size.
fn read_pem(path: &Path) -> Result<Vec<u8>, CertificateError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| CertificateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| CertificateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(CertificateError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// The names (subjectAltName DNS names and addresses, else the common name)
/// and the validity of an end-entity certificate.
fn describe(
    der: &CertificateDer<'_>,
) -> Result<(CertificateNames, SystemTime, SystemTime), String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|error| error.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(alternatives)) = parsed.subject_alternative_name() {
        for name in &alternatives.value.general_names {
            match name {
                GeneralName::DNSName(name) => names.push((*name).to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(address) = address_of(bytes) {
                        names.push(address.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(
            parsed
                .subject()
                .iter_common_name()
                .filter_map(|name| name.as_str().ok())
                .map(str::to_string),
        );
    }
    let time = |time: x509_parser::time::ASN1Time| {
        u64::try_from(time.timestamp())
            .map(|seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    Ok((
        CertificateNames::new(names.iter().map(String::as_str)),
        time(parsed.validity().not_before),
        time(parsed.validity().not_after),
    ))
}

fn address_of(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_exactly_one_label() {
        let names = CertificateNames::new(["cdn.example.com", "*.img.example.com", "192.0.2.7"]);
        assert!(names.covers("cdn.example.com"));
        assert!(names.covers("CDN.Example.COM."));
        assert!(names.covers("a.img.example.com"));
        assert!(!names.covers("img.example.com"));
        assert!(!names.covers("a.b.img.example.com"));
        assert!(!names.covers("www.example.com"));
        assert!(names.covers("192.0.2.7"));
        assert_eq!(names.first(), "cdn.example.com");
    }

    #[test]
    fn a_wildcard_never_stands_for_part_of_a_label_or_an_address() {
        let names = CertificateNames::new(["*.example.com", "*", "*example.org", "*.0.2.7"]);
        assert!(!names.covers("example.com"));
        assert!(!names.covers(".example.com"));
        assert!(!names.covers("anything"));
        assert!(!names.covers("www.example.org"));
        assert!(!names.covers("192.0.2.7"));
        assert!(names.covers("www.example.com"));
    }
}
