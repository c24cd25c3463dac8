//! A certificate authority for tests: a root, and leaf certificates it
//! issues for chosen names, key types and lifetimes, written as PEM files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The key of a leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256.
    Ecdsa,
    /// RSA 2048.
    Rsa,
}

/// Files of one issued certificate.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    /// The leaf, then the root (as servers are usually given chains).
    pub certificate: PathBuf,
    /// The private key (PKCS#8).
    pub key: PathBuf,
}

/// A test root CA.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    root_pem: String,
}

impl TestCa {
    /// A new root CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = params.self_signed(&key).expect("CA certificate");
        Self {
            root_pem: root.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The root certificate in PEM, for clients to trust.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Writes the root to `path`.
    pub fn write_root(&self, path: &Path) {
        std::fs::write(path, &self.root_pem).expect("write CA");
    }

    /// Issues a certificate for servers and clients, for `names` (DNS names or addresses),
    /// valid from an hour ago for `lifetime`, and writes it to
    /// `<dir>/<stem>.pem` and `<dir>/<stem>.key`.
    pub fn issue(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        kind: KeyKind,
        lifetime: Duration,
    ) -> IssuedFiles {
        let key = match kind {
            KeyKind::Ecdsa => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyKind::Rsa => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
        }
        .expect("leaf key");
        let mut params = CertificateParams::new(
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>(),
        )
        .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + lifetime;
        let leaf = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let files = IssuedFiles {
            certificate: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(
            &files.certificate,
            format!("{}{}", leaf.pem(), self.root_pem),
        )
        .expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}
