//! Checking the fill ring's peers. A peer that stops answering its health
//! document (frozen, overloaded, cut off) is skipped by fills after two
//! failed checks, instead of costing every miss it owns a first-byte
//! timeout until its lease expires; it is asked again once it answers.
//! Any HTTP answer counts: a draining peer still serves.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use super::Edge;

/// Time between checks of one peer, and the bound on each.
const INTERVAL: Duration = Duration::from_secs(1);

/// Checks `edge`'s peers until `stop`.
pub async fn run(edge: Edge, stop: CancellationToken) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(INTERVAL));
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build(connector);
    loop {
        let started = tokio::time::Instant::now();
        let mut checks = tokio::task::JoinSet::new();
        for member in edge.ring().peers().iter() {
            let Some(url) = member.peer.health.clone() else {
                continue;
            };
            let member = member.clone();
            let client = client.clone();
            checks.spawn(async move {
                let request = Request::get(url)
                    .header(
                        hyper::header::USER_AGENT,
                        concat!("edge/", env!("CARGO_PKG_VERSION"), " peer-check"),
                    )
                    .body(Empty::new());
                let answered = match request {
                    Ok(request) => tokio::time::timeout(INTERVAL, client.request(request))
                        .await
                        .is_ok_and(|response| response.is_ok()),
                    Err(_) => false,
                };
                member.record_check(answered);
            });
        }
        while checks.join_next().await.is_some() {}
        // One round per interval, however long the slowest check took.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(started + INTERVAL) => {}
        }
    }
}
