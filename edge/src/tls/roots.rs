//! Trust anchors of the edge's TLS clients (towards origins, peers and the
//! ACME CA): the system's roots (`/etc/ssl/certs`, or
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`), or only those of a configured CA file.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The roots of `ca_file` (named `setting` in errors), else the system's.
pub fn root_store(ca_file: Option<&Path>, setting: &str) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|error| anyhow::anyhow!("{setting}: {}: {error}", path.display()))?;
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| {
                    anyhow::anyhow!("{setting}: {}: not PEM: {error}", path.display())
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                anyhow::bail!(
                    "{setting}: {}: no usable CA certificate in the file",
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
                    "no system CA certificates found (install ca-certificates, or set {setting}): TLS connections will fail verification"
                );
            }
        }
    }
    Ok(roots)
}
