//! Prometheus metrics, through `prometheus-client`.
//!
//! Each binary builds one [`Registry`], registers its metric families at start,
//! and hands it to the admin server, which serves it at `/metrics` in the
//! OpenMetrics text format. The query and cache hot paths only touch atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
pub use prometheus_client::registry::Registry;

/// The media type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders every metric in `registry` as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// A registry with the metrics every process of ours exports, such as
/// `build_info`, so dashboards can tell versions apart.
pub fn new_registry(program: &str, version: &str) -> Registry {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    let mut registry = Registry::default();
    let info = Family::<Vec<(String, String)>, Gauge>::default();
    info.get_or_create(&vec![
        ("program".to_string(), program.to_string()),
        ("version".to_string(), version.to_string()),
    ])
    .set(1);
    registry.register("build_info", "Program name and version", info);
    registry
}

/// A histogram of durations that records without locking.
///
/// `prometheus-client`'s histogram takes a mutex per observation, which on
/// a path run for every DNS query or cache hit makes cores wait on each
/// other. Here every bucket is its own atomic counter; a scrape may see an
/// observation in `count` a moment before its bucket, which Prometheus
/// tolerates.
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug)]
struct HistogramInner {
    /// Upper bounds in seconds, ascending.
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); the last is +Inf.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with the given upper bounds in seconds.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let mut bounds: Vec<f64> = bounds
            .into_iter()
            .filter(|bound| bound.is_finite())
            .collect();
        bounds.sort_by(f64::total_cmp);
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            inner: Arc::new(HistogramInner {
                bounds,
                buckets,
                count: AtomicU64::new(0),
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Bounds doubling from `start` seconds, `count` of them.
    pub fn exponential(start: f64, count: u16) -> Self {
        Self::new((0..count).map(|i| start * 2f64.powi(i32::from(i))))
    }

    /// Records one duration.
    pub fn observe(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        let inner = &self.inner;
        let index = inner.bounds.partition_point(|&bound| bound < seconds);
        if let Some(bucket) = inner.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        inner.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.inner;
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(
                inner
                    .buckets
                    .iter()
                    .map(|bucket| bucket.load(Ordering::Relaxed)),
            )
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_is_exported() {
        let text = encode(&new_registry("geodns", "1.0.0"));
        assert!(
            text.contains("build_info{program=\"geodns\",version=\"1.0.0\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn atomic_histogram_counts_into_cumulative_buckets() {
        let histogram = AtomicHistogram::new([0.001, 0.01]);
        let mut registry = Registry::default();
        registry.register("latency_seconds", "test", histogram.clone());
        histogram.observe(std::time::Duration::from_micros(500));
        histogram.observe(std::time::Duration::from_millis(5));
        histogram.observe(std::time::Duration::from_secs(1));
        let text = encode(&registry);
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.01\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("latency_seconds_count 3"), "{text}");
        assert_eq!(histogram.count(), 3);
    }
}
