//! The edge configuration file.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;
use shared::{AdminConfig, ByteSize, Duration};

/// Default admin port (loopback unless configured).
pub const DEFAULT_ADMIN_PORT: u16 = 9180;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Client-facing HTTP.
    #[serde(default)]
    pub server: ServerConfig,
    /// Client-facing HTTPS.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Certificates ordered from an ACME CA and renewed automatically,
    /// served on `tls.listen` beside `tls.certificates`.
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
    /// Where misses are fetched from.
    pub origin: OriginConfig,
    /// The cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Admin HTTP (health, metrics, purge, drain).
    #[serde(default)]
    pub admin: AdminConfig,
    /// etcd: membership, cluster-wide purges and the regional fill ring.
    /// Without it the edge stands alone, configured by this file only.
    #[serde(default)]
    pub cluster: Option<shared::cluster::EtcdConfig>,
    /// What this edge announces to geodns through `[cluster]`.
    #[serde(default)]
    pub announce: Option<AnnounceConfig>,
    /// Where misses go before the origin: the owner of the key among the
    /// region's edges, then a parent.
    #[serde(default)]
    pub fill: FillConfig,
    /// One line per request, written off the request path.
    #[serde(default)]
    pub access_log: Option<AccessLogConfig>,
}

/// `[access_log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// File appended to (created mode 0640, reopened on SIGHUP for
    /// logrotate); `"-"` for standard output.
    pub path: std::path::PathBuf,
    /// `"combined"` (the combined log format with the CDN's fields
    /// appended) or `"json"` (one object per line).
    #[serde(default)]
    pub format: AccessLogFormat,
    /// Share of requests logged, from 0 to 1.
    #[serde(default = "default_access_log_sample")]
    pub sample: f64,
    /// Lines waiting for the writer at most; past it lines are dropped
    /// and counted, never waited for.
    #[serde(default = "default_access_log_queue")]
    pub queue: usize,
}

/// An access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// Apache/nginx combined, then host, cache status, upstream, total and
    /// first-byte seconds.
    #[default]
    Combined,
    /// A JSON object per line.
    Json,
}

fn default_access_log_sample() -> f64 {
    1.0
}

fn default_access_log_queue() -> usize {
    16_384
}

impl AccessLogConfig {
    /// Makes a relative path relative to `base` (the configuration's
    /// directory); `"-"` stays standard output.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        if self.path.is_relative() && self.path.as_os_str() != "-" {
            self.path = base.join(&self.path);
        }
    }

    /// Checks what the schema cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample) {
            return Err(format!(
                "access_log.sample: {} is not a share between 0 and 1",
                self.sample
            ));
        }
        if self.queue == 0 {
            return Err("access_log.queue: must be at least 1".into());
        }
        Ok(())
    }
}

/// `[announce]`: the member record this edge keeps alive in etcd; geodns
/// answers with it once its health checks pass. The edge's name is
/// `server.name`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    /// The geodns service it serves.
    pub service: String,
    /// Its region (geodns rules; the fill ring of edges).
    pub region: String,
    /// Where it is.
    pub location: Location,
    /// Public IPv4 addresses for A answers.
    #[serde(default)]
    pub ipv4: Vec<Ipv4Addr>,
    /// Public IPv6 addresses for AAAA answers.
    #[serde(default)]
    pub ipv6: Vec<Ipv6Addr>,
    /// Where geodns polls health; default `http://<admin.listen>/healthz`,
    /// which must then be reachable from geodns (not loopback in production).
    #[serde(default)]
    pub health_url: Option<String>,
    /// Where peers fetch from; default `http://<first server.listen>`.
    #[serde(default)]
    pub fill_url: Option<String>,
    /// Preference among equals.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Lease time to live: a dead edge leaves the answers this long after
    /// its last keep-alive.
    #[serde(default = "default_lease_ttl")]
    pub ttl: Duration,
}

