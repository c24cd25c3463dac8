//! The state directory: the account for each CA and the certificates it
//! issued, laid out as
//!
//! ```text
//! <state_directory>/accounts/<CA directory URL, as a file name>.json
//! <state_directory>/certificates/<first name>/certificate.pem
//! <state_directory>/certificates/<first name>/key.pem
//! ```
//!
//! Directories are created mode 0700 and secrets written mode 0600. Every
//! file is written to a temporary name and renamed, so that a crash never
//! leaves half a key; the key is renamed before its certificate, and the
//! pair is only loaded after both are in place (a certificate whose key
//! does not match is refused at load, never served).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::CertificateFiles;

/// The files of the certificate named by `names` (its first name).
pub fn certificate_files(state_directory: &Path, names: &[String]) -> CertificateFiles {
    let first = names.first().map(String::as_str).unwrap_or("certificate");
    let directory = state_directory
        .join("certificates")
        .join(file_name(&first.to_ascii_lowercase()));
    CertificateFiles {
        certificate: directory.join("certificate.pem"),
        key: directory.join("key.pem"),
    }
}

/// The account file for the CA at `directory_url`.
pub(super) fn account_file(state_directory: &Path, directory_url: &str) -> PathBuf {
    let without_scheme = directory_url
        .split_once("://")
        .map_or(directory_url, |(_, rest)| rest);
    state_directory
        .join("accounts")
        .join(format!("{}.json", file_name(without_scheme)))
}

/// `text` with everything but letters, digits, dots and dashes replaced,
/// so that it is one safe path component.
fn file_name(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// Writes a newly issued certificate and its key in place of the old.
pub(super) fn save_certificate(
    files: &CertificateFiles,
    chain_pem: &str,
    key_pem: &str,
) -> std::io::Result<()> {
    write_secret(&files.key, key_pem.as_bytes())?;
    write_secret(&files.certificate, chain_pem.as_bytes())
}

/// Writes `contents` to `path` (mode 0600) through a temporary file.
pub(super) fn write_secret(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)?;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // The rename itself survives a crash once the directory is synced.
    std::fs::File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls_become_single_safe_path_components() {
        let files = certificate_files(
            Path::new("/state"),
            &["CDN.example.com".into(), "www.example.com".into()],
        );
        assert_eq!(
            files.certificate,
            Path::new("/state/certificates/cdn.example.com/certificate.pem")
        );
        assert_eq!(
            account_file(
                Path::new("/state"),
                "https://acme-v02.api.letsencrypt.org/directory"
            ),
            Path::new("/state/accounts/acme-v02.api.letsencrypt.org_directory.json")
        );
        assert_eq!(file_name("../../etc"), "_.._.._etc");
    }

    #[test]
    fn secrets_are_written_private() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("deep/key.pem");
        write_secret(&path, b"secret").unwrap();
        write_secret(&path, b"newer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"newer");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
