//! The ACME account: created once per CA and kept in the state directory
//! (its key is the account: losing it means a new account, and the CA's
//! rate limits count per account).

use instant_acme::{Account, AccountCredentials, BodyWrapper, NewAccount};

use super::store;
use crate::config::AcmeConfig;

/// Why the account could not be opened or created.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The roots to verify the CA with cannot be read.
    #[error("{0}")]
    Roots(String),
    /// The account file exists but cannot be read back.
    #[error("{path}: cannot read the ACME account: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why (never its contents).
        reason: String,
    },
    /// The CA could not be reached or refused the account.
    #[error("ACME account at {directory}: {source}")]
    Ca {
        /// The directory URL.
        directory: String,
        /// What went wrong.
        source: instant_acme::Error,
    },
    /// The new account could not be saved.
    #[error("{path}: cannot save the ACME account: {source}")]
    Save {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The HTTPS client towards the CA: our crypto provider, verifying
/// against `acme.ca_file` or the system's roots.
fn http_client(
    config: &AcmeConfig,
) -> Result<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        BodyWrapper<bytes::Bytes>,
    >,
    AccountError,
> {
    let roots = crate::tls::roots::root_store(config.ca_file.as_deref(), "acme.ca_file")
        .map_err(|error| AccountError::Roots(error.to_string()))?;
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| AccountError::Roots(format!("TLS settings: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// Opens the account kept for `config.directory`, or creates and keeps one.
pub(super) async fn open(config: &AcmeConfig) -> Result<Account, AccountError> {
    let path = store::account_file(&config.state_directory, &config.directory);
    let shown = path.display().to_string();
    let builder = Account::builder_with_http(Box::new(http_client(config)?));
    let ca_error = |source| AccountError::Ca {
        directory: config.directory.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let credentials: AccountCredentials =
                serde_json::from_slice(&bytes).map_err(|error| AccountError::Unreadable {
                    path: shown.clone(),
                    // serde_json's message names a position, not the key.
                    reason: format!("not an account file (line {})", error.line()),
                })?;
            builder
                .from_credentials(credentials)
                .await
                .map_err(ca_error)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
            let (account, credentials) = builder
                .create(
                    &NewAccount {
                        contact: &contact,
                        terms_of_service_agreed: config.terms_of_service_agreed,
                        only_return_existing: false,
                    },
                    config.directory.clone(),
                    None,
                )
                .await
                .map_err(ca_error)?;
            let bytes = serde_json::to_vec(&credentials).expect("credentials serialize");
            store::write_secret(&path, &bytes).map_err(|source| AccountError::Save {
                path: shown.clone(),
                source,
            })?;
            tracing::info!(directory = %config.directory, id = account.id(), file = %shown, "ACME account created");
            Ok(account)
        }
        Err(error) => Err(AccountError::Unreadable {
            path: shown,
            reason: error.to_string(),
        }),
    }
}