/// Degrees.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// -90..=90.
    pub latitude: f64,
    /// -180..=180.
    pub longitude: f64,
}

fn default_weight() -> u32 {
    1
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(10)
}

/// `[fill]`: regional fill. The edges of a region hash each key to an
/// owner (rendezvous hashing); a miss elsewhere is fetched from the owner,
/// which fetches from the parent or origin, so the origin sees about one
/// fetch per object per region.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillConfig {
    /// Take the ring from the edges announced in etcd with this edge's
    /// service and region (needs `[cluster]` and `[announce]`).
    #[serde(default = "default_true")]
    pub from_cluster: bool,
    /// Edges of the ring listed here, with or without etcd.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// A parent edge (shield) asked before the origin, e.g. in another region.
    #[serde(default)]
    pub parent: Option<String>,
    /// Peers tried for one miss before going to the parent or origin.
    #[serde(default = "default_peer_attempts")]
    pub peer_attempts: usize,
    /// A peer that has not sent the response head within this is passed
    /// over for the next one (or the origin): bounds what a frozen peer
    /// costs before its checks notice. Keep it above the origin's usual
    /// time to first byte, which the owner waits for on a miss.
    #[serde(default = "default_peer_timeout")]
    pub peer_timeout: Duration,
    /// Networks whose requests may ask for a fill without the ring (the
    /// `x-geocdn-fill` field), besides the addresses in the peers' URLs:
    /// for peers named by host name or behind address translation.
    #[serde(default)]
    pub trusted_peers: Vec<ipnet::IpNet>,
}

impl Default for FillConfig {
    fn default() -> Self {
        Self {
            from_cluster: true,
            peers: Vec::new(),
            parent: None,
            peer_attempts: default_peer_attempts(),
            peer_timeout: default_peer_timeout(),
            trusted_peers: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_peer_attempts() -> usize {
    2
}

fn default_peer_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `[[fill.peers]]`: one edge of the ring.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its `server.name` (this edge may list itself).
    pub name: String,
    /// Its client-facing base URL, `http://host:port`.
    pub url: String,
    /// Its `/healthz` URL: while it does not answer, fills skip it.
    #[serde(default)]
    pub health: Option<String>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to serve HTTP/1.1 and HTTP/2 (cleartext) on.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// Name of this node in `Via` (and for loop detection).
    #[serde(default = "default_node_name")]
    pub name: String,
    /// Hosts served (`cdn.example.com`, `*.example.com`); requests for
    /// others get 421 and are never fetched. Empty: every host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Proxies in front of the edge (`10.0.0.0/8`) whose `X-Forwarded-For`
    /// is kept and appended to; from anyone else it is replaced by the
    /// client's address.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Expect a PROXY protocol header (v1 or v2) on every connection, as a
    /// TCP load balancer sends it: the client address is taken from it.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// The load balancers allowed to send PROXY headers; connections from
    /// other addresses are closed. Required with `proxy_protocol`.
    #[serde(default)]
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// Largest request head (request line and headers) accepted.
    #[serde(default = "default_max_header_size")]
    pub max_header_size: ByteSize,
    /// Largest request body forwarded to the origin.
    #[serde(default = "default_max_request_body")]
    pub max_request_body: ByteSize,
    /// Time a client has, from accept or from the first byte of a request
    /// head, to send the complete head (slow and silent clients are cut off).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Duration,
    /// Time a connection with a request in flight may move no byte (a
    /// client that stopped reading). Keep it above the origin's
    /// `first_byte_timeout`.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: Duration,
    /// Concurrent client connections. When full, the longest-idle ones are
    /// closed for new ones; only when none is idle is a new one refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Concurrent connections of one client address (an IPv6 /64). At the
    /// limit, its own longest-idle connection makes room.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Requests a client may abandon on one connection within ten seconds
    /// (HTTP/2 streams reset before their response, the "rapid reset"
    /// attack) before the connection is closed.
    #[serde(default = "default_max_abandoned_requests")]
    pub max_abandoned_requests: u32,
    /// Time in-flight requests get to finish at shutdown.
    #[serde(default = "default_drain_timeout")]
    pub shutdown_timeout: Duration,
    /// A unix socket on which this edge hands its listening sockets to a new
    /// edge process started with the same file (an upgrade without a
    /// refused connection; see [`shared::handover`]). Unset: no handover.
    #[serde(default)]
    pub handover_socket: Option<std::path::PathBuf>,
}

impl ServerConfig {
    /// Checks what the schema cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.proxy_protocol && self.proxy_protocol_from.is_empty() {
            return Err("server.proxy_protocol_from: name the load balancers that send PROXY headers (anyone could claim any client address otherwise)".into());
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            name: default_node_name(),
            hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            proxy_protocol_from: Vec::new(),
            max_header_size: default_max_header_size(),
            max_request_body: default_max_request_body(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            send_timeout: default_send_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            max_abandoned_requests: default_max_abandoned_requests(),
            shutdown_timeout: default_drain_timeout(),
            handover_socket: None,
        }
    }
}

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([0, 0, 0, 0], 8080))]
}

