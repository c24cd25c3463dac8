//! The control plane both binaries share: how to reach etcd, where things
//! live under the key prefix, and the records stored there.
//!
//! etcd holds these keys, all under one prefix (default `/geocdn`):
//!
//! | key | written by | value | lifetime |
//! | --- | --- | --- | --- |
//! | `<prefix>/members/<edge>` | the edge itself | [`MemberRecord`] | the edge's lease: gone when it stops or dies |
//! | `<prefix>/admin/<edge>` | `geodns ctl drain` | [`AdminRecord`] | until `geodns ctl pool` deletes it |
//! | `<prefix>/purges/<id>` | any edge or `geodns ctl purge` | [`PurgeRecord`] | a lease of [`PURGE_RETENTION`] |
//! | `<prefix>/acme/locks/<certificate>` | the edge ordering that certificate | its name | that edge's lease, while it orders |
//! | `<prefix>/acme/challenges/<kind>/<id>` | the edge ordering | [`AcmeChallengeRecord`] | the same lease |
//! | `<prefix>/acme/certificates/<certificate>` | the edge that ordered it | the chain and its private key (JSON) | until replaced |
//!
//! The certificate records hold private keys: give etcd TLS and
//! authentication (`ca_file`, `username`) when `[acme]` is used.
//!
//! Values are JSON so that `etcdctl get --prefix /geocdn` is readable, and
//! unknown fields are ignored on read so that mixed versions keep working
//! during an upgrade.

mod backoff;
mod follow;
mod records;
mod view;

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::units::Duration;

pub use backoff::Backoff;
pub use follow::{ClusterMetrics, ClusterStatus, ClusterStatusReport, follow};
pub use records::{
    AcmeChallengeRecord, AdminRecord, AdminState, MemberRecord, PurgeRecord, PurgeScope, decode,
    encode, grant_purge_lease, publish_purge, unix_now,
};
pub use view::ClusterView;

pub use etcd_client::Client as EtcdClient;

/// How long purge records stay in etcd: an edge disconnected for longer
/// catches up by watching from its last revision (etcd keeps history until
/// compaction), not by reading these keys.
pub const PURGE_RETENTION: std::time::Duration = std::time::Duration::from_secs(3600);

/// `[cluster]`: how to reach etcd. The same section in geodns and edge files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members (`http://host:2379`); any live one will do.
    pub endpoints: Vec<String>,
    /// Key prefix, so that several CDNs (or a staging one) can share an etcd.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Bound on establishing a connection to a member.
    #[serde(default = "default_dial_timeout")]
    pub dial_timeout: Duration,
    /// Bound on each request.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// User name when etcd has authentication enabled.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding that user's password (kept out of the config file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed etcd's certificates; needed for
    /// `https://` endpoints.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, when etcd asks for one (`--client-cert-auth`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Where to keep a copy of the last membership seen, so that a restart
    /// while etcd is unreachable starts from it instead of from nothing.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

fn default_prefix() -> String {
    "/geocdn".to_string()
}

fn default_dial_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(3)
}

