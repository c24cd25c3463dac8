//! HTTPS for clients: TLS 1.3 and 1.2 with rustls on aws-lc-rs (the
//! post-quantum hybrid X25519MLKEM768 first, then X25519 and the NIST
//! curves), ALPN `h2` and `http/1.1`, and the certificate chosen per
//! connection from the client's hello:
//!
//! - by the name it asks for (SNI), exact names before wildcards, and the
//!   first certificate for a client that names none or an unknown name;
//! - among the certificates for that name, ECDSA or EdDSA before RSA when
//!   the client can verify them.
//!
//! Sessions resume by tickets (keys rotated every six hours, RFC 8446
//! section 4.6.1) or, for TLS 1.2, by session ID from a bounded cache. No
//! early data is accepted: 0-RTT requests could be replayed.
//!
//! Certificates are re-read on SIGHUP and when their files change
//! ([`watch`]); a set that fails to load leaves the current one serving.
//! Certificates kept by `[acme]` are loaded when present and reloaded by
//! the ACME task when it writes new ones; a client hello that offers only
//! `acme-tls/1` gets the TLS-ALPN-01 challenge certificate for its name
//! (RFC 8737) and the connection ends after the handshake.
//! Each connection keeps the names of the certificate it was given
//! ([`TlsSession`]), so that a request for a host the certificate does not
//! cover is refused (421) instead of being served under another site's
//! certificate.

pub mod certificates;
mod metrics;
pub mod origin_client;
pub mod roots;
mod watch;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::{ProtocolVersion, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

pub use self::certificates::{Certificate, CertificateError, CertificateNames};
pub use self::metrics::TlsMetrics;
pub use self::watch::watch;
use crate::acme::{ACME_TLS_ALPN, Challenges};
use crate::config::{CertificateFiles, TlsConfig, TlsVersion};

/// TLS 1.2 sessions remembered for resumption by ID (a few hundred bytes each).
const SESSION_CACHE_ENTRIES: usize = 20_000;

/// The versions offered with `min_version = "1.3"`.
static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

/// ALPN protocols offered to clients, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// ALPN protocols offered on the admin listener, which speaks HTTP/1.1.
const ADMIN_ALPN: [&[u8]; 1] = [b"http/1.1"];

/// What a connection negotiated, attached to each of its requests.
#[derive(Debug, Clone)]
pub struct TlsSession {
    /// The names of the certificate this connection was given.
    pub names: Arc<CertificateNames>,
    /// The protocol version.
    pub version: ProtocolVersion,
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client spoke no TLS, or broke off.
    #[error("TLS handshake failed: {0}")]
    Failed(#[from] std::io::Error),
    /// No certificate to serve yet (ACME has not issued one).
    #[error("no certificate to serve yet")]
    NoCertificate,
    /// A TLS-ALPN-01 validation for a name no order is validating.
    #[error("acme-tls/1 handshake for a name with no pending challenge")]
    NoChallenge,
}

/// A completed handshake.
#[derive(Debug)]
pub enum Accepted<IO> {
    /// A client connection, ready for HTTP (boxed: a TLS stream is over a
    /// kilobyte, and is moved into the connection's task anyway).
    Client(Box<TlsStream<IO>>, TlsSession),
    /// A CA's TLS-ALPN-01 validation, answered: nothing more to serve.
    ChallengeAnswered,
}

/// Certificates being served and the settings shared by every connection.
pub struct TlsTermination {
    current: ArcSwap<CertificateSet>,
    /// `tls.certificates`, replaced by a configuration reload.
    files: parking_lot::RwLock<Vec<CertificateFiles>>,
    /// Kept by `[acme]`: loaded when present.
    managed: Vec<crate::config::CertificateFiles>,
    challenges: Option<Arc<Challenges>>,
    settings: Settings,
    metrics: Arc<TlsMetrics>,
}

impl std::fmt::Debug for TlsTermination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTermination")
            .field("certificates", &self.files)
            .finish_non_exhaustive()
    }
}

