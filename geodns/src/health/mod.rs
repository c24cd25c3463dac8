//! Active health checks of edges.
//!
//! Each distinct health URL has one [`EdgeHealth`] and one checker task,
//! shared by every service that lists the edge and kept across reloads, so
//! a reload neither forgets that an edge is down nor doubles the probes.
//! Queries read the state with one atomic load.

mod checker;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Serialize;
use shared::EdgeStatus;
use shared::health::HealthReport;
use tokio_util::sync::CancellationToken;

pub use checker::HealthProbe;

use crate::config::HealthConfig;
use crate::metrics::DnsMetrics;

/// Live state of one checked edge.
#[derive(Debug)]
pub struct EdgeHealth {
    url: String,
    /// The edge's name for metrics; the latest configuration's.
    name: Mutex<String>,
    status: AtomicU8,
    saturated: AtomicBool,
    epoch: Arc<AtomicU64>,
    last: Mutex<LastCheck>,
}

/// What the last check saw, for `/status` and `explain`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LastCheck {
    /// When it finished.
    pub at: Option<SystemTime>,
    /// The document the edge returned, if it returned one.
    pub report: Option<HealthReport>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

fn encode(status: EdgeStatus) -> u8 {
    match status {
        EdgeStatus::Up => 0,
        EdgeStatus::Draining => 1,
        EdgeStatus::Down => 2,
    }
}

fn decode(value: u8) -> EdgeStatus {
    match value {
        0 => EdgeStatus::Up,
        1 => EdgeStatus::Draining,
        _ => EdgeStatus::Down,
    }
}

impl EdgeHealth {
    fn new(url: String, name: String, epoch: Arc<AtomicU64>, initial: EdgeStatus) -> Self {
        Self {
            url,
            name: Mutex::new(name),
            status: AtomicU8::new(encode(initial)),
            saturated: AtomicBool::new(false),
            epoch,
            last: Mutex::new(LastCheck::default()),
        }
    }

    /// The checked URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name of the edge checked at this URL (the first configured, when
    /// several share it), the `edge` label of its metrics.
    pub fn name(&self) -> String {
        self.name.lock().clone()
    }

    /// Current state.
    pub fn status(&self) -> EdgeStatus {
        decode(self.status.load(Ordering::Relaxed))
    }

    /// Whether answers may send new clients here (`up` and not saturated;
    /// `draining` edges keep their clients but get no new ones).
    pub fn accepts_new_clients(&self) -> bool {
        self.status().accepts_new_clients() && !self.is_saturated()
    }

    /// Whether it is up, saturated or not: where clients go when every
    /// edge is saturated.
    pub fn is_serving(&self) -> bool {
        self.status().accepts_new_clients()
    }

    /// Whether it reported a utilisation at or above `health.saturated_at`
    /// (and has not yet come back below it by 0.1).
    pub fn is_saturated(&self) -> bool {
        self.saturated.load(Ordering::Relaxed)
    }

    /// Marks it saturated or not; a change bumps the epoch.
    pub fn set_saturated(&self, saturated: bool) -> bool {
        let changed = self.saturated.swap(saturated, Ordering::AcqRel) != saturated;
        if changed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }

    /// The last check's outcome.
    pub fn last_check(&self) -> LastCheck {
        self.last.lock().clone()
    }

    /// Sets the state; a change bumps the epoch so cached answers are dropped.
    pub fn set_status(&self, status: EdgeStatus) -> bool {
        let previous = self.status.swap(encode(status), Ordering::AcqRel);
        let changed = previous != encode(status);
        if changed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }

    fn record(&self, last: LastCheck) {
        *self.last.lock() = last;
    }
}

struct Checked {
    health: Arc<EdgeHealth>,
    /// Stops the checker task, and the settings it runs with; `None` while
    /// no checker runs.
    checker: Option<(CancellationToken, HealthConfig)>,
}

/// All checked edges, by URL, and their checker tasks.
pub struct HealthTable {
    edges: Mutex<HashMap<String, Checked>>,
    epoch: Arc<AtomicU64>,
    metrics: Arc<DnsMetrics>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for HealthTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthTable")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl HealthTable {
    /// An empty table; checkers stop when `shutdown` is cancelled.
    pub fn new(metrics: Arc<DnsMetrics>, shutdown: CancellationToken) -> Self {
        Self {
            edges: Mutex::new(HashMap::new()),
            epoch: Arc::new(AtomicU64::new(0)),
            metrics,
            shutdown,
        }
    }

    /// Changes whenever any edge changes state.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The shared state for `url`, the health URL of edge `name`, created
    /// (without a checker) if new. Configured edges start up: answering with
    /// the nearest edge at start beats answering by weight for the first
    /// seconds.
    pub fn entry(&self, url: &str, name: &str) -> Arc<EdgeHealth> {
        self.entry_with(url, name, EdgeStatus::Up)
    }

    /// Like [`HealthTable::entry`], starting in `initial` when new: edges
    /// that announce themselves start down and join once their checks pass.
    pub fn entry_with(&self, url: &str, name: &str, initial: EdgeStatus) -> Arc<EdgeHealth> {
        let mut edges = self.edges.lock();
        self.checked(&mut edges, url, name, initial).health.clone()
    }

    /// The entry for `url`, created if new, its metric series under `name`.
    fn checked<'a>(
        &self,
        edges: &'a mut HashMap<String, Checked>,
        url: &str,
        name: &str,
        initial: EdgeStatus,
    ) -> &'a mut Checked {
        let checked = edges.entry(url.to_string()).or_insert_with(|| {
            // The gauge exists from the start, not from the first change.
            self.metrics.set_edge_status(name, url, initial);
            Checked {
                health: Arc::new(EdgeHealth::new(
                    url.to_string(),
                    name.to_string(),
                    self.epoch.clone(),
                    initial,
                )),
                checker: None,
            }
        });
        let mut current = checked.health.name.lock();
        if *current != name {
            // Renamed in the configuration: the series follow the new name.
            self.metrics.forget_edge(&current, url);
            self.metrics
                .set_edge_status(name, url, checked.health.status());
            self.metrics
                .set_edge_saturated(name, url, checked.health.is_saturated());
            *current = name.to_string();
        }
        drop(current);
        checked
    }

    /// Runs one checker per URL in `wanted` and stops checkers of URLs no
    /// longer configured. Must be called inside a Tokio runtime.
    pub fn reconcile(&self, wanted: &HashMap<String, HealthCheck>) {
        let mut edges = self.edges.lock();
        edges.retain(|url, checked| {
            let keep = wanted.contains_key(url);
            if !keep {
                if let Some((checker, _)) = &checked.checker {
                    checker.cancel();
                }
                self.metrics.forget_edge(&checked.health.name(), url);
            }
            keep
        });
        for (url, check) in wanted {
            let checked = self.checked(&mut edges, url, &check.edge, EdgeStatus::Up);
            let current = checked.checker.as_ref().map(|(_, running)| running);
            if current != Some(&check.config) {
                if let Some((checker, _)) = &checked.checker {
                    checker.cancel();
                }
                let stop = self.shutdown.child_token();
                let probe =
                    HealthProbe::new(checked.health.clone(), check.config, self.metrics.clone());
                tokio::spawn(probe.run(stop.clone()));
                checked.checker = Some((stop, check.config));
            }
        }
    }
}

/// One health URL to check: how, and for which edge.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// The edge's name (the first configured, when several share the URL).
    pub edge: String,
    /// Timing and thresholds.
    pub config: HealthConfig,
}