/// Why talking to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The settings cannot work.
    #[error("{0}")]
    Config(String),
    /// A watch or lease ended: the caller starts over.
    #[error("{0}")]
    Lost(String),
    /// etcd refused or did not answer.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A stored value is not what it should be.
    #[error("etcd key {key}: {message}")]
    Record {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl EtcdConfig {
    /// `endpoints` under `prefix`, other settings at their defaults.
    pub fn new(endpoints: Vec<String>, prefix: String) -> Self {
        Self {
            endpoints,
            prefix,
            dial_timeout: default_dial_timeout(),
            request_timeout: default_request_timeout(),
            username: None,
            password_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            state_file: None,
        }
    }

    /// Checks what the schema cannot: endpoints present and well formed, prefix absolute.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.endpoints.is_empty() {
            return Err(ClusterError::Config(
                "cluster.endpoints: give at least one etcd client URL".into(),
            ));
        }
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let rest = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"));
            if rest.is_none_or(|rest| rest.is_empty() || rest.contains('/')) {
                return Err(ClusterError::Config(format!(
                    "cluster.endpoints[{index}]: \"{endpoint}\" must look like http://host:2379"
                )));
            }
        }
        let tls = self
            .endpoints
            .iter()
            .any(|endpoint| endpoint.starts_with("https://"));
        if tls
            && self
                .endpoints
                .iter()
                .any(|endpoint| endpoint.starts_with("http://"))
        {
            return Err(ClusterError::Config(
                "cluster.endpoints: mix of http:// and https://; use one scheme".into(),
            ));
        }
        if tls && self.ca_file.is_none() {
            return Err(ClusterError::Config(
                "cluster.ca_file: https:// endpoints need the CA that signed etcd's certificate"
                    .into(),
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(ClusterError::Config(
                "cluster.cert_file and cluster.key_file go together".into(),
            ));
        }
        if !self.prefix.starts_with('/') || self.prefix.len() < 2 || self.prefix.ends_with('/') {
            return Err(ClusterError::Config(format!(
                "cluster.prefix: \"{}\" must start with / and not end with one",
                self.prefix
            )));
        }
        Ok(())
    }

    /// Makes relative file paths relative to `base` (the directory of the
    /// configuration file) instead of the working directory.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for path in [
            &mut self.password_file,
            &mut self.ca_file,
            &mut self.cert_file,
            &mut self.key_file,
            &mut self.state_file,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// The key layout under this prefix.
    pub fn keys(&self) -> KeyLayout {
        KeyLayout {
            prefix: self.prefix.clone(),
        }
    }

    /// Connects to the first etcd member that answers, starting from a
    /// different one in each process so that load spreads. One member per
    /// connection: a client balanced over several keeps sending some
    /// requests to a dead member, while callers here reconnect (to the
    /// next member) whenever a request fails. Each request is bounded by
    /// `request_timeout`; a member cut off from the quorum refuses watches.
    pub async fn connect(&self) -> Result<EtcdClient, ClusterError> {
        self.validate()?;
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(self.dial_timeout.as_std())
            .with_timeout(self.request_timeout.as_std())
            .with_keep_alive(
                std::time::Duration::from_secs(5),
                self.request_timeout.as_std(),
            )
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some(user) = &self.username {
            options = options.with_user(user.clone(), self.password()?);
        }
        if let Some(ca) = &self.ca_file {
            let mut tls = etcd_client::TlsOptions::new().ca_certificate(
                etcd_client::Certificate::from_pem(read_file("ca_file", ca)?),
            );
            if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
                tls = tls.identity(etcd_client::Identity::from_pem(
                    read_file("cert_file", cert)?,
                    read_file("key_file", key)?,
                ));
            }
            options = options.with_tls(tls);
        }
        let start = usize::try_from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.subsec_nanos()),
        )
        .unwrap_or(0);
        let count = self.endpoints.len();
        let mut last_error = None;
        for offset in 0..count {
            let endpoint = &self.endpoints[(start + offset) % count];
            match try_member(endpoint, options.clone(), self.request_timeout.as_std()).await {
                Ok(client) => return Ok(client),
                Err(error) => {
                    tracing::debug!(endpoint, %error, "etcd member unavailable");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| ClusterError::Config("cluster.endpoints: none given".into())))
    }

    fn password(&self) -> Result<String, ClusterError> {
        match &self.password_file {
            Some(path) => {
                let bytes = read_file("password_file", path)?;
                Ok(String::from_utf8_lossy(&bytes).trim_end().to_string())
            }
            None => Ok(String::new()),
        }
    }
}

fn read_file(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ClusterError> {
    std::fs::read(path).map_err(|error| {
        ClusterError::Config(format!(
            "cluster.{key}: cannot read {}: {error}",
            path.display()
        ))
    })
}

/// A client of one member, checked with a status request.
async fn try_member(
    endpoint: &str,
    options: etcd_client::ConnectOptions,
    timeout: std::time::Duration,
) -> Result<EtcdClient, ClusterError> {
    let mut client = EtcdClient::connect([endpoint], Some(options)).await?;
    match tokio::time::timeout(timeout, client.status()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(ClusterError::Lost(format!(
            "{endpoint} did not answer within {timeout:?}"
        ))),
    }
}

/// Where each kind of record lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    prefix: String,
}