fn default_node_name() -> String {
    "edge".into()
}

fn default_max_header_size() -> ByteSize {
    ByteSize::from_bytes(64 * 1024)
}

fn default_max_request_body() -> ByteSize {
    ByteSize::mib(64)
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(20)
}

fn default_send_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_connections() -> usize {
    10_000
}

fn default_max_connections_per_client() -> usize {
    256
}

fn default_max_abandoned_requests() -> u32 {
    100
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `[tls]`: HTTPS for clients. The listeners share `[server]`'s limits
/// and deadlines (the handshake counts against `header_timeout`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Addresses to serve HTTPS on: HTTP/2 and HTTP/1.1, chosen by ALPN.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Certificate chains and their keys. Each client gets the one whose
    /// names cover the name it asks for (SNI), ECDSA before RSA when it
    /// supports both; a client that names none gets the first. Re-read on
    /// SIGHUP and when the files change.
    #[serde(default)]
    pub certificates: Vec<CertificateFiles>,
    /// Oldest protocol version offered: `"1.2"` or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Answer plain HTTP requests with a permanent redirect (308) to HTTPS,
    /// except ACME HTTP-01 challenges and fills between edges.
    #[serde(default)]
    pub redirect_http: bool,
    /// `Strict-Transport-Security: max-age` on HTTPS responses (unless the
    /// origin sends its own); 0 sends none.
    #[serde(default)]
    pub hsts_max_age: Duration,
    /// Adds `includeSubDomains` to the HSTS field.
    #[serde(default)]
    pub hsts_include_subdomains: bool,
    /// Adds `preload` to the HSTS field.
    #[serde(default)]
    pub hsts_preload: bool,
    /// How often the certificate files are checked for changes.
    #[serde(default = "default_tls_watch_interval")]
    pub watch_interval: Duration,
    /// Serve the admin API (health, metrics, purge, drain) over TLS too,
    /// with the same certificates: geodns and peers then check
    /// `https://<admin.listen>/healthz`.
    #[serde(default)]
    pub admin: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            certificates: Vec::new(),
            min_version: TlsVersion::default(),
            redirect_http: false,
            hsts_max_age: Duration::default(),
            hsts_include_subdomains: false,
            hsts_preload: false,
            watch_interval: default_tls_watch_interval(),
            admin: false,
        }
    }
}