/// What every per-certificate server configuration shares.
struct Settings {
    provider: Arc<CryptoProvider>,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    tickets: Arc<dyn rustls::server::ProducesTickets>,
    sessions: Arc<ServerSessionMemoryCache>,
}

/// One load of the configured certificates (empty only while ACME has
/// issued none).
struct CertificateSet {
    certificates: Vec<Served>,
}

/// A certificate with the server configurations that present it.
struct Served {
    certificate: Certificate,
    config: Arc<ServerConfig>,
    /// The same, offering HTTP/1.1 only (for the admin API).
    admin_config: Arc<ServerConfig>,
}

/// Which listener a handshake is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `tls.listen`: HTTP/2 and HTTP/1.1, ACME TLS-ALPN-01 answered.
    Clients,
    /// The admin API: HTTP/1.1.
    Admin,
}

/// The crypto provider of every TLS connection of the edge.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads every configured certificate; all the errors, not only the first.
pub fn check(config: &TlsConfig) -> Result<(), Vec<CertificateError>> {
    load_all(&config.certificates, &provider()).map(drop)
}

fn load_all(
    files: &[CertificateFiles],
    provider: &CryptoProvider,
) -> Result<Vec<Certificate>, Vec<CertificateError>> {
    let mut certificates = Vec::new();
    let mut errors = Vec::new();
    for pair in files {
        match Certificate::load(pair, provider) {
            Ok(certificate) => certificates.push(certificate),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(certificates)
    } else {
        Err(errors)
    }
}

/// The certificates of `managed` that exist and load; the others are
/// logged (their ACME task orders them again).
fn load_present(managed: &[CertificateFiles], provider: &CryptoProvider) -> Vec<Certificate> {
    managed
        .iter()
        .filter_map(|files| match Certificate::load(files, provider) {
            Ok(certificate) => Some(certificate),
            Err(CertificateError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(error) => {
                tracing::warn!(%error, "ACME certificate not served");
                None
            }
        })
        .collect()
}

impl TlsTermination {
    /// Loads the certificates of `[tls]` and those of `managed` (kept by
    /// `[acme]`) that exist; `challenges` answers TLS-ALPN-01 validations.
    pub fn new(
        config: &TlsConfig,
        managed: Vec<CertificateFiles>,
        challenges: Option<Arc<Challenges>>,
        metrics: Arc<TlsMetrics>,
    ) -> anyhow::Result<Self> {
        let provider = provider();
        let versions: &'static [&'static rustls::SupportedProtocolVersion] =
            match config.min_version {
                TlsVersion::Tls12 => rustls::ALL_VERSIONS,
                TlsVersion::Tls13 => &TLS13_ONLY,
            };
        let settings = Settings {
            tickets: rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|error| anyhow::anyhow!("TLS session tickets: {error}"))?,
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
            provider,
            versions,
        };
        let mut termination = Self {
            current: ArcSwap::from_pointee(CertificateSet {
                certificates: Vec::new(),
            }),
            files: parking_lot::RwLock::new(config.certificates.clone()),
            managed,
            challenges,
            settings,
            metrics,
        };
        let set = termination
            .load()
            .map_err(|error| anyhow::anyhow!("tls.certificates: {error}"))?;
        termination
            .metrics
            .certificates_loaded(set.certificates.iter().map(|served| &served.certificate));
        termination.current = ArcSwap::from_pointee(set);
        Ok(termination)
    }

    fn load(&self) -> anyhow::Result<CertificateSet> {
        self.load_with(&self.files.read())
    }

    fn load_with(&self, files: &[CertificateFiles]) -> anyhow::Result<CertificateSet> {
        let mut certificates = load_all(files, &self.settings.provider)
            .map_err(|errors| anyhow::anyhow!("{}", join(&errors)))?;
        certificates.extend(load_present(&self.managed, &self.settings.provider));
        if certificates.is_empty() && self.managed.is_empty() {
            anyhow::bail!("no certificate to serve");
        }
        self.settings.build(certificates)
    }

    /// Re-reads the certificate files; on any error the current ones stay.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let loaded = self.load();
        self.install(loaded)
    }

    /// Serves the certificates of a reloaded `tls.certificates` (and those
    /// `[acme]` keeps); on any error the current files and certificates stay.
    pub fn replace_files(&self, files: Vec<CertificateFiles>) -> anyhow::Result<usize> {
        let loaded = self.load_with(&files);
        if loaded.is_ok() {
            *self.files.write() = files;
        }
        self.install(loaded)
    }

    fn install(&self, loaded: anyhow::Result<CertificateSet>) -> anyhow::Result<usize> {
        match loaded {
            Ok(set) => {
                let count = set.certificates.len();
                self.metrics
                    .certificates_loaded(set.certificates.iter().map(|served| &served.certificate));
                self.current.store(Arc::new(set));
                self.metrics.reloaded(true);
                Ok(count)
            }
            Err(error) => {
                self.metrics.reloaded(false);
                Err(error)
            }
        }
    }

    /// Updates the time left on each certificate (for the expiry gauge).
    pub fn refresh_expiry(&self, now: SystemTime) {
        let set = self.current.load();
        self.metrics.refresh_expiry(
            set.certificates.iter().map(|served| &served.certificate),
            now,
        );
    }

    /// The configured files, watched for changes (those kept by `[acme]`
    /// are reloaded by its task once both files are written).
    pub fn files(&self) -> Vec<CertificateFiles> {
        self.files.read().clone()
    }

    /// Runs the server side of a client handshake on `io`.
    pub async fn accept<IO>(&self, io: IO) -> Result<Accepted<IO>, HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.accept_for(io, Listener::Clients).await
    }

    /// Runs the server side of a handshake for `listener` on `io`.
    pub async fn accept_for<IO>(
        &self,
        io: IO,
        listener: Listener,
    ) -> Result<Accepted<IO>, HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let started = LazyConfigAcceptor::new(Acceptor::default(), io).await;
        let start = match started {
            Ok(start) => start,
            Err(error) => {
                self.metrics.handshake_failed();
                return Err(error.into());
            }
        };
        let hello = start.client_hello();
        if listener == Listener::Clients && offers_only_acme_tls(&hello) {
            let certificate = hello
                .server_name()
                .zip(self.challenges.as_ref())
                .and_then(|(name, challenges)| challenges.tls_alpn_certificate(name));
            let Some(certificate) = certificate else {
                self.metrics.handshake_refused("acme_unknown_name");
                return Err(HandshakeError::NoChallenge);
            };
            let config = self
                .settings
                .challenge_config(certificate)
                .map_err(|error| HandshakeError::Failed(std::io::Error::other(error)))?;
            let mut stream = start.into_stream(config).await?;
            self.metrics.challenge_answered();
            // The CA only checks the certificate; close as RFC 8737 allows.
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            return Ok(Accepted::ChallengeAnswered);
        }
        let set = self.current.load_full();
        let Some(served) = set.choose(&hello) else {
            self.metrics.handshake_refused("no_certificate");
            return Err(HandshakeError::NoCertificate);
        };
        let names = served.certificate.names.clone();
        let config = match listener {
            Listener::Clients => served.config.clone(),
            Listener::Admin => served.admin_config.clone(),
        };
        let stream = match start.into_stream(config).await {
            Ok(stream) => stream,
            Err(error) => {
                self.metrics.handshake_failed();
                return Err(error.into());
            }
        };
        let connection = stream.get_ref().1;
        let version = connection
            .protocol_version()
            .unwrap_or(ProtocolVersion::TLSv1_3);
        let resumed = connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        self.metrics.handshake_completed(version, resumed);
        Ok(Accepted::Client(
            Box::new(stream),
            TlsSession { names, version },
        ))
    }

    /// Counts a handshake cut off by the header deadline.
    pub fn handshake_timed_out(&self) {
        self.metrics.handshake_timed_out();
    }
}

