//! Prometheus metrics of geodns.
//!
//! Label sets are small `Copy` structs hashed without allocation, and the
//! per-service counters are resolved once per snapshot, so the answer path
//! only bumps atomics.

use std::fmt::Write as _;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use shared::EdgeStatus;
use shared::log_limit::LogLimiter;
use shared::metrics::AtomicHistogram;

use crate::answer::CacheMetrics;
use crate::geo::Reason;
use crate::server::Eviction;

/// Transport a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl EncodeLabelValue for Transport {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        })
    }
}

/// A record type as a label: its mnemonic for the types hickory knows and
/// `other` for the rest, so that clients asking random types cannot create
/// series without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QtypeLabel(Option<RecordType>);

impl QtypeLabel {
    /// The label of `qtype`.
    pub fn new(qtype: RecordType) -> Self {
        match qtype {
            RecordType::Unknown(_) => Self(None),
            known => Self(Some(known)),
        }
    }
}

impl EncodeLabelValue for QtypeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self.0 {
            Some(known) => write!(encoder, "{known}"),
            None => encoder.write_str("other"),
        }
    }
}

/// A response code as a label (`NOERROR`, `NXDOMAIN`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RcodeLabel(pub ResponseCode);

impl EncodeLabelValue for RcodeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let code = u16::from(self.0);
        match code {
            0 => encoder.write_str("NOERROR"),
            1 => encoder.write_str("FORMERR"),
            2 => encoder.write_str("SERVFAIL"),
            3 => encoder.write_str("NXDOMAIN"),
            4 => encoder.write_str("NOTIMP"),
            5 => encoder.write_str("REFUSED"),
            16 => encoder.write_str("BADVERS"),
            other => write!(encoder, "RCODE{other}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueryLabels {
    transport: Transport,
    qtype: QtypeLabel,
    rcode: RcodeLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EcsLabels {
    ecs: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AnswerLabels {
    service: String,
    edge: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EdgeLabels {
    /// The edge's name, as in the answer metrics.
    edge: String,
    /// Its health URL: what is checked.
    url: String,
}

impl EdgeLabels {
    fn new(edge: &str, url: &str) -> Self {
        Self {
            edge: edge.to_string(),
            url: url.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CheckLabels {
    edge: String,
    url: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NotifyLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EvictionLabels {
    reason: &'static str,
}

/// Every metric geodns exports.
#[derive(Debug)]
pub struct DnsMetrics {
    queries: Family<QueryLabels, Counter>,
    ecs: Family<EcsLabels, Counter>,
    answers: Family<AnswerLabels, Counter>,
    unlocated: Family<ServiceLabels, Counter>,
    fail_open: Family<ServiceLabels, Counter>,
    latency: AtomicHistogram,
    edge_status: Family<EdgeLabels, Gauge>,
    edge_saturated: Family<EdgeLabels, Gauge>,
    health_checks: Family<CheckLabels, Counter>,
    dropped: Counter,
    tcp_refused: Counter,
    reloads: Family<ReloadLabels, Counter>,
    notifies: Family<NotifyLabels, Counter>,
    tcp_evicted: Family<EvictionLabels, Counter>,
    /// Shared by every UDP receive loop's answer cache.
    pub answer_cache: CacheMetrics,
    /// UDP responses over the rate limit sent truncated (TC) instead.
    pub rate_limit_slipped: Counter,
    /// UDP responses over the rate limit not sent.
    pub rate_limit_dropped: Counter,
    /// dnstap messages written to the log.
    pub dnstap_written: Counter,
    /// dnstap messages dropped because the writer fell behind.
    pub dnstap_dropped: Counter,
    geo_map_runs: Family<GeoMapLabels, Gauge>,
    geo_map_seconds: Family<GeoMapLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    geo_map_bytes: Gauge,
}

/// Which layer of the geo maps a figure is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GeoMapLabels {
    table: &'static str,
}

/// The size and build time of the geo maps (see [`crate::geo::GeoMaps`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct GeoMapFigures {
    /// Runs of places (both families).
    pub place_runs: usize,
    /// Ranking classes (all services and families).
    pub ranking_classes: usize,
    /// Runs of answers under the current health.
    pub answer_runs: usize,
    /// Heap bytes of all three.
    pub bytes: usize,
    /// Flattening the databases and overrides.
    pub places_took: Duration,
    /// Ranking the edges from every place.
    pub rankings_took: Duration,
    /// The last answer computation (at load or after a health change).
    pub answers_took: Duration,
}

/// Per-service counters, resolved once per snapshot.
#[derive(Debug, Clone)]
pub struct ServiceCounters {
    /// `[edge][reason]` answers.
    pub answers: Vec<[Counter; 4]>,
    /// Clients that could not be located.
    pub unlocated: Counter,
    /// Answers given while every edge was down.
    pub fail_open: Counter,
    /// Fail-open warnings: at most one every ten seconds per service.
    fail_open_warning: std::sync::Arc<LogLimiter>,
}

fn reason_index(reason: Reason) -> usize {
    match reason {
        Reason::Nearest => 0,
        Reason::Rule => 1,
        Reason::Fallback => 2,
        Reason::FailOpen => 3,
    }
}

const REASONS: [(Reason, &str); 4] = [
    (Reason::Nearest, "nearest"),
    (Reason::Rule, "rule"),
    (Reason::Fallback, "fallback"),
    (Reason::FailOpen, "fail_open"),
];

impl ServiceCounters {
    /// Whether a fail-open warning is due (with the number left out since
    /// the last one): at most one every ten seconds per service, so an
    /// outage is loud in the logs without flooding them.
    pub fn fail_open_warning_due(&self) -> Option<u64> {
        self.fail_open_warning.admit()
    }

    /// The counter of answers whose first edge is `edge`, chosen for `reason`.
    pub fn answered(&self, edge: usize, reason: Reason) -> Option<Counter> {
        self.answers
            .get(edge)
            .map(|counters| counters[reason_index(reason)].clone())
    }
}

impl DnsMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> std::sync::Arc<Self> {
        let metrics = Self {
            queries: Family::default(),
            ecs: Family::default(),
            answers: Family::default(),
            unlocated: Family::default(),
            fail_open: Family::default(),
            // 2 us to 65 ms.
            latency: AtomicHistogram::exponential(2e-6, 16),
            edge_status: Family::default(),
            edge_saturated: Family::default(),
            health_checks: Family::default(),
            dropped: Counter::default(),
            tcp_refused: Counter::default(),
            tcp_evicted: Family::default(),
            reloads: Family::default(),
            notifies: Family::default(),
            answer_cache: CacheMetrics::default(),
            rate_limit_slipped: Counter::default(),
            rate_limit_dropped: Counter::default(),
            dnstap_written: Counter::default(),
            dnstap_dropped: Counter::default(),
            geo_map_runs: Family::default(),
            geo_map_seconds: Family::default(),
            geo_map_bytes: Gauge::default(),
        };
        registry.register(
            "dns_queries",
            "DNS queries answered, by transport, type and response code",
            metrics.queries.clone(),
        );
        registry.register(
            "dns_ecs_queries",
            "Queries with and without a usable EDNS Client Subnet option",
            metrics.ecs.clone(),
        );
        registry.register(
            "dns_geo_answers",
            "Geo answers by service, first edge and reason",
            metrics.answers.clone(),
        );
        registry.register(
            "dns_geo_unlocated",
            "Geo queries whose client could not be located",
            metrics.unlocated.clone(),
        );
        registry.register(
            "dns_geo_fail_open",
            "Geo answers given while every edge was down",
            metrics.fail_open.clone(),
        );
        registry.register(
            "dns_answer_duration_seconds",
            "Time from query received to answer encoded",
            metrics.latency.clone(),
        );
        registry.register(
            "edge_health_status",
            "Edge state: 0 up, 1 draining, 2 down",
            metrics.edge_status.clone(),
        );
        registry.register(
            "edge_saturated",
            "1 while an edge reports a utilisation at or above health.saturated_at (no new clients)",
            metrics.edge_saturated.clone(),
        );
        registry.register(
            "edge_health_checks",
            "Health checks by edge and result",
            metrics.health_checks.clone(),
        );
        registry.register(
            "dns_dropped",
            "Packets dropped without an answer (too short, or responses)",
            metrics.dropped.clone(),
        );
        registry.register(
            "dns_tcp_connections_refused",
            "New TCP connections closed at once: the table was full and no connection in it was idle",
            metrics.tcp_refused.clone(),
        );
        registry.register(
            "dns_answer_cache_bytes",
            "Bytes held by the answer caches of all UDP receive loops",
            metrics.answer_cache.bytes.clone(),
        );
        registry.register(
            "dns_answer_cache_hits",
            "Plain UDP queries answered from an answer cache",
            metrics.answer_cache.hits.clone(),
        );
        registry.register(
            "dns_answer_cache_misses",
            "Plain UDP queries that took the full path",
            metrics.answer_cache.misses.clone(),
        );
        registry.register(
            "dns_tcp_connections_evicted",
            "Idle TCP connections closed to make room, by reason (table full, client at its limit)",
            metrics.tcp_evicted.clone(),
        );
        registry.register(
            "dns_rate_limit_slipped",
            "UDP responses over server.rate_limit sent truncated instead, so real clients retry over TCP",
            metrics.rate_limit_slipped.clone(),
        );
        registry.register(
            "dns_rate_limit_dropped",
            "UDP responses over server.rate_limit not sent",
            metrics.rate_limit_dropped.clone(),
        );
        registry.register(
            "dns_dnstap_written",
            "Responses written to the dnstap log (after sampling)",
            metrics.dnstap_written.clone(),
        );
        registry.register(
            "dns_dnstap_dropped",
            "Responses left out of the dnstap log because its queue was full: the query path never waits for the writer",
            metrics.dnstap_dropped.clone(),
        );
        registry.register(
            "dns_notify",
            "NOTIFY messages to secondaries by outcome: acknowledged, refused (an error reply) or unanswered (after every retry)",
            metrics.notifies.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "dns_geo_map_entries",
            "Size of the geo maps: runs of places (address ranges with one location) from the databases, ranking classes (places that rank the edges alike) over all services, runs of answers under the current health",
            metrics.geo_map_runs.clone(),
        );
        registry.register(
            "dns_geo_map_build_seconds",
            "How long the last build of each geo map layer took; answers are rebuilt after every health change",
            metrics.geo_map_seconds.clone(),
        );
        registry.register(
            "dns_geo_map_bytes",
            "Memory held by the geo maps",
            metrics.geo_map_bytes.clone(),
        );

        std::sync::Arc::new(metrics)
    }

    /// The counter of answered queries with these labels.
    pub fn query_counter(
        &self,
        transport: Transport,
        qtype: RecordType,
        rcode: ResponseCode,
    ) -> Counter {
        self.queries
            .get_or_create(&QueryLabels {
                transport,
                qtype: QtypeLabel::new(qtype),
                rcode: RcodeLabel(rcode),
            })
            .clone()
    }

    /// Records the time from receiving a query to having its answer.
    pub fn latency(&self, elapsed: std::time::Duration) {
        self.latency.observe(elapsed);
    }

    /// The counter of queries with (`true`) or without a usable ECS option.
    pub fn ecs_counter(&self, present: bool) -> Counter {
        self.ecs
            .get_or_create(&EcsLabels {
                ecs: if present { "present" } else { "absent" },
            })
            .clone()
    }

    /// Counts a packet dropped without an answer.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// Counts a TCP connection refused for the limit.
    pub fn tcp_refused(&self) {
        self.tcp_refused.inc();
    }

    /// Counts a TCP connection closed to make room for a new one.
    pub fn tcp_evicted(&self, reason: Eviction) {
        self.tcp_evicted
            .get_or_create(&EvictionLabels {
                reason: match reason {
                    Eviction::LongestIdle => "longest_idle",
                    Eviction::PerClient => "per_client",
                },
            })
            .inc();
    }

    /// Counts one NOTIFY to one secondary, by outcome.
    pub fn notified(&self, result: &'static str) {
        self.notifies.get_or_create(&NotifyLabels { result }).inc();
    }

    /// Publishes the figures of the geo maps now answering.
    pub fn geo_maps(&self, figures: &GeoMapFigures) {
        for (table, runs, took) in [
            ("places", figures.place_runs, figures.places_took),
            ("rankings", figures.ranking_classes, figures.rankings_took),
            ("answers", figures.answer_runs, figures.answers_took),
        ] {
            let labels = GeoMapLabels { table };
            self.geo_map_runs
                .get_or_create(&labels)
                .set(i64::try_from(runs).unwrap_or(i64::MAX));
            self.geo_map_seconds
                .get_or_create(&labels)
                .set(took.as_secs_f64());
        }
        self.geo_map_bytes
            .set(i64::try_from(figures.bytes).unwrap_or(i64::MAX));
    }

    /// Counts one configuration reload.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                result: if ok { "success" } else { "failure" },
            })
            .inc();
    }

    /// Resolves the counters of one service.
    pub fn service_counters(&self, service: &str, edges: &[String]) -> ServiceCounters {
        let service_label = ServiceLabels {
            service: service.to_string(),
        };
        ServiceCounters {
            answers: edges
                .iter()
                .map(|edge| {
                    REASONS.map(|(_, reason)| {
                        self.answers
                            .get_or_create(&AnswerLabels {
                                service: service.to_string(),
                                edge: edge.clone(),
                                reason,
                            })
                            .clone()
                    })
                })
                .collect(),
            unlocated: self.unlocated.get_or_create(&service_label).clone(),
            fail_open: self.fail_open.get_or_create(&service_label).clone(),
            fail_open_warning: std::sync::Arc::new(LogLimiter::new(Duration::from_secs(10))),
        }
    }

    /// Publishes the state of edge `edge`, checked at `url`.
    pub fn set_edge_status(&self, edge: &str, url: &str, status: EdgeStatus) {
        let value = match status {
            EdgeStatus::Up => 0,
            EdgeStatus::Draining => 1,
            EdgeStatus::Down => 2,
        };
        self.edge_status
            .get_or_create(&EdgeLabels::new(edge, url))
            .set(value);
    }

    /// Publishes whether an edge is saturated (1) or has room (0).
    pub fn set_edge_saturated(&self, edge: &str, url: &str, saturated: bool) {
        self.edge_saturated
            .get_or_create(&EdgeLabels::new(edge, url))
            .set(i64::from(saturated));
    }

    /// Counts one health check.
    pub fn record_health_check(&self, edge: &str, url: &str, success: bool) {
        self.health_checks
            .get_or_create(&CheckLabels {
                edge: edge.to_string(),
                url: url.to_string(),
                result: if success { "success" } else { "failure" },
            })
            .inc();
    }

    /// Drops the series of an edge no longer configured (or renamed).
    pub fn forget_edge(&self, edge: &str, url: &str) {
        self.edge_status.remove(&EdgeLabels::new(edge, url));
        self.edge_saturated.remove(&EdgeLabels::new(edge, url));
        for result in ["success", "failure"] {
            self.health_checks.remove(&CheckLabels {
                edge: edge.to_string(),
                url: url.to_string(),
                result,
            });
        }
    }
}
