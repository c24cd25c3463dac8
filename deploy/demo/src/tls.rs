//! The demo's HTTPS: a local CA made afresh on each run, and one
//! certificate for the demo's names and edge addresses that every edge
//! serves on port 8443. Clients trust it with `curl --cacert`.

use std::path::Path;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The names the demo certificate covers.
const NAMES: [&str; 2] = ["cdn.example.com", "*.cdn.example.com"];

/// Port of every edge's HTTPS listener.
pub const HTTPS_PORT: u16 = 8443;

/// Writes `ca.pem`, `edge.pem` and `edge.key` into `dir`, the certificate
/// covering [`NAMES`] and `addresses`.
pub fn make_certificates(dir: &Path, addresses: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "GeoCDN demo CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    ca_params.not_before = now - time::Duration::hours(1);
    ca_params.not_after = now + time::Duration::days(30);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(NAMES.map(String::from).to_vec())?;
    for address in addresses {
        params
            .subject_alt_names
            .push(SanType::IpAddress(address.parse()?));
    }
    params.distinguished_name.push(DnType::CommonName, NAMES[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(30);
    let certificate = params.signed_by(&key, &issuer)?;

    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("edge.pem"), certificate.pem())?;
    write_private(&dir.join("edge.key"), &key.serialize_pem())?;
    Ok(())
}

/// The `[tls]` section of an edge on `address`, with the certificate
/// written in `tls/` beside the configuration.
pub fn edge_section(address: &str) -> String {
    format!(
        "\n[tls]\nlisten = [\"{address}:{HTTPS_PORT}\"]\n\n[[tls.certificates]]\ncertificate = \"tls/edge.pem\"\nkey = \"tls/edge.key\"\n"
    )
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
