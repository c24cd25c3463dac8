//! Operator writes to etcd, shared by `geodns ctl` and the admin API:
//! drain and pool an edge cluster-wide, list members, publish a purge.

use etcd_client::GetOptions;

use super::ClusterView;
use shared::cluster::{
    AdminRecord, AdminState, ClusterError, EtcdClient, EtcdConfig, MemberRecord, PurgeScope,
    decode, encode, unix_now,
};

/// A connection to etcd with the key layout of one CDN.
pub struct Control {
    client: EtcdClient,
    config: EtcdConfig,
}

impl Control {
    /// Connects.
    pub async fn connect(config: &EtcdConfig) -> Result<Self, ClusterError> {
        Ok(Self {
            client: config.connect().await?,
            config: config.clone(),
        })
    }

    /// Marks `edge` drained: every geodns stops sending it new clients.
    /// The edge need not be announced yet (a static edge, or one about to join).
    pub async fn drain(&mut self, edge: &str, reason: Option<String>) -> Result<(), ClusterError> {
        check_name(edge)?;
        let record = AdminRecord {
            state: AdminState::Drained,
            since: unix_now(),
            reason,
        };
        self.client
            .put(self.config.keys().admin_state(edge), encode(&record), None)
            .await?;
        Ok(())
    }

    /// Undoes [`Control::drain`]; returns whether the edge was drained.
    pub async fn pool(&mut self, edge: &str) -> Result<bool, ClusterError> {
        check_name(edge)?;
        let deleted = self
            .client
            .delete(self.config.keys().admin_state(edge), None)
            .await?;
        Ok(deleted.deleted() > 0)
    }

    /// Names of the edges an operator drained, announced or not.
    pub async fn drained(&mut self) -> Result<Vec<String>, ClusterError> {
        let keys = self.config.keys();
        let admin = self
            .client
            .get(keys.admin(), Some(GetOptions::new().with_prefix()))
            .await?;
        let mut names: Vec<String> = admin
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok())
            .filter_map(|key| keys.name_in(&keys.admin(), key).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Announced edges with the operator's state of each, sorted by name.
    pub async fn members(&mut self) -> Result<Vec<(MemberRecord, bool)>, ClusterError> {
        let keys = self.config.keys();
        let prefix = Some(GetOptions::new().with_prefix());
        let members = self.client.get(keys.members(), prefix).await?;
        let drained = self.drained().await?;
        let mut list = Vec::new();
        for kv in members.kvs() {
            let key = kv.key_str().unwrap_or_default();
            let record: MemberRecord = decode(key, kv.value())?;
            let is_drained = drained.contains(&record.name);
            list.push((record, is_drained));
        }
        list.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(list)
    }

    /// The current view, read once (for `explain`).
    pub async fn view(&mut self) -> Result<ClusterView, ClusterError> {
        let keys = self.config.keys();
        let mut view = ClusterView::default();
        for prefix in [keys.members(), keys.admin()] {
            let response = self
                .client
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await?;
            for kv in response.kvs() {
                if let Ok(key) = kv.key_str() {
                    view.apply_put(&keys, key, kv.value());
                }
            }
        }
        Ok(view)
    }

    /// Publishes a purge for every edge; returns the etcd revision it got.
    pub async fn purge(&mut self, scope: PurgeScope, from: &str) -> Result<i64, ClusterError> {
        let lease = shared::cluster::grant_purge_lease(&mut self.client).await?;
        shared::cluster::publish_purge(&mut self.client, &self.config, scope, from, lease).await
    }
}

fn check_name(edge: &str) -> Result<(), ClusterError> {
    if edge.is_empty() || edge.contains('/') || edge.chars().any(char::is_whitespace) {
        return Err(ClusterError::Config(format!(
            "\"{edge}\" is not an edge name (no slashes or spaces)"
        )));
    }
    Ok(())
}
