//! Membership and operator state from etcd.
//!
//! With `[cluster]` configured, geodns follows the member records edges keep
//! alive with a lease and the admin records `geodns ctl drain` writes (see
//! [`shared::cluster`] for the layout and the follower). Each new
//! [`shared::cluster::ClusterView`] is merged with the static edges into a
//! new snapshot off the query path
//! (see [`crate::snapshot::Snapshot::with_cluster`]).
//!
//! When etcd goes away the last view stays in force: a control-plane outage
//! must never empty a service. The follower retries with backoff and says so
//! in `/status` and the `cluster_connected` metric.

pub mod ctl;

pub use shared::cluster::{ClusterStatus, ClusterStatusReport, ClusterView};
