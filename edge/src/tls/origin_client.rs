//! TLS towards `https://` origins, parents and peers: rustls on the same
//! provider as the client side, certificates verified by default against
//! the system's roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`)
//! or, with `origin.ca_file`, against that file's only. With
//! `origin.client_certificate`, the edge proves who it is (mutual TLS).
//! There is no switch to skip verification.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::OriginConfig;

/// The rustls client configuration for upstream connections.
pub fn client_config(config: &OriginConfig) -> anyhow::Result<rustls::ClientConfig> {
    let provider = super::provider();
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|error| anyhow::anyhow!("origin.ca_file: {}: {error}", path.display()))?;
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| {
                    anyhow::anyhow!("origin.ca_file: {}: not PEM: {error}", path.display())
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                anyhow::bail!(
                    "origin.ca_file: {}: no usable CA certificate in the file",
                    path.display()
                );
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "a system CA certificate could not be read");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    "no system CA certificates found (install ca-certificates, or set origin.ca_file): https:// upstreams will fail verification"
                );
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| anyhow::anyhow!("TLS settings: {error}"))?
        .with_root_certificates(roots);
    let client = match (&config.client_certificate, &config.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(certificate), Some(key)) => {
            let files = crate::config::CertificateFiles {
                certificate: certificate.clone(),
                key: key.clone(),
            };
            let loaded = super::Certificate::load(&files, &provider)
                .map_err(|error| anyhow::anyhow!("origin.client_certificate: {error}"))?;
            let chain = loaded.key.cert.clone();
            let key_pem = std::fs::read(key).map_err(|error| {
                anyhow::anyhow!("origin.client_key: {}: {error}", key.display())
            })?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                anyhow::anyhow!("origin.client_key: {}: no PEM private key", key.display())
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| anyhow::anyhow!("origin.client_certificate: {error}"))?
        }
        _ => anyhow::bail!("origin.client_certificate and origin.client_key: give both or neither"),
    };
    Ok(client)
}