/// Certificates this close to expiry are logged at load.
const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(14 * 86_400);

impl Settings {
    fn build(&self, certificates: Vec<Certificate>) -> anyhow::Result<CertificateSet> {
        let now = SystemTime::now();
        for certificate in &certificates {
            let remaining = certificate.remaining(now);
            let name = certificate.names.first();
            let file = certificate.files.certificate.display().to_string();
            if remaining.is_zero() {
                tracing::error!(
                    certificate = name,
                    file,
                    "certificate has expired; clients will refuse it"
                );
            } else if remaining < EXPIRY_WARNING {
                tracing::warn!(
                    certificate = name,
                    file,
                    days_left = remaining.as_secs() / 86_400,
                    "certificate expires soon"
                );
            }
        }
        let certificates = certificates
            .into_iter()
            .map(|certificate| {
                let config = self.server_config(certificate.key.clone(), &ALPN)?;
                let admin_config = self.server_config(certificate.key.clone(), &ADMIN_ALPN)?;
                Ok(Served {
                    certificate,
                    config,
                    admin_config,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(CertificateSet { certificates })
    }

    /// The configuration of a TLS-ALPN-01 answer: only `acme-tls/1`, no
    /// resumption (RFC 8737 section 4).
    fn challenge_config(&self, key: Arc<CertifiedKey>) -> Result<Arc<ServerConfig>, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(key)));
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    fn server_config(
        &self,
        key: Arc<CertifiedKey>,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions)
            .map_err(|error| anyhow::anyhow!("TLS settings: {error}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(key)));
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        config.ticketer = self.tickets.clone();
        config.session_storage = self.sessions.clone();
        config.max_early_data_size = 0;
        Ok(Arc::new(config))
    }
}

impl CertificateSet {
    /// The certificate for a client's hello (see the module docs); none
    /// only when there is none at all.
    fn choose<'a>(&'a self, hello: &ClientHello<'_>) -> Option<&'a Served> {
        let schemes = hello.signature_schemes();
        let best = |candidates: Vec<&'a Served>| best_for(schemes, candidates);
        let by_name = hello.server_name().and_then(|name| {
            let exact: Vec<&Served> = self
                .certificates
                .iter()
                .filter(|served| served.certificate.names.covers_exact(name))
                .collect();
            best(exact).or_else(|| {
                best(
                    self.certificates
                        .iter()
                        .filter(|served| served.certificate.names.covers(name))
                        .collect(),
                )
            })
        });
        by_name.or(self.certificates.first())
    }
}

/// The admin listener's TLS: the client certificates, HTTP/1.1 only.
#[derive(Debug, Clone)]
pub struct AdminTermination(pub Arc<TlsTermination>);

impl shared::admin::AdminTls for AdminTermination {
    fn handshake(&self, stream: tokio::net::TcpStream) -> shared::admin::Handshake {
        let termination = self.0.clone();
        Box::pin(async move {
            match termination.accept_for(stream, Listener::Admin).await {
                Ok(Accepted::Client(stream, _)) => {
                    Ok(Box::new(*stream) as Box<dyn shared::admin::AdminStream>)
                }
                Ok(Accepted::ChallengeAnswered) => Err(std::io::Error::other(
                    "an ACME validation on the admin listener",
                )),
                Err(error) => Err(std::io::Error::other(error)),
            }
        })
    }
}

/// Whether a hello is a CA's TLS-ALPN-01 validation: it offers exactly
/// `acme-tls/1` (RFC 8737 section 3).
fn offers_only_acme_tls(hello: &ClientHello<'_>) -> bool {
    hello.alpn().is_some_and(|mut protocols| {
        protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
    })
}

/// Among `candidates`, the first elliptic one the client can verify, else
/// the first it can verify, else the first.
fn best_for<'a>(
    schemes: &[rustls::SignatureScheme],
    candidates: Vec<&'a Served>,
) -> Option<&'a Served> {
    let usable = |served: &&'a Served| served.certificate.key.key.choose_scheme(schemes).is_some();
    candidates
        .iter()
        .copied()
        .filter(usable)
        .find(|served| served.certificate.is_elliptic())
        .or_else(|| candidates.iter().copied().find(usable))
        .or_else(|| candidates.first().copied())
}

/// A server configuration's one certificate: the choice is made before
/// the configuration is (see [`CertificateSet::choose`]).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn join(errors: &[CertificateError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
