//! The client-facing listeners: HTTP/1.1 and cleartext HTTP/2 on each
//! address, a bounded number of connections, a deadline for request heads
//! (slow clients are cut off), and a graceful stop. Connections write
//! through [`io::ClientStream`], which sends large cached bodies with
//! `sendfile`.

mod io;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use self::io::ClientStream;
use crate::config::ServerConfig;
use crate::proxy::Edge;

/// Running listeners.
#[derive(Debug)]
pub struct HttpServer {
    addresses: Vec<SocketAddr>,
    tasks: tokio::task::JoinSet<()>,
}

impl HttpServer {
    /// Binds every address and serves `edge` until `shutdown`.
    pub async fn start(
        config: &ServerConfig,
        edge: Edge,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout.as_std())
            .max_buf_size(
                usize::try_from(config.max_header_size.bytes())
                    .unwrap_or(usize::MAX)
                    .max(8192),
            );
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256);
        let builder = Arc::new(builder);
        let mut tasks = tokio::task::JoinSet::new();
        let mut addresses = Vec::new();
        for &address in &config.listen {
            let listener = TcpListener::bind(address).await.map_err(|error| {
                anyhow::anyhow!("server.listen: cannot listen on {address}: {error}")
            })?;
            let bound = listener.local_addr()?;
            tracing::info!(address = %bound, "serving HTTP");
            addresses.push(bound);
            tasks.spawn(accept(
                listener,
                builder.clone(),
                edge.clone(),
                slots.clone(),
                shutdown.clone(),
                config.shutdown_timeout.as_std(),
            ));
        }
        Ok(Self { addresses, tasks })
    }

    /// The bound addresses.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Waits until every listener has stopped and drained.
    pub async fn stopped(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn accept(
    listener: TcpListener,
    builder: Arc<auto::Builder<TokioExecutor>>,
    edge: Edge,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    shared::listener::accept_until_shutdown(
        listener,
        slots,
        shutdown,
        drain_timeout,
        move |stream, peer| {
            let edge = edge.clone();
            let service = hyper::service::service_fn(move |request| {
                let edge = edge.clone();
                async move { Ok::<_, Infallible>(edge.handle(request, peer.ip()).await) }
            });
            builder
                .serve_connection(TokioIo::new(ClientStream::new(stream)), service)
                .into_owned()
        },
    )
    .await;
}
