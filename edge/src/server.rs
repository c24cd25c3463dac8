//! The client-facing listeners: HTTP/1.1 and cleartext HTTP/2 on each
//! address, a bounded number of connections, a deadline for request heads
//! (slow clients are cut off), and a graceful stop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

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
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached; closing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let edge = edge.clone();
        let service = hyper::service::service_fn(move |request| {
            let edge = edge.clone();
            async move { Ok::<_, Infallible>(edge.handle(request, peer.ip()).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("client connections still open after the shutdown timeout; closing them");
    }
}