impl KeyLayout {
    /// Prefix of every member record (with the trailing slash).
    pub fn members(&self) -> String {
        format!("{}/members/", self.prefix)
    }

    /// The member record of edge `name`.
    pub fn member(&self, name: &str) -> String {
        format!("{}{name}", self.members())
    }

    /// Prefix of every admin record.
    pub fn admin(&self) -> String {
        format!("{}/admin/", self.prefix)
    }

    /// The admin record of edge `name`.
    pub fn admin_state(&self, name: &str) -> String {
        format!("{}{name}", self.admin())
    }

    /// Prefix of every purge record.
    pub fn purges(&self) -> String {
        format!("{}/purges/", self.prefix)
    }

    /// A new purge record key: time-ordered, unique per publisher.
    pub fn purge(&self, publisher: &str) -> String {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        format!("{}{nanos:032}-{publisher}", self.purges())
    }

    /// Prefix of everything ACME keeps.
    pub fn acme(&self) -> String {
        format!("{}/acme/", self.prefix)
    }

    /// The lock held while certificate `name` (its first name) is ordered.
    pub fn acme_lock(&self, name: &str) -> String {
        format!("{}locks/{name}", self.acme())
    }

    /// Prefix of the challenge answers being published.
    pub fn acme_challenges(&self) -> String {
        format!("{}challenges/", self.acme())
    }

    /// Prefix of the DNS-01 answers, which geodns serves.
    pub fn acme_dns_challenges(&self) -> String {
        format!("{}dns-01/", self.acme_challenges())
    }

    /// The certificate record of certificate `name` (its first name).
    pub fn acme_certificate(&self, name: &str) -> String {
        format!("{}certificates/{name}", self.acme())
    }

    /// Prefix of the certificate records.
    pub fn acme_certificates(&self) -> String {
        format!("{}certificates/", self.acme())
    }

    /// The last path segment of `key` under `prefix` (an edge name), if it is one.
    pub fn name_in<'a>(&self, prefix: &str, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(prefix)
            .filter(|name| !name.is_empty() && !name.contains('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoints: &[&str], prefix: &str) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints.iter().map(ToString::to_string).collect(),
            prefix: prefix.to_string(),
            dial_timeout: default_dial_timeout(),
            request_timeout: default_request_timeout(),
            username: None,
            password_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            state_file: None,
        }
    }

    #[test]
    fn validation_names_the_key() {
        let error = config(&[], "/geocdn").validate().unwrap_err().to_string();
        assert!(error.contains("cluster.endpoints"), "{error}");
        let error = config(&["127.0.0.1:2379"], "/geocdn")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("cluster.endpoints[0]"), "{error}");
        let error = config(&["http://127.0.0.1:2379"], "geocdn/")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("cluster.prefix"), "{error}");
        config(&["http://127.0.0.1:2379"], "/geocdn")
            .validate()
            .expect("valid");
        let error = config(&["https://etcd-1:2379"], "/geocdn")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("cluster.ca_file"), "{error}");
        let mut mixed = config(&["https://etcd-1:2379", "http://etcd-2:2379"], "/geocdn");
        mixed.ca_file = Some("ca.pem".into());
        let error = mixed.validate().unwrap_err().to_string();
        assert!(error.contains("one scheme"), "{error}");
    }

    #[test]
    fn key_layout() {
        let keys = config(&["http://e:2379"], "/cdn").keys();
        assert_eq!(keys.member("eu-1"), "/cdn/members/eu-1");
        assert_eq!(keys.admin_state("eu-1"), "/cdn/admin/eu-1");
        assert_eq!(
            keys.name_in(&keys.members(), "/cdn/members/eu-1"),
            Some("eu-1")
        );
        assert_eq!(keys.name_in(&keys.members(), "/cdn/members/a/b"), None);
        let first = keys.purge("x");
        assert!(first.starts_with("/cdn/purges/") && first.ends_with("-x"));
    }
}
