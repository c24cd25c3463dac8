//! What both binaries need and neither owns: configuration loading with
//! precise errors, human units, logging, Prometheus metrics, the admin HTTP
//! server, process signals, the health document that edges publish and
//! geodns reads, and the etcd records of the cluster control plane.
//!
//! Nothing here knows about DNS answers or HTTP caching; those live in the
//! `geodns` and `edge` crates.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod handover;
pub mod health;
pub mod listener;
pub mod log_limit;
pub mod metrics;
pub mod report;
pub mod signals;
pub mod telemetry;
pub mod units;

// The public interface most callers need:
pub use admin::{AdminConfig, AdminRouter, AdminServer};
pub use config::ConfigError;
pub use health::{EdgeStatus, HealthReport};
pub use signals::Signals;
pub use units::{ByteSize, Duration};
