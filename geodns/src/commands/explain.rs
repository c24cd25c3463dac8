//! `geodns explain`: asks the running server when there is one, since only
//! it knows the edges' live health, etcd drains and announced edges; otherwise
//! computes the answer offline from the configuration.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use super::serve::runtime;
use crate::cluster::ClusterView;
use crate::cluster::ctl::Control;
use crate::config::{Config, DEFAULT_ADMIN_PORT, HealthConfig};
use crate::health::{HealthProbe, HealthTable};
use crate::metrics::DnsMetrics;
use crate::snapshot::Snapshot;

/// How long the running server gets to answer before we compute offline.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest explanation accepted from the server.
const MAX_EXPLANATION_BYTES: usize = 1 << 20;

/// What `geodns explain` was asked.
#[derive(Debug, Clone, Copy)]
pub struct ExplainOptions {
    /// Never ask the running server.
    pub offline: bool,
    /// Offline: check each edge's health once first.
    pub check_health: bool,
    /// JSON instead of text.
    pub json: bool,
}

/// Writes the explanation for `ip` to `out`, and where it came from to stderr.
pub fn explain(
    config: &Path,
    ip: IpAddr,
    options: ExplainOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let file: Config = shared::config::load(config)?;
        if !options.offline {
            let admin = admin_address(&file);
            match ask_running_server(admin, file.admin.token.as_deref(), ip, options.json).await {
                Ok(explanation) => {
                    eprintln!("explained by the running server at {admin}");
                    out.write_all(&explanation)?;
                    return Ok(());
                }
                Err(error) => eprintln!(
                    "note: no answer from a running server at {admin} ({error}): computed offline{}",
                    if options.check_health {
                        ", after one health check of each edge"
                    } else {
                        ", every edge taken as up"
                    }
                ),
            }
        }
        explain_offline(config, &file, ip, options, out).await
    })
}

/// Where the server of `file` serves its admin API, as a client reaches it.
fn admin_address(file: &Config) -> SocketAddr {
    let listen = file.admin.listen_or(DEFAULT_ADMIN_PORT);
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// The server's `/explain` document, rendered as text unless `json`.
async fn ask_running_server(
    admin: SocketAddr,
    token: Option<&str>,
    ip: IpAddr,
    json: bool,
) -> Result<Vec<u8>, String> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(ASK_TIMEOUT));
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let format = if json { "" } else { "&format=text" };
    let mut request = Request::get(format!("http://{admin}/explain?ip={ip}{format}"));
    if let Some(token) = token.filter(|token| !token.is_empty()) {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::new())
        .map_err(|error| error.to_string())?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|error| shared::report::describe(&error))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_EXPLANATION_BYTES)
            .collect()
            .await
            .map_err(|error| format!("reading the answer: {error}"))?
            .to_bytes();
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("HTTP {status}: {}", text.trim()));
        }
        let mut body = body.to_vec();
        if json && !body.ends_with(b"\n") {
            body.push(b'\n');
        }
        Ok(body)
    };
    tokio::time::timeout(ASK_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {ASK_TIMEOUT:?}")))
}

/// Builds the snapshot `run` would and explains from it, with one health
/// check of each edge unless told not to.
async fn explain_offline(
    config: &Path,
    file: &Config,
    ip: IpAddr,
    options: ExplainOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let metrics = DnsMetrics::register(&mut shared::metrics::Registry::default());
    let health = Arc::new(HealthTable::new(metrics.clone(), CancellationToken::new()));
    let cluster = match &file.cluster {
        Some(etcd) => match Control::connect(etcd).await {
            Ok(mut control) => control.view().await,
            Err(error) => Err(error),
        }
        .unwrap_or_else(|error| {
            eprintln!("warning: {error}; explaining with the configured edges only");
            ClusterView::default()
        }),
        None => ClusterView::default(),
    };
    let snapshot = Snapshot::load(config, &health, &metrics, &cluster)?;
    if options.check_health {
        let once = HealthConfig {
            rise: 1,
            fall: 1,
            ..HealthConfig::default()
        };
        let mut checks = tokio::task::JoinSet::new();
        for (url, check) in snapshot.health_checks() {
            let mut probe =
                HealthProbe::new(health.entry(&url, &check.edge), once, metrics.clone());
            checks.spawn(async move { probe.check_once().await });
        }
        while checks.join_next().await.is_some() {}
    }
    let explanation = crate::explain::explain(&snapshot, ip, health.epoch());
    if options.json {
        serde_json::to_writer_pretty(&mut *out, &explanation)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", explanation.to_text())?;
    }
    Ok(())
}
