//! The geodns configuration file, as typed structs.
//!
//! Parsing checks shapes and units (unknown keys are errors, with file, line
//! and key); [`crate::snapshot::Snapshot::build`] then checks meaning (names
//! inside their zones, services pointing at zones that exist, databases that
//! open) and turns the whole into the immutable state queries read.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use geoip::{Continent, Coordinates, CountryCode, SchemaConfig};
use serde::Deserialize;
use shared::{AdminConfig, ByteSize, Duration};

/// Default admin port (loopback).
pub const DEFAULT_ADMIN_PORT: u16 = 9153;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// DNS listeners and limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Admin HTTP server.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Geolocation sources.
    #[serde(default)]
    pub geoip: GeoipConfig,
    /// Defaults for the health checks of every edge.
    #[serde(default)]
    pub health: HealthConfig,
    /// Zones we are authoritative for, by apex name.
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneConfig>,
    /// Geo services, by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// etcd, where edges announce themselves and operators drain them;
    /// without it the edges are exactly those listed here.
    #[serde(default)]
    pub cluster: Option<shared::cluster::EtcdConfig>,
    /// A query log in dnstap format; off unless configured.
    #[serde(default)]
    pub dnstap: Option<DnstapConfig>,
}

/// `[dnstap]`: responses logged in dnstap (Frame Streams of protobuf
/// messages, as BIND, Knot, Unbound and PowerDNS write them), read with
/// `dnstap-read` or any dnstap collector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnstapConfig {
    /// The file written (created or truncated at start).
    pub path: PathBuf,
    /// The `identity` of each message; unset, `server.identity`.
    #[serde(default)]
    pub identity: Option<String>,
    /// One response in this many is logged (1 logs them all).
    #[serde(default = "default_dnstap_sample")]
    pub sample: u32,
    /// Client IPv4 addresses are logged cut to this prefix (32 keeps them whole).
    #[serde(default = "default_dnstap_ipv4_prefix")]
    pub ipv4_prefix: u8,
    /// Client IPv6 addresses are logged cut to this prefix (128 keeps them whole).
    #[serde(default = "default_dnstap_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Messages waiting for the writer; past it they are dropped and counted.
    #[serde(default = "default_dnstap_queue")]
    pub queue: usize,
}

impl DnstapConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.sample == 0 {
            return Err("dnstap.sample: 0; give 1 to log every response, N for one in N".into());
        }
        if self.ipv4_prefix > 32 || self.ipv6_prefix > 128 {
            return Err(format!(
                "dnstap: prefixes /{} and /{} do not fit IPv4 (at most 32) and IPv6 (at most 128)",
                self.ipv4_prefix, self.ipv6_prefix
            ));
        }
        if self.queue == 0 || self.queue > 1 << 20 {
            return Err(format!(
                "dnstap.queue: {}; give 1 to {}",
                self.queue,
                1 << 20
            ));
        }
        Ok(())
    }
}

fn default_dnstap_sample() -> u32 {
    1
}

fn default_dnstap_ipv4_prefix() -> u8 {
    24
}

fn default_dnstap_ipv6_prefix() -> u8 {
    48
}

fn default_dnstap_queue() -> usize {
    16_384
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to serve DNS on, over both UDP and TCP.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// UDP sockets (and receive loops) per address; 0 means one per CPU.
    #[serde(default)]
    pub udp_sockets: usize,
    /// Largest UDP response we send to EDNS clients, whatever they offer
    /// (1232 avoids IP fragmentation, per DNS Flag Day 2020).
    #[serde(default = "default_max_udp_payload")]
    pub max_udp_payload: u16,
    /// A TCP connection idle this long is closed.
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout: Duration,
    /// Concurrent TCP connections; further ones are closed at once.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    /// Concurrent TCP connections per client address (IPv6: per /64);
    /// past it, the client's own longest-idle connection is closed.
    #[serde(default = "default_tcp_max_connections_per_client")]
    pub tcp_max_connections_per_client: usize,
    /// Bytes of encoded answers kept for the whole process, shared out
    /// among the UDP receive loops.
    #[serde(default = "default_answer_cache_size")]
    pub answer_cache_size: ByteSize,
    /// This server's name for operators: sent in the NSID option to
    /// queries that ask for it (RFC 5001) and answered to CHAOS TXT
    /// `id.server` and `hostname.bind`. Unset, neither is given.
    #[serde(default)]
    pub identity: Option<String>,
    /// Answered to CHAOS TXT `version.bind` and `version.server`. Unset,
    /// those queries are refused: a version tells attackers what to try.
    #[serde(default)]
    pub version: Option<String>,
    /// Response rate limiting of UDP answers.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// The key of DNS server cookies (RFC 9018), 32 hexadecimal digits:
    /// give every server of an NS set or anycast address the same one, so
    /// that each accepts the cookies of the others. Unset, a random key is
    /// drawn at start.
    #[serde(default)]
    pub cookie_secret: Option<String>,
}