impl TlsConfig {
    /// Checks what the schema cannot; `acme` says whether `[acme]`
    /// provides certificates.
    pub fn validate(&self, acme: bool) -> Result<(), String> {
        if !self.listen.is_empty() && self.certificates.is_empty() && !acme {
            return Err(
                "tls.certificates: tls.listen is set, so give at least one certificate and key (or configure [acme])"
                    .into(),
            );
        }
        if self.listen.is_empty() && acme {
            return Err(
                "tls.listen: [acme] certificates are served on tls.listen; set at least one address"
                    .into(),
            );
        }
        if self.listen.is_empty() && self.redirect_http {
            return Err("tls.redirect_http: there is no tls.listen to redirect to".into());
        }
        if self.listen.is_empty() && self.admin {
            return Err("tls.admin: set tls.listen and its certificates first".into());
        }
        if self.watch_interval.as_std().is_zero() {
            return Err("tls.watch_interval: must be more than 0".into());
        }
        Ok(())
    }

    /// Makes relative file names relative to `base` (the configuration's
    /// directory).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for files in &mut self.certificates {
            for path in [&mut files.certificate, &mut files.key] {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
    }
}

/// `[[tls.certificates]]`: one certificate chain and its private key, in PEM.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// The certificate, then its intermediates.
    pub certificate: std::path::PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1). Never logged.
    pub key: std::path::PathBuf,
}

/// `[acme]`: certificates from an ACME CA (RFC 8555), such as Let's
/// Encrypt. Each `[[acme.certificates]]` is ordered when the edge has none
/// for its names, and renewed in the window the CA suggests (RFC 9773) or
/// at about two thirds of its lifetime. The account and the certificates
/// are kept in `state_directory`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's directory URL, such as
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory: String,
    /// Contact URLs for the account (`mailto:ops@example.com`), through
    /// which the CA warns of problems.
    #[serde(default)]
    pub contact: Vec<String>,
    /// Agreement to the CA's terms of service, which every CA requires.
    #[serde(default)]
    pub terms_of_service_agreed: bool,
    /// How the CA checks that this edge serves each name: `"http-01"` (a
    /// request to port 80, answered by the plain listener),
    /// `"tls-alpn-01"` (a handshake on port 443, answered by the TLS
    /// listener, RFC 8737) or `"dns-01"` (a TXT record answered by every
    /// geodns of the cluster; needs `[cluster]`, allows wildcards).
    #[serde(default)]
    pub challenge: AcmeChallenge,
    /// Roots that verify the CA's own HTTPS (a private or test CA); the
    /// system's roots when absent.
    pub ca_file: Option<std::path::PathBuf>,
    /// Where the account key and the certificates are kept: readable by
    /// the edge only.
    #[serde(default = "default_acme_state_directory")]
    pub state_directory: std::path::PathBuf,
    /// The certificates to keep.
    pub certificates: Vec<AcmeCertificate>,
}

/// `[[acme.certificates]]`: one certificate and the names it covers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeCertificate {
    /// Host names, the first naming the certificate in logs and metrics.
    pub names: Vec<String>,
}

/// The ACME challenge used to prove control of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum AcmeChallenge {
    /// A token served at `/.well-known/acme-challenge/` over plain HTTP.
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A self-signed certificate for the `acme-tls/1` protocol.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// A TXT record at `_acme-challenge.<name>`, published through etcd
    /// and answered by geodns.
    #[serde(rename = "dns-01")]
    Dns01,
}

fn default_acme_state_directory() -> std::path::PathBuf {
    "/var/lib/edge/acme".into()
}

