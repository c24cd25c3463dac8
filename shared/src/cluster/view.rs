//! What etcd says about the edges (the member and admin records) and the
//! DNS-01 answers edges publish while ordering certificates, applied event
//! by event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AcmeChallengeRecord, AdminRecord, AdminState, KeyLayout, MemberRecord};

/// What etcd says about the edges, as last seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Announced edges, by name (sorted, so that every geodns orders them alike).
    pub members: BTreeMap<String, MemberRecord>,
    /// Operator decisions, by edge name.
    pub admin: BTreeMap<String, AdminRecord>,
    /// DNS-01 answers being published, by etcd key: the name validated and
    /// the TXT value. Short-lived, so never saved with the membership.
    #[serde(skip)]
    pub dns_challenges: BTreeMap<String, (String, String)>,
}

impl ClusterView {
    /// Whether an operator drained edge `name`.
    pub fn is_drained(&self, name: &str) -> bool {
        self.admin
            .get(name)
            .is_some_and(|record| record.state == AdminState::Drained)
    }

    /// Applies a put of `value` at `key`; returns whether the view changed.
    /// Records that do not decode are logged and treated as absent.
    pub fn apply_put(&mut self, keys: &KeyLayout, key: &str, value: &[u8]) -> bool {
        if let Some(name) = keys.name_in(&keys.members(), key) {
            return match super::decode::<MemberRecord>(key, value) {
                Ok(record) if record.name == name => {
                    self.members.insert(name.to_string(), record.clone()) != Some(record)
                }
                Ok(record) => {
                    tracing::warn!(
                        key,
                        named = record.name,
                        "member record names another edge; ignored"
                    );
                    self.members.remove(name).is_some()
                }
                Err(error) => {
                    tracing::warn!(%error, "ignoring member record");
                    self.members.remove(name).is_some()
                }
            };
        }
        if let Some(name) = keys.name_in(&keys.admin(), key) {
            return match super::decode::<AdminRecord>(key, value) {
                Ok(record) => self.admin.insert(name.to_string(), record.clone()) != Some(record),
                Err(error) => {
                    tracing::warn!(%error, "ignoring admin record");
                    self.admin.remove(name).is_some()
                }
            };
        }
        if key.starts_with(&keys.acme_dns_challenges()) {
            return match super::decode::<AcmeChallengeRecord>(key, value) {
                Ok(AcmeChallengeRecord::Dns01 { name, value }) => {
                    let entry = (name, value);
                    self.dns_challenges.insert(key.to_string(), entry.clone()) != Some(entry)
                }
                Ok(_) => false,
                Err(error) => {
                    tracing::warn!(%error, "ignoring ACME challenge record");
                    self.dns_challenges.remove(key).is_some()
                }
            };
        }
        false
    }

    /// Applies a delete of `key`; returns whether the view changed.
    pub fn apply_delete(&mut self, keys: &KeyLayout, key: &str) -> bool {
        if let Some(name) = keys.name_in(&keys.members(), key) {
            return self.members.remove(name).is_some();
        }
        if let Some(name) = keys.name_in(&keys.admin(), key) {
            return self.admin.remove(name).is_some();
        }
        self.dns_challenges.remove(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::EdgeStatus;

    fn keys() -> KeyLayout {
        super::super::EtcdConfig::new(vec!["http://127.0.0.1:2379".into()], "/cdn".into()).keys()
    }

    fn member(name: &str) -> MemberRecord {
        MemberRecord {
            name: name.into(),
            service: "www".into(),
            region: "eu".into(),
            latitude: 52.0,
            longitude: 4.0,
            ipv4: vec!["192.0.2.1".parse().unwrap()],
            ipv6: vec![],
            admin_url: "http://192.0.2.1:9180".into(),
            health_url: "http://192.0.2.1:9180/healthz".into(),
            fill_url: "http://192.0.2.1:8080".into(),
            weight: 1,
            capacity_bytes: 0,
            version: "0".into(),
            status: EdgeStatus::Up,
        }
    }

    #[test]
    fn puts_and_deletes() {
        let keys = keys();
        let mut view = ClusterView::default();
        let value = super::super::encode(&member("eu-1"));
        assert!(view.apply_put(&keys, "/cdn/members/eu-1", &value));
        assert!(
            !view.apply_put(&keys, "/cdn/members/eu-1", &value),
            "same record"
        );
        assert!(!view.apply_put(&keys, "/cdn/purges/1-x", b"{}"), "not ours");
        assert!(
            !view.apply_put(&keys, "/cdn/members/eu-2", &value),
            "names another edge"
        );
        assert_eq!(view.members.len(), 1);
        assert!(view.apply_put(&keys, "/cdn/admin/eu-1", br#"{"state":"drained"}"#));
        assert!(view.is_drained("eu-1"));
        assert!(view.apply_delete(&keys, "/cdn/admin/eu-1"));
        assert!(!view.is_drained("eu-1"));
        assert!(view.apply_put(&keys, "/cdn/members/eu-1", b"not json"));
        assert!(
            view.members.is_empty(),
            "a broken record removes the member"
        );
    }

    #[test]
    fn dns_challenges_come_and_go_by_key() {
        let keys = keys();
        let mut view = ClusterView::default();
        let record = AcmeChallengeRecord::Dns01 {
            name: "cdn.test".into(),
            value: "abc".into(),
        };
        let key = format!("{}{}", keys.acme_challenges(), record.id());
        assert!(view.apply_put(&keys, &key, &super::super::encode(&record)));
        assert_eq!(
            view.dns_challenges.get(&key),
            Some(&("cdn.test".to_string(), "abc".to_string()))
        );
        let http = AcmeChallengeRecord::Http01 {
            token: "t".into(),
            key_authorization: "t.k".into(),
        };
        let http_key = format!("{}{}", keys.acme_challenges(), http.id());
        assert!(!view.apply_put(&keys, &http_key, &super::super::encode(&http)));
        assert!(view.apply_delete(&keys, &key));
        assert!(view.dns_challenges.is_empty());
        let saved = serde_json::to_string(&view).unwrap();
        assert!(!saved.contains("dns_challenges"), "{saved}");
    }
}
