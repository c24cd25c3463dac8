//! Prometheus metrics of the edge.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use shared::metrics::AtomicHistogram;

use crate::proxy::CacheStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum CacheLabel {
    hit,
    miss,
    stale,
    revalidated,
    bypass,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    cache: CacheLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OriginLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CloseLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResponseLabels {
    class: &'static str,
    cache: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: &'static str,
}

/// Every metric the edge exports.
#[derive(Debug)]
pub struct EdgeMetrics {
    requests: Family<RequestLabels, Counter>,
    bytes_served: Counter,
    origin_requests: Family<OriginLabels, Counter>,
    origin_latency: AtomicHistogram,
    fills: Family<UpstreamLabels, Counter>,
    /// Entries evicted for space (updated at scrape).
    pub evictions: Counter,
    /// Storable responses not stored because they alone exceed a store shard.
    pub refused_too_large: Counter,
    /// Storable responses streamed without being stored: the fill memory
    /// budget had no room for them.
    pub not_stored_no_room: Counter,
    /// Bytes held by responses being read into the cache.
    pub fill_bytes: Gauge,
    /// Sealed cache bodies alive, one descriptor each (updated at scrape).
    pub sealed_bodies: Gauge,
    /// Sealed cache bodies allowed at once by the open files limit.
    pub sealed_budget: Gauge,
    /// Stored entries (updated at scrape).
    pub entries: Gauge,
    /// Bytes charged to stored entries (updated at scrape).
    pub stored_bytes: Gauge,
    /// Requests being served.
    pub in_flight: Gauge,
    /// Client connections open (updated at scrape).
    pub connections_open: Gauge,
    connections_closed: Family<CloseLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    request_duration: AtomicHistogram,
    response_bytes: Counter,
    evictions_seen: std::sync::atomic::AtomicU64,
}

impl EdgeMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> std::sync::Arc<Self> {
        let metrics = Self {
            requests: Family::default(),
            bytes_served: Counter::default(),
            origin_requests: Family::default(),
            origin_latency: AtomicHistogram::exponential(0.0005, 16),
            fills: Family::default(),
            evictions: Counter::default(),
            refused_too_large: Counter::default(),
            not_stored_no_room: Counter::default(),
            fill_bytes: Gauge::default(),
            sealed_bodies: Gauge::default(),
            sealed_budget: Gauge::default(),
            entries: Gauge::default(),
            stored_bytes: Gauge::default(),
            in_flight: Gauge::default(),
            connections_open: Gauge::default(),
            connections_closed: Family::default(),
            config_reloads: Family::default(),
            responses: Family::default(),
            request_duration: AtomicHistogram::exponential(0.0001, 18),
            response_bytes: Counter::default(),
            evictions_seen: std::sync::atomic::AtomicU64::new(0),
        };
        registry.register(
            "edge_requests",
            "Client requests by cache outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "edge_served_bytes",
            "Body bytes sent to clients from the cache",
            metrics.bytes_served.clone(),
        );
        registry.register(
            "edge_origin_requests",
            "Origin requests by result",
            metrics.origin_requests.clone(),
        );
        registry.register(
            "edge_origin_duration_seconds",
            "Time to the origin's response head",
            metrics.origin_latency.clone(),
        );
        registry.register(
            "edge_fills",
            "Cache fills by who answered: a peer of the region, the parent or an origin",
            metrics.fills.clone(),
        );
        registry.register(
            "edge_cache_refused_too_large",
            "Storable responses not stored because they do not fit the store",
            metrics.refused_too_large.clone(),
        );
        registry.register(
            "edge_cache_not_stored_no_room",
            "Storable responses streamed without being stored because cache.fill_memory was in use",
            metrics.not_stored_no_room.clone(),
        );
        registry.register(
            "edge_cache_fill_bytes",
            "Bytes held by responses being read into the cache (bounded by cache.fill_memory)",
            metrics.fill_bytes.clone(),
        );
        registry.register(
            "edge_cache_sealed_bodies",
            "Cache bodies in sealed memory files, one file descriptor each",
            metrics.sealed_bodies.clone(),
        );
        registry.register(
            "edge_cache_sealed_bodies_limit",
            "Sealed cache bodies allowed at once: what the open files limit leaves after the allowed connections, at most half of it",
            metrics.sealed_budget.clone(),
        );
        registry.register(
            "edge_cache_evictions",
            "Entries evicted to stay within capacity",
            metrics.evictions.clone(),
        );
        registry.register(
            "edge_cache_entries",
            "Entries stored",
            metrics.entries.clone(),
        );
        registry.register(
            "edge_cache_bytes",
            "Bytes charged to stored entries",
            metrics.stored_bytes.clone(),
        );
        registry.register(
            "edge_in_flight_requests",
            "Requests being served",
            metrics.in_flight.clone(),
        );
        registry.register(
            "edge_connections_open",
            "Client connections open",
            metrics.connections_open.clone(),
        );
        registry.register(
            "edge_connections_closed",
            "Client connections the edge closed or refused, by reason (timeouts, evicted for room, refused when full)",
            metrics.connections_closed.clone(),
        );
        registry.register(
            "edge_responses",
            "Responses to clients by status class and cache status (HIT, MISS, STALE, REVALIDATED, BYPASS, or - for the edge's own answers)",
            metrics.responses.clone(),
        );
        registry.register(
            "edge_request_duration_seconds",
            "Client requests from arrival to the last byte of the response (or the client leaving)",
            metrics.request_duration.clone(),
        );
        registry.register(
            "edge_response_body_bytes",
            "Response body bytes sent to clients, hits and misses alike",
            metrics.response_bytes.clone(),
        );
        registry.register(
            "edge_config_reloads",
            "Configuration reloads on SIGHUP by result (a failed one keeps the configuration in force)",
            metrics.config_reloads.clone(),
        );
        std::sync::Arc::new(metrics)
    }

    /// Counts a client request.
    pub fn request(&self, status: CacheStatus) {
        let cache = match status {
            CacheStatus::Hit => CacheLabel::hit,
            CacheStatus::Miss => CacheLabel::miss,
            CacheStatus::Stale => CacheLabel::stale,
            CacheStatus::Revalidated => CacheLabel::revalidated,
            CacheStatus::Bypass => CacheLabel::bypass,
        };
        self.requests.get_or_create(&RequestLabels { cache }).inc();
    }

    /// Counts a response sent (or cut short) to a client.
    pub fn responded(
        &self,
        status: u16,
        cache: &'static str,
        duration: std::time::Duration,
        bytes: u64,
    ) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.responses
            .get_or_create(&ResponseLabels { class, cache })
            .inc();
        self.request_duration.observe(duration);
        self.response_bytes.inc_by(bytes);
    }

    /// Counts a configuration reload.
    pub fn config_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts a connection the edge closed or refused.
    pub fn connection_closed(&self, reason: crate::server::connections::CloseReason) {
        self.connections_closed
            .get_or_create(&CloseLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Counts body bytes served from the cache.
    pub fn served(&self, bytes: usize) {
        self.bytes_served.inc_by(bytes as u64);
    }

    /// Counts an origin request and its latency.
    pub fn origin(&self, result: &'static str, elapsed: std::time::Duration) {
        self.origin_requests
            .get_or_create(&OriginLabels { result })
            .inc();
        self.origin_latency.observe(elapsed);
    }

    /// Counts an origin response by its status class.
    pub fn origin_answered(&self, status: hyper::StatusCode, elapsed: std::time::Duration) {
        self.origin(
            if status.is_server_error() {
                "5xx"
            } else {
                "ok"
            },
            elapsed,
        );
    }

    /// Counts a fill answered by `upstream`.
    pub fn filled_from(&self, upstream: crate::proxy::Upstream) {
        self.fills
            .get_or_create(&UpstreamLabels {
                upstream: upstream.as_str(),
            })
            .inc();
    }

    /// Publishes the store's figures (called before each scrape).
    pub fn update_store(&self, entries: usize, bytes: usize, evictions: u64) {
        self.entries.set(entries as i64);
        self.sealed_bodies
            .set(crate::cache::sealed::open_count() as i64);
        self.stored_bytes.set(bytes as i64);
        let seen = self
            .evictions_seen
            .swap(evictions, std::sync::atomic::Ordering::Relaxed);
        self.evictions.inc_by(evictions.saturating_sub(seen));
    }
}