impl AcmeConfig {
    /// Checks what the schema cannot, every error at once; `clustered`
    /// says whether `[cluster]` is configured.
    pub fn validate(&self, clustered: bool) -> Vec<String> {
        let mut errors = Vec::new();
        if self.challenge == AcmeChallenge::Dns01 && !clustered {
            errors.push("acme.challenge: dns-01 answers are published through etcd for geodns to serve; configure [cluster] (the same etcd as geodns)".into());
        }
        if !self.directory.starts_with("https://") {
            errors.push(format!(
                "acme.directory: \"{}\" is not an https:// URL (RFC 8555 requires HTTPS)",
                self.directory
            ));
        }
        if !self.terms_of_service_agreed {
            errors.push("acme.terms_of_service_agreed: the CA requires agreement to its terms; read them and set it to true".into());
        }
        for (index, contact) in self.contact.iter().enumerate() {
            if !contact.starts_with("mailto:") {
                errors.push(format!(
                    "acme.contact[{index}]: \"{contact}\" is not a mailto: URL"
                ));
            }
        }
        if self.certificates.is_empty() {
            errors.push("acme.certificates: name at least one certificate to order".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (index, certificate) in self.certificates.iter().enumerate() {
            if certificate.names.is_empty() {
                errors.push(format!(
                    "acme.certificates[{index}].names: give at least one name"
                ));
            }
            for name in &certificate.names {
                if let Err(reason) = check_acme_name(name, self.challenge) {
                    errors.push(format!(
                        "acme.certificates[{index}].names: \"{name}\" {reason}"
                    ));
                } else if !seen.insert(name.to_ascii_lowercase()) {
                    errors.push(format!(
                        "acme.certificates[{index}].names: \"{name}\" is already in another certificate"
                    ));
                }
            }
        }
        errors
    }

    /// Makes relative file names relative to `base`.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for path in [Some(&mut self.state_directory), self.ca_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

/// Whether a CA could issue for `name` with `challenge`.
fn check_acme_name(name: &str, challenge: AcmeChallenge) -> Result<(), &'static str> {
    let name = match name.strip_prefix("*.") {
        Some(_) if challenge != AcmeChallenge::Dns01 => {
            return Err("is a wildcard, which CAs issue only with the dns-01 challenge");
        }
        Some(base) => base,
        None => name,
    };
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an address; give host names");
    }
    let valid = rustls::pki_types::ServerName::try_from(name)
        .is_ok_and(|parsed| matches!(parsed, rustls::pki_types::ServerName::DnsName(_)));
    if !valid || !name.contains('.') || name.ends_with('.') {
        return Err("is not a fully qualified host name (such as cdn.example.com)");
    }
    Ok(())
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246) and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only (RFC 8446).
    #[serde(rename = "1.3")]
    Tls13,
}

fn default_tls_watch_interval() -> Duration {
    Duration::from_secs(10)
}

/// `[origin]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// Origin base URLs (`http://host:port`), tried in order when one refuses
    /// connections or times out.
    pub urls: Vec<String>,
    /// `Host` sent to the origin: the client's when absent.
    pub host: Option<String>,
    /// Time to establish a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Time from sending the request to the response head.
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout: Duration,
    /// Time for the whole response, body included.
    #[serde(default = "default_total_timeout")]
    pub total_timeout: Duration,
    /// CA certificates (PEM) that `https://` upstreams are verified
    /// against, instead of the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The name `https://` origins are asked for (SNI) and verified
    /// against, when it is not the host in their URL (an address, say).
    #[serde(default)]
    pub server_name: Option<String>,
    /// A client certificate chain (PEM) presented to `https://` upstreams
    /// that ask for one (mutual TLS); with `client_key`.
    #[serde(default)]
    pub client_certificate: Option<std::path::PathBuf>,
    /// The key of `client_certificate` (PEM). Never logged.
    #[serde(default)]
    pub client_key: Option<std::path::PathBuf>,
}

impl OriginConfig {
    /// Makes relative file names relative to `base` (the configuration's
    /// directory).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for path in [
            &mut self.ca_file,
            &mut self.client_certificate,
            &mut self.client_key,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}

fn default_first_byte_timeout() -> Duration {
    Duration::from_secs(15)
}

