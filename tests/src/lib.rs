//! Harness for the end-to-end tests and for other crates' integration tests:
//! fixtures that have to be fetched or started rather than written inline.

pub mod binaries;
pub mod dns;
pub mod etcd;
pub mod geo_databases;
pub mod health_endpoint;
pub mod http;
pub mod origin;
pub mod pebble;
pub mod pki;
pub mod process;
pub mod requirements;
