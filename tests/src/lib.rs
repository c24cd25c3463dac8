//! Harness for the end-to-end tests and for other crates' integration tests:
//! fixtures that have to be fetched or started rather than written inline.

pub mod geo_databases;
