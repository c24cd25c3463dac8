//! geodns: a geo-aware authoritative DNS load balancer.
//!
//! For each query it locates the client (EDNS Client Subnet, else the
//! resolver's address) in a GeoIP database and answers with the nearest
//! edges that its health checks see as up. The binary is a thin shell over
//! this library so that tests and benchmarks reach the same code.
//!
//! A query flows through: a transport ([`server`]) hands bytes to the
//! [`answer::Responder`], which reads the current [`snapshot::Snapshot`],
//! finds the [`zone`], and for geo names asks [`geo`] which edges to give,
//! with live states from [`health`].

pub mod acme_challenges;
pub mod admin;
pub mod answer;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod dnstap;
pub mod explain;
pub mod geo;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod zone;
