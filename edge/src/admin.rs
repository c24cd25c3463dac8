//! The edge's admin routes: `/healthz` (the shared health document),
//! `/metrics`, `/ring` (the fill ring), purges and drain. Purge and drain change state and need the
//! bearer token. With `[cluster]`, a purge is also published to every edge.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Serialize;
use shared::EdgeStatus;
use shared::admin::{AdminRequest, AdminRouter, respond, respond_json};
use shared::cluster::PurgeScope;
use shared::health::{CacheFill, HealthReport, Load, Utilisation};
use shared::metrics::Registry;

use crate::cluster::PurgePublisher;
use crate::metrics::EdgeMetrics;
use crate::proxy::Edge;
use crate::server::connections::ConnectionTable;

/// Builds the routes.
pub fn router(
    edge: Edge,
    registry: Arc<Registry>,
    metrics: Arc<EdgeMetrics>,
    connections: Arc<ConnectionTable>,
    publisher: Option<Arc<PurgePublisher>>,
) -> AdminRouter {
    let health_edge = edge.clone();
    let health_connections = connections.clone();
    let metrics_edge = edge.clone();
    let purge_edge = edge.clone();
    let drain_edge = edge.clone();
    let ring_edge = edge.clone();
    let pool_edge = edge;
    AdminRouter::new()
        .probe("/healthz", move |_| {
            let report = health(&health_edge, &health_connections);
            async move { json_response(&report) }
        })
        .get("/metrics", move |request| {
            let store = metrics_edge.store();
            metrics.update_store(store.objects(), store.used_bytes(), store.evictions());
            metrics.connections_open.set(connections.open() as i64);
            let response = shared::admin::metrics_response(&request, &registry);
            async move { response }
        })
        .get("/ring", move |_| {
            let body = ring(&ring_edge);
            async move { respond_json(StatusCode::OK, &body) }
        })
        .post("/purge", move |request| {
            let edge = purge_edge.clone();
            let publisher = publisher.clone();
            async move { purge(&edge, &request, publisher.as_deref()).await }
        })
        .post("/drain", move |_| {
            drain_edge.set_draining(true);
            tracing::warn!("draining: /healthz now reports draining");
            async { respond(StatusCode::OK, "text/plain", "draining\n") }
        })
        .post("/pool", move |_| {
            pool_edge.set_draining(false);
            tracing::info!("back in the pool: /healthz reports up");
            async { respond(StatusCode::OK, "text/plain", "up\n") }
        })
}

/// The `/healthz` document. Its utilisation is the largest share in use of
/// what bounds the edge: connection slots (a flood of idle connections
/// saturates it as surely as requests do), request slots and fill memory
/// (past which misses are no longer stored).
pub fn health(edge: &Edge, connections: &ConnectionTable) -> HealthReport {
    let in_flight = edge.in_flight();
    let limit = connections.limits().max_connections.max(1);
    let open = connections.open();
    let utilisation = (open as f64 / limit as f64)
        .max(in_flight as f64 / limit as f64)
        .max(edge.fill_memory_share());
    HealthReport {
        status: if edge.is_draining() {
            EdgeStatus::Draining
        } else {
            EdgeStatus::Up
        },
        load: Load {
            in_flight,
            utilisation: Utilisation::saturating(utilisation),
            connections: open as u64,
            connection_limit: limit as u64,
        },
        cache: CacheFill {
            used_bytes: edge.store().used_bytes() as u64,
            capacity_bytes: edge.store().capacity() as u64,
            objects: edge.store().objects() as u64,
        },
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

fn json_response(report: &HealthReport) -> shared::admin::AdminResponse {
    let mut response = respond(StatusCode::OK, "application/json", report.to_json());
    if report.status != EdgeStatus::Up {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

#[derive(Serialize)]
struct RingReport {
    node: String,
    peers: Vec<RingPeer>,
}

#[derive(Serialize)]
struct RingPeer {
    name: String,
    url: String,
    up: bool,
}

/// `GET /ring`: the other edges this one fills from (configured and announced).
fn ring(edge: &Edge) -> RingReport {
    RingReport {
        node: edge.name().to_string(),
        peers: edge
            .ring()
            .peers()
            .iter()
            .map(|member| RingPeer {
                name: member.peer.name.clone(),
                url: member.peer.base.to_string(),
                up: member.is_up(),
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct Purged {
    removed: usize,
    /// The etcd revision of the published purge, with `[cluster]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    published_revision: Option<i64>,
}

/// `POST /purge?url=URL`, `?prefix=PREFIX` or `?all=1`; `host` names the
/// site for path-only URLs. Applied here, then published to the cluster; a
/// purge that cannot be published is reported as 503 (it was applied here).
async fn purge(
    edge: &Edge,
    request: &AdminRequest,
    publisher: Option<&PurgePublisher>,
) -> shared::admin::AdminResponse {
    let host = percent_decode(request.query_param("host").unwrap_or(""));
    let scope = if let Some(url) = request.query_param("url") {
        PurgeScope::Url {
            url: percent_decode(url),
            host,
        }
    } else if let Some(prefix) = request.query_param("prefix") {
        PurgeScope::Prefix {
            prefix: percent_decode(prefix),
            host,
        }
    } else if request.query_param("all").is_some() {
        PurgeScope::All
    } else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "give url=, prefix= or all=1\n",
        );
    };
    let removed = edge.purge(&scope);
    tracing::info!(removed, ?scope, "purge");
    let published_revision = match publisher {
        Some(publisher) => match publisher.publish(scope).await {
            Ok(revision) => Some(revision),
            Err(error) => {
                tracing::error!(%error, "purge applied here but not published to the cluster");
                return respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!(
                        "purged {removed} here, but not published to the other edges: {error}\n"
                    ),
                );
            }
        },
        None => None,
    };
    respond_json(
        StatusCode::OK,
        &Purged {
            removed,
            published_revision,
        },
    )
}

/// Decodes `%XX` escapes in a query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 3;
                    }
                    None => {
                        out.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("http%3A%2F%2Fh%2Fa%20b"), "http://h/a b");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
