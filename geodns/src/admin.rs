//! geodns's admin routes: `/healthz`, `/status`, `/explain?ip=`, `/metrics`,
//! and with `[cluster]` the cluster-wide `POST /drain?edge=` and
//! `POST /pool?edge=` (bearer token), the same as `geodns ctl`.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::StatusCode;
use serde::Serialize;
use shared::admin::{AdminRouter, respond, respond_json};
use shared::metrics::Registry;

use crate::cluster::ctl::Control;
use crate::cluster::{ClusterStatus, ClusterStatusReport};
use crate::health::{HealthTable, LastCheck};
use crate::snapshot::Snapshot;

/// The routes, reading the live snapshot.
pub fn router(
    snapshot: Arc<ArcSwap<Snapshot>>,
    health: Arc<HealthTable>,
    registry: Arc<Registry>,
    cluster: Option<Arc<ClusterStatus>>,
) -> AdminRouter {
    let status_snapshot = snapshot.clone();
    let status_health = health.clone();
    let drain_snapshot = snapshot.clone();
    let pool_snapshot = snapshot.clone();
    AdminRouter::new()
        .metrics(registry)
        .probe("/healthz", |_| async {
            respond(StatusCode::OK, "text/plain", "ok\n")
        })
        .get("/status", move |_| {
            let body = status(
                &status_snapshot.load(),
                status_health.epoch(),
                cluster.as_deref(),
            );
            async move { respond_json(StatusCode::OK, &body) }
        })
        .get("/explain", move |request| {
            let snapshot = snapshot.load_full();
            let epoch = health.epoch();
            async move {
                let Some(ip) = request
                    .query_param("ip")
                    .and_then(|text| text.parse::<IpAddr>().ok())
                else {
                    return respond(StatusCode::BAD_REQUEST, "text/plain", "give ?ip=ADDRESS\n");
                };
                let explanation = crate::explain::explain(&snapshot, ip, epoch);
                match request.query_param("format") {
                    Some("text") => respond(StatusCode::OK, "text/plain", explanation.to_text()),
                    None | Some("json") => respond_json(StatusCode::OK, &explanation),
                    Some(_) => respond(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "format is json (the default) or text\n",
                    ),
                }
            }
        })
        .post("/drain", move |request| {
            let etcd = drain_snapshot.load().config.cluster.clone();
            async move { set_admin_state(etcd, request, true).await }
        })
        .post("/pool", move |request| {
            let etcd = pool_snapshot.load().config.cluster.clone();
            async move { set_admin_state(etcd, request, false).await }
        })
}

/// Drains (or pools) `?edge=NAME` cluster-wide through etcd.
async fn set_admin_state(
    etcd: Option<shared::cluster::EtcdConfig>,
    request: shared::admin::AdminRequest,
    drain: bool,
) -> shared::admin::AdminResponse {
    let Some(etcd) = etcd else {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "no [cluster] configured: drain an edge with its own POST /drain\n",
        );
    };
    let Some(edge) = request.query_param("edge").filter(|edge| !edge.is_empty()) else {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "give ?edge=NAME\n");
    };
    let result = async {
        let mut control = Control::connect(&etcd).await?;
        if drain {
            control.drain(edge, Some("admin API".into())).await
        } else {
            control.pool(edge).await.map(|_| ())
        }
    }
    .await;
    match result {
        Ok(()) => {
            tracing::info!(edge, drained = drain, "admin state written to etcd");
            let state = if drain { "drained\n" } else { "pooled\n" };
            respond(StatusCode::OK, "text/plain", state)
        }
        Err(error) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{error}\n"),
        ),
    }
}

#[derive(Serialize)]
struct Status {
    config: Option<String>,
    loaded_at: Option<u64>,
    health_epoch: u64,
    databases: Vec<DatabaseStatus>,
    overrides: usize,
    zones: Vec<ZoneStatus>,
    services: Vec<ServiceStatus>,
    /// The etcd watch, with `[cluster]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterStatusReport>,
}

#[derive(Serialize)]
struct DatabaseStatus {
    path: String,
    database_type: String,
    build_epoch: u64,
}

#[derive(Serialize)]
struct ZoneStatus {
    name: String,
    serial: Option<u32>,
    rrsets: usize,
    geo_names: Vec<String>,
}

#[derive(Serialize)]
struct ServiceStatus {
    name: String,
    ttl: u32,
    answers: usize,
    edges: Vec<EdgeStatusReport>,
}

#[derive(Serialize)]
struct EdgeStatusReport {
    name: String,
    region: String,
    latitude: f64,
    longitude: f64,
    ipv4: Vec<std::net::Ipv4Addr>,
    ipv6: Vec<std::net::Ipv6Addr>,
    weight: u32,
    bias_km: f64,
    health_url: Option<String>,
    announced: bool,
    drained: bool,
    status: shared::EdgeStatus,
    /// Reported a utilisation at or above `health.saturated_at`.
    saturated: bool,
    last_check: Option<LastCheck>,
}

fn status(snapshot: &Snapshot, health_epoch: u64, cluster: Option<&ClusterStatus>) -> Status {
    Status {
        cluster: cluster.map(ClusterStatus::report),
        config: snapshot
            .source
            .as_ref()
            .map(|path| path.display().to_string()),
        loaded_at: snapshot
            .loaded_at
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|elapsed| elapsed.as_secs()),
        health_epoch,
        databases: snapshot
            .places
            .databases
            .iter()
            .map(|db| DatabaseStatus {
                path: db.path.display().to_string(),
                database_type: db.database_type.clone(),
                build_epoch: db.build_epoch,
            })
            .collect(),
        overrides: snapshot.places.overrides,
        zones: snapshot
            .zones
            .iter()
            .map(|zone| ZoneStatus {
                name: zone.origin().to_string(),
                serial: match &zone.soa().data {
                    hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
                    _ => None,
                },
                rrsets: zone.rrsets().count(),
                geo_names: zone.geo_names().map(|(name, _)| name.to_string()).collect(),
            })
            .collect(),
        services: snapshot
            .services
            .iter()
            .map(|service| ServiceStatus {
                name: service.name.clone(),
                ttl: service.ttl,
                answers: service.answers,
                edges: service
                    .edges
                    .iter()
                    .map(|edge| EdgeStatusReport {
                        name: edge.name.clone(),
                        region: edge.region.clone(),
                        latitude: edge.location.latitude(),
                        longitude: edge.location.longitude(),
                        ipv4: edge.ipv4.clone(),
                        ipv6: edge.ipv6.clone(),
                        weight: edge.weight,
                        bias_km: edge.bias_km,
                        health_url: edge.health.as_ref().map(|health| health.url().to_string()),
                        announced: edge.announced,
                        drained: edge.drained,
                        status: edge
                            .health
                            .as_ref()
                            .map_or(shared::EdgeStatus::Up, |health| health.status()),
                        saturated: edge
                            .health
                            .as_ref()
                            .is_some_and(|health| health.is_saturated()),
                        last_check: edge.health.as_ref().map(|health| health.last_check()),
                    })
                    .collect(),
            })
            .collect(),
    }
}
