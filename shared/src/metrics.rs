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

/// The media type of the classic Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric in `registry` as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The two text formats `/metrics` speaks: Prometheus asks for OpenMetrics,
/// while `curl`, older scrapers and `promtool check metrics` read the
/// classic format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
    /// `text/plain; version=0.0.4`.
    Prometheus,
}

impl Exposition {
    /// OpenMetrics when `accept` lists it with a quality at least that of
    /// `text/plain` (Prometheus sends both, preferring OpenMetrics); the
    /// classic format otherwise, and without an `Accept` header.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Prometheus;
        };
        let mut openmetrics: f32 = 0.0;
        let mut plain: f32 = 0.0;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let quality = parts
                .filter_map(|param| param.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, value)| value.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" => plain = plain.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => CONTENT_TYPE,
            Self::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }

    /// Every metric in `registry` in this format.
    pub fn encode(self, registry: &Registry) -> String {
        let openmetrics = encode(registry);
        match self {
            Self::OpenMetrics => openmetrics,
            Self::Prometheus => openmetrics_to_prometheus(&openmetrics),
        }
    }
}

/// Rewrites OpenMetrics text as the classic Prometheus format: counter
/// families are named by their `_total` samples, `unknown` is `untyped`,
/// info and stateset families are gauges, and `# UNIT` and `# EOF` go.
/// Samples are the same in both.
fn openmetrics_to_prometheus(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // HELP precedes TYPE, but the classic name depends on the type.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (classic_name, classic_kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "counter" => (name.to_string(), "counter"),
                "gauge" | "histogram" | "summary" => (name.to_string(), kind),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_string(), "gauge"),
                "gaugehistogram" => (name.to_string(), "histogram"),
                _ => (name.to_string(), "untyped"),
            };
            if let Some((help_name, help)) = pending_help.take()
                && help_name == name
            {
                out.push_str(&format!("# HELP {classic_name} {help}\n"));
            }
            out.push_str(&format!("# TYPE {classic_name} {classic_kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            if let Some((name, help)) = pending_help.take() {
                out.push_str(&format!("# HELP {name} {help}\n"));
            }
            out.push_str(line);
            out.push('\n');
        }
    }
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
    fn exposition_follows_accept() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(
            Exposition::negotiate(Some(prometheus)),
            Exposition::OpenMetrics
        );
        assert_eq!(Exposition::negotiate(None), Exposition::Prometheus);
        assert_eq!(Exposition::negotiate(Some("*/*")), Exposition::Prometheus);
        assert_eq!(
            Exposition::negotiate(Some("text/plain, application/openmetrics-text;q=0.5")),
            Exposition::Prometheus
        );
        assert_eq!(
            Exposition::negotiate(Some("application/openmetrics-text;q=0")),
            Exposition::Prometheus
        );
    }

    #[test]
    fn classic_text_names_counters_by_their_samples_and_has_no_eof() {
        use prometheus_client::metrics::counter::Counter;
        let mut registry = new_registry("edge", "1.0.0");
        let counter = Counter::<u64>::default();
        counter.inc();
        registry.register("requests", "Requests \\ served", counter);
        let text = Exposition::Prometheus.encode(&registry);
        assert!(text.contains("# HELP requests_total Requests"), "{text}");
        assert!(
            text.contains("# TYPE requests_total counter\nrequests_total 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE build_info gauge"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

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
