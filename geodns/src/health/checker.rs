//! The checker task of one edge: GET its health URL every interval.
//!
//! Outcomes move the state machine: `fall` consecutive failures take an edge
//! down, `rise` consecutive successes bring a down edge back. A document that
//! says `draining` or `down` is obeyed at once: the edge asked for it. A 200
//! whose body is not the shared health document counts as `up`, so edges can
//! be checked through any plain health endpoint.
//!
//! `https://` health URLs are verified against the system's CA
//! certificates (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`),
//! read once per process.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use shared::EdgeStatus;
use shared::health::HealthReport;
use tokio_util::sync::CancellationToken;

use super::{EdgeHealth, LastCheck};
use crate::config::HealthConfig;
use crate::metrics::DnsMetrics;

/// Polls one edge.
pub struct HealthProbe {
    health: Arc<EdgeHealth>,
    config: HealthConfig,
    metrics: Arc<DnsMetrics>,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    successes: u32,
    failures: u32,
}

impl HealthProbe {
    /// A probe for `health`'s URL with `config`'s timing.
    pub fn new(health: Arc<EdgeHealth>, config: HealthConfig, metrics: Arc<DnsMetrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout.as_std()));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        Self {
            health,
            config,
            metrics,
            client,
            successes: 0,
            failures: 0,
        }
    }

    /// Checks until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        // Spread the first checks of many edges over one interval.
        let initial = random_delay(self.config.interval.as_std());
        if tokio::time::timeout(initial, stop.cancelled())
            .await
            .is_ok()
        {
            return;
        }
        loop {
            self.check_once().await;
            let pause = self.config.interval.as_std() + random_delay(self.config.jitter.as_std());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One check and its effect on the state.
    pub async fn check_once(&mut self) {
        let outcome = tokio::time::timeout(self.config.timeout.as_std(), self.fetch()).await;
        let (reported, last) = match outcome {
            Ok(Ok(report)) => (
                Some(
                    report
                        .as_ref()
                        .map_or(EdgeStatus::Up, |report| report.status),
                ),
                LastCheck {
                    at: Some(SystemTime::now()),
                    report,
                    error: None,
                },
            ),
            Ok(Err(error)) => (None, failed(error)),
            Err(_) => (
                None,
                failed(format!("no answer within {}", self.config.timeout)),
            ),
        };
        let utilisation = last
            .report
            .as_ref()
            .map(|report| report.load.utilisation.get());
        self.health.record(last);
        let previous = self.health.status();
        let next = match reported {
            Some(EdgeStatus::Up) => {
                self.successes += 1;
                self.failures = 0;
                let risen = previous == EdgeStatus::Draining || self.successes >= self.config.rise;
                if previous == EdgeStatus::Up || risen {
                    EdgeStatus::Up
                } else {
                    previous
                }
            }
            Some(asked) => {
                self.successes = 0;
                self.failures = 0;
                asked
            }
            None => {
                self.failures += 1;
                self.successes = 0;
                if self.failures >= self.config.fall {
                    EdgeStatus::Down
                } else {
                    previous
                }
            }
        };
        self.update_saturation(next, utilisation);
        let name = self.health.name();
        self.metrics
            .record_health_check(&name, self.health.url(), reported.is_some());
        if self.health.set_status(next) {
            self.metrics.set_edge_status(&name, self.health.url(), next);
            match next {
                EdgeStatus::Up => {
                    tracing::info!(edge = name, url = self.health.url(), "edge is up")
                }
                EdgeStatus::Draining => {
                    tracing::warn!(edge = name, url = self.health.url(), "edge is draining")
                }
                EdgeStatus::Down => tracing::warn!(
                    edge = name,
                    url = self.health.url(),
                    error = self.health.last_check().error.unwrap_or_default(),
                    "edge is down"
                ),
            }
        }
    }

    /// Saturated at `saturated_at` or more; back once 0.1 below it, so
    /// that an edge near the mark does not flap in and out of the answers.
    fn update_saturation(&self, status: EdgeStatus, utilisation: Option<f64>) {
        let mark = self.config.saturated_at;
        let saturated = match (status, utilisation) {
            (EdgeStatus::Up, Some(utilisation)) if self.health.is_saturated() => {
                utilisation >= mark - 0.1
            }
            (EdgeStatus::Up, Some(utilisation)) => utilisation >= mark,
            _ => false,
        };
        if self.health.set_saturated(saturated) {
            if saturated {
                tracing::warn!(
                    edge = self.health.name(),
                    url = self.health.url(),
                    utilisation,
                    "edge is saturated: no new clients until it has room"
                );
            } else {
                tracing::info!(
                    edge = self.health.name(),
                    url = self.health.url(),
                    "edge has room again"
                );
            }
            self.metrics
                .set_edge_saturated(&self.health.name(), self.health.url(), saturated);
        }
    }

    /// GETs the URL: the edge's document, or `Ok(None)` for a 200 without one.
    async fn fetch(&self) -> Result<Option<HealthReport>, String> {
        let uri: Uri = self
            .health
            .url()
            .parse()
            .map_err(|error| format!("invalid URL: {error}"))?;
        let request = hyper::Request::get(uri)
            .header(
                hyper::header::USER_AGENT,
                concat!("geodns/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|error| error.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), HealthReport::MAX_BYTES)
            .collect()
            .await
            .map_err(|error| format!("reading body: {error}"))?
            .to_bytes();
        // The document wins over the status code: an edge may answer 503
        // while draining and still say so in the body.
        match HealthReport::from_json(&body) {
            Ok(report) => Ok(Some(report)),
            Err(_) if status == StatusCode::OK => Ok(None),
            Err(_) => Err(format!("HTTP {status}")),
        }
    }
}

fn failed(error: String) -> LastCheck {
    LastCheck {
        at: Some(SystemTime::now()),
        report: None,
        error: Some(error),
    }
}

fn random_delay(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// The TLS client settings of `https://` checks, on the system's roots.
fn tls_config() -> rustls::ClientConfig {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                "no system CA certificates found (install ca-certificates, or set SSL_CERT_FILE): https:// health checks will fail"
            );
        }
        Arc::new(roots)
    });
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the provider's defaults are consistent")
    .with_root_certificates(roots.clone())
    .with_no_client_auth()
}