/// Response rate limiting (as BIND, Knot and NSD have it): UDP responses
/// to one client prefix of one class (an answer for one name and type, the
/// negative answers of one zone, errors) beyond `responses_per_second` are
/// dropped, but every `slip`-th of them is sent truncated so that a real
/// client behind the prefix retries over TCP. TCP is never limited: its
/// handshake proves the address.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Responses per second and class for one client prefix (also the
    /// burst); 0 turns rate limiting off.
    #[serde(default = "default_responses_per_second")]
    pub responses_per_second: u32,
    /// Every this many limited responses, one is sent truncated; 0 sends
    /// none (pure drop), 1 truncates them all.
    #[serde(default = "default_slip")]
    pub slip: u32,
    /// IPv4 clients are grouped by this prefix.
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4_prefix: u8,
    /// IPv6 clients are grouped by this prefix.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Buckets of the table; prefixes and classes beyond it share buckets
    /// (memory stays fixed whatever the flood).
    #[serde(default = "default_rate_limit_table_size")]
    pub table_size: usize,
    /// Clients never limited. Loopback by default: its addresses cannot be
    /// spoofed from outside.
    #[serde(default = "default_rate_limit_exempt")]
    pub exempt: Vec<ipnet::IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            responses_per_second: default_responses_per_second(),
            slip: default_slip(),
            ipv4_prefix: default_ipv4_prefix(),
            ipv6_prefix: default_ipv6_prefix(),
            table_size: default_rate_limit_table_size(),
            exempt: default_rate_limit_exempt(),
        }
    }
}

fn default_responses_per_second() -> u32 {
    200
}

fn default_slip() -> u32 {
    2
}

fn default_ipv4_prefix() -> u8 {
    24
}

fn default_ipv6_prefix() -> u8 {
    56
}

fn default_rate_limit_table_size() -> usize {
    1 << 16
}

fn default_rate_limit_exempt() -> Vec<ipnet::IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("IPv4 loopback"),
        "::1/128".parse().expect("IPv6 loopback"),
    ]
}

/// The longest `server.identity` or `server.version`: one TXT string.
pub const MAX_IDENTITY_LENGTH: usize = 255;

impl ServerConfig {
    /// Whether `other` differs in a setting read only at start: all but
    /// `identity` and `version`, which apply at the next reload.
    pub fn differs_at_start(&self, other: &Self) -> bool {
        let at_start = |config: &Self| Self {
            identity: None,
            version: None,
            ..config.clone()
        };
        at_start(self) != at_start(other)
    }

