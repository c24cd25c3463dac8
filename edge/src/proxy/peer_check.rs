//! Checking the fill ring's peers. A peer that stops answering its health
//! document (frozen, overloaded, cut off) is skipped by fills after two
//! failed checks, instead of costing every miss it owns a first-byte
//! timeout until its lease expires; it is asked again once it answers.
//! Any HTTP answer counts: a draining peer still serves. Checks go over
//! the upstream client, so `https://` health URLs (peers serving their
//! admin API over TLS) are verified as origins are.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use tokio_util::sync::CancellationToken;

use super::Edge;

/// Time between checks of one peer, and the bound on each.
const INTERVAL: Duration = Duration::from_secs(1);

/// Checks `edge`'s peers until `stop`.
pub async fn run(edge: Edge, stop: CancellationToken) {
    let client = edge.upstream_client();
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
                    .body(Empty::new().map_err(|never| match never {}).boxed());
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
