//! DNS transports: UDP receive loops and a TCP listener, both handing bytes
//! to the [`Responder`]; and NOTIFY sent to secondaries.
//!
//! These are our own rather than hickory-server's `Server`: one thread per
//! UDP socket answers batches inline instead of spawning a task per datagram
//! (the largest cost per query in a minimal hickory server), several sockets
//! share each address through `SO_REUSEPORT` so every core receives, and TCP
//! gets the connection limit and idle timeout that `Server` lacks.

mod batch;
mod connections;
pub mod notify;
mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub use connections::Eviction;

use crate::answer::{AnswerCache, Responder};
use crate::config::ServerConfig;
use crate::dnstap::QueryLog;
use crate::metrics::DnsMetrics;
use connections::ConnectionTable;

/// The bound DNS listeners.
#[derive(Debug)]
pub struct DnsServer {
    addresses: Vec<SocketAddr>,
    tasks: tokio::task::JoinSet<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Binds every configured address (UDP and TCP on the same port) and
    /// starts serving until `shutdown` is cancelled.
    pub fn start(
        config: &ServerConfig,
        responder: Responder,
        metrics: Arc<DnsMetrics>,
        query_log: Option<QueryLog>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let sockets_per_address = match config.udp_sockets {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let loops = (sockets_per_address * config.listen.len()).max(1) as u64;
        let cache_budget = config.answer_cache_size.bytes() / loops;
        let connections = ConnectionTable::new(connections::Limits {
            max_connections: config.tcp_max_connections,
            max_per_client: config.tcp_max_connections_per_client,
        });
        let mut tasks = tokio::task::JoinSet::new();
        let mut threads = Vec::new();
        let mut addresses = Vec::new();
        for &requested in &config.listen {
            let (udp_sockets, tcp_listener) = bind_pair(requested, sockets_per_address)
                .with_context(|| format!("server.listen: cannot listen on {requested}"))?;
            let bound = tcp_listener.local_addr()?;
            for (index, socket) in udp_sockets.into_iter().enumerate() {
                let (responder, shutdown) = (responder.clone(), shutdown.clone());
                let query_log = query_log.clone();
                let cache = AnswerCache::new(cache_budget, metrics.answer_cache.clone());
                let thread = std::thread::Builder::new()
                    .name(format!("dns-udp-{index}"))
                    .spawn(move || udp::serve(socket, responder, cache, query_log, shutdown))?;
                threads.push(thread);
            }
            tasks.spawn(tcp::serve(
                tcp_listener,
                responder.clone(),
                tcp::Limits {
                    idle_timeout: config.tcp_idle_timeout.as_std(),
                    table: connections.clone(),
                },
                metrics.clone(),
                query_log.clone(),
                shutdown.clone(),
            ));
            tracing::info!(address = %bound, udp_sockets = sockets_per_address, "serving DNS over UDP and TCP");
            addresses.push(bound);
        }
        Ok(Self {
            addresses,
            tasks,
            threads,
        })
    }

    /// The bound addresses (real ports when 0 was configured).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Waits for every loop to finish after shutdown.
    pub async fn stopped(mut self) {
        while self.tasks.join_next().await.is_some() {}
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// Binds `count` UDP sockets and one TCP listener on the same port. With
/// port 0 the kernel picks a UDP port and TCP takes the same one; if that
/// port is busy for TCP, try again.
fn bind_pair(
    requested: SocketAddr,
    count: usize,
) -> std::io::Result<(Vec<std::net::UdpSocket>, tokio::net::TcpListener)> {
    let attempts = if requested.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let first = udp::bind(requested)?;
        let address = first.local_addr()?;
        match tcp::bind(address) {
            Ok(listener) => {
                let mut sockets = vec![first];
                for _ in 1..count {
                    sockets.push(udp::bind(address)?);
                }
                return Ok((sockets, listener));
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("cannot bind")))
}