    /// The configured cookie secret, or an error saying what is wrong.
    pub fn cookie_secret(&self) -> Result<Option<[u8; 16]>, String> {
        let Some(text) = &self.cookie_secret else {
            return Ok(None);
        };
        let digits = text.trim();
        let parsed = (digits.len() == 32 && digits.is_ascii())
            .then(|| {
                (0..16)
                    .map(|at| u8::from_str_radix(&digits[at * 2..at * 2 + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()
            })
            .flatten()
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok());
        parsed.map(Some).ok_or_else(|| {
            "server.cookie_secret: give 32 hexadecimal digits (16 bytes), e.g. from `openssl rand -hex 16`".to_string()
        })
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.cookie_secret()?;
        for (key, value) in [("identity", &self.identity), ("version", &self.version)] {
            if let Some(value) = value
                && (value.is_empty() || value.len() > MAX_IDENTITY_LENGTH)
            {
                return Err(format!(
                    "server.{key}: {} bytes; give 1 to {MAX_IDENTITY_LENGTH}, or leave it out",
                    value.len()
                ));
            }
        }
        let limit = &self.rate_limit;
        if limit.ipv4_prefix > 32 || limit.ipv6_prefix > 128 {
            return Err(format!(
                "server.rate_limit: prefixes /{} and /{} do not fit IPv4 (at most 32) and IPv6 (at most 128)",
                limit.ipv4_prefix, limit.ipv6_prefix
            ));
        }
        if limit.table_size == 0 || limit.table_size > 1 << 24 {
            return Err(format!(
                "server.rate_limit.table_size: {}; give 1 to {}",
                limit.table_size,
                1 << 24
            ));
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            udp_sockets: 0,
            max_udp_payload: default_max_udp_payload(),
            tcp_idle_timeout: default_tcp_idle_timeout(),
            tcp_max_connections: default_tcp_max_connections(),
            tcp_max_connections_per_client: default_tcp_max_connections_per_client(),
            answer_cache_size: default_answer_cache_size(),
            identity: None,
            version: None,
            rate_limit: RateLimitConfig::default(),
            cookie_secret: None,
        }
    }
}

fn default_listen() -> Vec<SocketAddr> {
    vec![
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 53),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 53),
    ]
}

fn default_max_udp_payload() -> u16 {
    1232
}

fn default_tcp_idle_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_tcp_max_connections() -> usize {
    1024
}

fn default_tcp_max_connections_per_client() -> usize {
    64
}

fn default_answer_cache_size() -> ByteSize {
    ByteSize::mib(16)
}

/// `[geoip]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    /// MaxMind-format databases, consulted in order.
    #[serde(default)]
    pub databases: Vec<PathBuf>,
    /// Override files (.toml or .csv), longest prefix first, before any database.
    #[serde(default)]
    pub overrides: Vec<PathBuf>,
    /// Record layout of the databases.
    #[serde(default)]
    pub schema: SchemaConfig,
}

/// `[health]`: how edges are checked.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Time between checks of one edge.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// A check that takes longer has failed.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Consecutive successes that bring a down edge up.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take an up edge down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Random delay added to each interval so checks of many edges spread out.
    #[serde(default = "default_jitter")]
    pub jitter: Duration,
    /// An edge reporting this utilisation or more (0 to 1) gets no new
    /// clients until it reports 0.1 less; when every edge is saturated they
    /// are answered anyway. 1.0 only sheds edges that are full.
    #[serde(default = "default_saturated_at")]
    pub saturated_at: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            timeout: default_timeout(),
            rise: default_rise(),
            fall: default_fall(),
            jitter: default_jitter(),
            saturated_at: default_saturated_at(),
        }
    }
}

fn default_saturated_at() -> f64 {
    0.95
}

// A dead edge is detected within fall * interval + timeout = 2 * 1.5s + 1s = 4s,
// plus jitter: under the 5 s the product promises.
fn default_interval() -> Duration {
    Duration::from_millis(1500)
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_rise() -> u32 {
    2
}

fn default_fall() -> u32 {
    2
}

fn default_jitter() -> Duration {
    Duration::from_millis(200)
}

/// `[zones."example.com"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Start of authority. Taken from `file` when that has one.
    pub soa: Option<SoaConfig>,
    /// Name servers of the zone (NS at the apex). In-zone names need A/AAAA
    /// records, which are then served as glue.
    #[serde(default)]
    pub ns: Vec<String>,
    /// TTL of records that do not give one.
    #[serde(default = "default_record_ttl")]
    pub ttl: Duration,
    /// An RFC 1035 zone file with more records.
    pub file: Option<PathBuf>,
    /// Static records.
    #[serde(default)]
    pub records: Vec<RecordConfig>,
    /// Clients allowed to transfer the zone (AXFR/IXFR); nobody by default.
    #[serde(default)]
    pub allow_transfer: Vec<ipnet::IpNet>,
    /// Secondaries told by DNS NOTIFY (RFC 1996) at start and whenever the
    /// serial changes, so that they transfer at once rather than at refresh.
    #[serde(default)]
    pub notify: Vec<SocketAddr>,
}

