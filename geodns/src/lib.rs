//! geodns: a geo-aware authoritative DNS load balancer.
//!
//! For each query it locates the client (EDNS Client Subnet, else the
//! resolver's address) in a GeoIP database and answers with the nearest
//! edges that its health checks see as up. The binary is a thin shell over
//! this library so that tests and benchmarks reach the same code.

pub mod commands;