fn default_total_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Memory for stored objects: bodies, headers and per-entry overhead.
    #[serde(default = "default_capacity")]
    pub capacity: ByteSize,
    /// Largest object stored; larger ones stream through uncached.
    #[serde(default = "default_max_object_size")]
    pub max_object_size: ByteSize,
    /// Memory for responses being read into the cache before they are
    /// stored; past it, storable responses stream to their client unstored.
    /// Default: a quarter of `capacity`, and never less than `max_object_size`.
    #[serde(default)]
    pub fill_memory: Option<ByteSize>,
    /// Freshness for responses with a validator but no explicit lifetime,
    /// instead of the heuristic; 0 keeps the RFC 9111 heuristic.
    #[serde(default)]
    pub default_ttl: Duration,
    /// How long past staleness an object may still be served when the origin fails.
    #[serde(default = "default_grace")]
    pub grace: Duration,
    /// Store responses that set cookies (they are private by nature; off by default).
    #[serde(default)]
    pub cache_set_cookie: bool,
    /// A cache-control header of our own that, like `CDN-Cache-Control`, wins
    /// over `Cache-Control` and is not forwarded to clients.
    pub targeted_header: Option<String>,
    /// Send targeted cache-control fields (`CDN-Cache-Control` and
    /// `targeted_header`) on to clients, for caches further down; by default
    /// this edge consumes them.
    #[serde(default)]
    pub forward_targeted: bool,
    /// Query parameters: keep as sent, sort them, or drop them from the key.
    #[serde(default)]
    pub query: QueryKey,
    /// Request headers added to the cache key (e.g. `accept-encoding`).
    #[serde(default)]
    pub key_headers: Vec<String>,
    /// Time concurrent misses wait for the first one's response.
    #[serde(default = "default_coalesce_timeout")]
    pub coalesce_timeout: Duration,
    /// Per-path freshness that overrides the origin's.
    #[serde(default)]
    pub rules: Vec<TtlRule>,
}

impl CacheConfig {
    /// Checks what the schema cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_object_size.bytes() > self.capacity.bytes() {
            return Err(format!(
                "cache.max_object_size ({}) is larger than cache.capacity ({}): such objects could never be stored",
                self.max_object_size, self.capacity
            ));
        }
        if let Some(fill_memory) = self.fill_memory
            && fill_memory < self.max_object_size
        {
            return Err(format!(
                "cache.fill_memory ({fill_memory}) is smaller than cache.max_object_size ({}): the largest objects could never be filled",
                self.max_object_size
            ));
        }
        Ok(())
    }

    /// The fill memory budget: as configured, or a quarter of the capacity
    /// but at least one object of `max_object_size`.
    pub fn fill_memory(&self) -> ByteSize {
        self.fill_memory.unwrap_or_else(|| {
            ByteSize::from_bytes((self.capacity.bytes() / 4).max(self.max_object_size.bytes()))
        })
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            max_object_size: default_max_object_size(),
            fill_memory: None,
            default_ttl: Duration::default(),
            grace: default_grace(),
            cache_set_cookie: false,
            targeted_header: None,
            forward_targeted: false,
            query: QueryKey::default(),
            key_headers: Vec::new(),
            coalesce_timeout: default_coalesce_timeout(),
            rules: Vec::new(),
        }
    }
}

fn default_capacity() -> ByteSize {
    ByteSize::mib(512)
}

fn default_max_object_size() -> ByteSize {
    ByteSize::mib(16)
}

fn default_grace() -> Duration {
    Duration::from_secs(3600)
}

fn default_coalesce_timeout() -> Duration {
    Duration::from_secs(10)
}

/// What the cache key keeps of the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryKey {
    /// As sent.
    #[default]
    Keep,
    /// Parameters sorted, so `?b=1&a=2` and `?a=2&b=1` share an entry.
    Sort,
    /// Dropped.
    Ignore,
}

/// `[[cache.rules]]`: paths matching `prefix` (or the `glob`) get `ttl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtlRule {
    /// Path prefix, e.g. `/static/`.
    pub prefix: Option<String>,
    /// Path glob with `*` (any run of characters), e.g. `/img/*.png`.
    pub glob: Option<String>,
    /// Freshness lifetime for matching responses.
    pub ttl: Duration,
}