fn default_record_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// `soa = { ... }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaConfig {
    /// Primary name server.
    pub mname: String,
    /// Responsible mailbox, as a name (`hostmaster.example.com`).
    pub rname: String,
    /// Serial number. Without it, the serial is derived from the zone's
    /// content (the same on every server given the same configuration) and
    /// moved forward when a reload changes the content.
    pub serial: Option<u32>,
    /// Secondary refresh interval.
    #[serde(default = "default_refresh")]
    pub refresh: Duration,
    /// Secondary retry interval.
    #[serde(default = "default_retry")]
    pub retry: Duration,
    /// Secondary expiry.
    #[serde(default = "default_expire")]
    pub expire: Duration,
    /// Negative-caching TTL (RFC 2308).
    #[serde(default = "default_minimum")]
    pub minimum: Duration,
    /// TTL of the SOA record itself.
    #[serde(default = "default_record_ttl")]
    pub ttl: Duration,
}

fn default_refresh() -> Duration {
    Duration::from_secs(3600)
}

fn default_retry() -> Duration {
    Duration::from_secs(900)
}

fn default_expire() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_minimum() -> Duration {
    Duration::from_secs(60)
}

/// `[[zones."example.com".records]]`: one resource record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Owner name, relative to the zone (`@` for the apex, `*.x` for a wildcard)
    /// or absolute with a trailing dot.
    pub name: String,
    /// Record type: A, AAAA, CNAME, TXT, MX, CAA, SRV, NS, PTR...
    #[serde(rename = "type")]
    pub record_type: String,
    /// Data in zone-file syntax, e.g. `10 mail.example.com.` for MX.
    pub value: String,
    /// TTL; the zone's `ttl` when absent.
    pub ttl: Option<Duration>,
}

/// `[services.name]`: a geo-balanced name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Zone the names live in.
    pub zone: String,
    /// Names answered by this service, relative to the zone; `*.img` for a wildcard.
    pub names: Vec<String>,
    /// TTL of geo answers.
    #[serde(default = "default_service_ttl")]
    pub ttl: Duration,
    /// How many edges each answer carries, nearest first.
    #[serde(default = "default_answers")]
    pub answers: usize,
    /// What to answer when the client cannot be located.
    #[serde(default)]
    pub fallback: Fallback,
    /// The edges listed here; edges announcing this service through
    /// `[cluster]` are added to them.
    #[serde(default)]
    pub edges: Vec<EdgeConfig>,
    /// Countries or continents pinned to regions.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Overrides `[health]` for this service's edges.
    pub health: Option<HealthConfig>,
}

fn default_service_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_answers() -> usize {
    1
}

/// Answer for clients of unknown location.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Fallback {
    /// The healthy edges with the highest weights.
    #[default]
    Weighted,
    /// The healthy edges of one region, by weight.
    Region(String),
}

/// `[[services.name.edges]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Unique name of the edge within the service.
    pub name: String,
    /// Region it belongs to (for rules and fallback).
    #[serde(default)]
    pub region: String,
    /// Where it is; looked up in the geo sources by its address when absent.
    pub location: Option<Coordinates>,
    /// IPv4 addresses (A answers).
    #[serde(default)]
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses (AAAA answers).
    #[serde(default)]
    pub ipv6: Vec<Ipv6Addr>,
    /// Preference among equals and for the fallback; 0 never serves by weight.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Kilometres added to (positive) or taken from (negative) this edge's
    /// distance when ranking, to shrink or grow its catchment.
    #[serde(default)]
    pub bias_km: f64,
    /// URL of its `/healthz`; without one the edge is always considered up.
    pub health: Option<String>,
}

fn default_weight() -> u32 {
    100
}

/// `[[services.name.rules]]`: clients from these places go to these regions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Client countries matched.
    #[serde(default)]
    pub countries: Vec<CountryCode>,
    /// Client continents matched.
    #[serde(default)]
    pub continents: Vec<Continent>,
    /// Regions whose healthy edges serve the matched clients (nearest first);
    /// when none of them is healthy, normal ranking applies.
    pub regions: Vec<String>,
}
