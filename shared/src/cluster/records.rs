//! The records stored under the key prefix, as JSON.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{ClusterError, EtcdClient, EtcdConfig, PURGE_RETENTION};
use crate::health::EdgeStatus;

/// What an edge announces about itself: everything geodns needs to answer
/// with it and peers need to fetch from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Unique edge name (the key's last segment).
    pub name: String,
    /// The geodns service it serves.
    pub service: String,
    /// Its region: rules and fallback in geodns, the fill ring among edges.
    pub region: String,
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// Addresses for A answers.
    #[serde(default)]
    pub ipv4: Vec<Ipv4Addr>,
    /// Addresses for AAAA answers.
    #[serde(default)]
    pub ipv6: Vec<Ipv6Addr>,
    /// Base URL of its admin API (`/healthz`, `/metrics`, `/purge`...).
    #[serde(default)]
    pub admin_url: String,
    /// Where geodns polls its health document.
    pub health_url: String,
    /// Base URL peers fetch from (`http://host:port`).
    pub fill_url: String,
    /// Preference among equals.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Cache capacity in bytes.
    #[serde(default)]
    pub capacity_bytes: u64,
    /// Software version.
    #[serde(default)]
    pub version: String,
    /// What the edge itself says (`draining` after a local `/drain`).
    #[serde(default = "default_status")]
    pub status: EdgeStatus,
}

fn default_weight() -> u32 {
    1
}

fn default_status() -> EdgeStatus {
    EdgeStatus::Up
}

/// Operator decisions about an edge, honoured by every geodns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// What the operator asked for.
    pub state: AdminState,
    /// When, in seconds since the Unix epoch.
    #[serde(default)]
    pub since: u64,
    /// Free text for the next operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The operator's wish for an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// No new clients, whatever the health checks say.
    Drained,
}

/// What a purge removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "lowercase")]
pub enum PurgeScope {
    /// One URL (absolute, or a path on `host`).
    Url {
        /// The URL or path.
        url: String,
        /// Host for a path.
        #[serde(default)]
        host: String,
    },
    /// Every URL under a prefix (absolute, or a path on `host`).
    Prefix {
        /// The prefix.
        prefix: String,
        /// Host for a path prefix.
        #[serde(default)]
        host: String,
    },
    /// Everything.
    All,
}

/// A purge published to every edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRecord {
    /// What to remove.
    #[serde(flatten)]
    pub scope: PurgeScope,
    /// Who published it (an edge name or `ctl`).
    pub from: String,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub at: u64,
}

/// The answer to one ACME challenge, published by the edge ordering so
/// that whichever server the CA's validation reaches can answer it: every
/// edge for HTTP-01 and TLS-ALPN-01, every geodns for DNS-01.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum AcmeChallengeRecord {
    /// Serve `key_authorization` at `/.well-known/acme-challenge/<token>`.
    #[serde(rename = "http-01")]
    Http01 {
        /// The challenge token.
        token: String,
        /// The body to serve.
        key_authorization: String,
    },
    /// Serve a certificate for `name` carrying `digest` (hex SHA-256 of the
    /// key authorization) to `acme-tls/1` handshakes.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01 {
        /// The name validated.
        name: String,
        /// Hex SHA-256 of the key authorization.
        digest: String,
    },
    /// Answer `_acme-challenge.<name>` TXT with `value`.
    #[serde(rename = "dns-01")]
    Dns01 {
        /// The name validated (without `_acme-challenge.`).
        name: String,
        /// The TXT value.
        value: String,
    },
}

impl AcmeChallengeRecord {
    /// Where the record lives under
    /// [`super::KeyLayout::acme_challenges`]: `<kind>/<token or name>`
    /// (and the value for DNS-01, since a name and its wildcard share one
    /// TXT name).
    pub fn id(&self) -> String {
        match self {
            Self::Http01 { token, .. } => format!("http-01/{token}"),
            Self::TlsAlpn01 { name, .. } => format!("tls-alpn-01/{name}"),
            Self::Dns01 { name, value } => format!("dns-01/{name}/{value}"),
        }
    }
}

/// Writes a purge record under `lease` (from [`grant_purge_lease`]), so
/// that old records clean themselves up; edges follow purges by watching,
/// not by reading these keys. Returns the etcd revision of the record.
pub async fn publish_purge(
    client: &mut EtcdClient,
    config: &EtcdConfig,
    scope: PurgeScope,
    from: &str,
    lease: i64,
) -> Result<i64, ClusterError> {
    let record = PurgeRecord {
        scope,
        from: from.to_string(),
        at: unix_now(),
    };
    let put = client
        .put(
            config.keys().purge(from),
            encode(&record),
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await?;
    Ok(put.header().map_or(0, |header| header.revision()))
}

/// A lease of [`PURGE_RETENTION`] for purge records. A publisher may put
/// many records under one lease (they then live between the lease's
/// remaining time and its full TTL) rather than grant one per purge.
pub async fn grant_purge_lease(client: &mut EtcdClient) -> Result<i64, ClusterError> {
    let ttl = i64::try_from(PURGE_RETENTION.as_secs()).unwrap_or(3600);
    Ok(client.lease_grant(ttl, None).await?.id())
}

/// Seconds since the Unix epoch, for records.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Decodes a JSON record stored at `key`.
pub fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|error| ClusterError::Record {
        key: key.to_string(),
        message: error.to_string(),
    })
}

/// Encodes a record as JSON.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_records_round_trip() {
        let record = PurgeRecord {
            scope: PurgeScope::Prefix {
                prefix: "/img/".into(),
                host: "cdn.test".into(),
            },
            from: "eu-1".into(),
            at: 5,
        };
        let bytes = encode(&record);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"scope\":\"prefix\""), "{text}");
        assert_eq!(decode::<PurgeRecord>("k", &bytes).unwrap(), record);
        let all: PurgeRecord = decode("k", br#"{"scope":"all","from":"ctl"}"#).unwrap();
        assert_eq!(all.scope, PurgeScope::All);
        assert!(decode::<PurgeRecord>("k", b"{").is_err());
    }
}
