//! TLS towards `https://` origins, parents and peers: rustls on the same
//! provider as the client side, certificates verified by default against
//! the system's roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`)
//! or, with `origin.ca_file`, against that file's only. With
//! `origin.client_certificate`, the edge proves who it is (mutual TLS).
//! There is no switch to skip verification.

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::config::OriginConfig;

/// The rustls client configuration for upstream connections.
pub fn client_config(config: &OriginConfig) -> anyhow::Result<rustls::ClientConfig> {
    let provider = super::provider();
    let roots = super::roots::root_store(config.ca_file.as_deref(), "origin.ca_file")?;
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
