//! edge: the caching reverse proxy node of the CDN.
//!
//! Serves clients from an in-memory cache with the semantics of an RFC 9111
//! shared cache and fetches from the origin only on a miss. The binary is a
//! thin shell over this library so that tests and benchmarks reach the same
//! code.

pub mod access_log;
pub mod acme;
pub mod admin;
pub mod authority;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod tls;
