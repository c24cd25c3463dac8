//! Prometheus metrics, through `prometheus-client`.
//!
//! Each binary builds one [`Registry`], registers its metric families at start,
//! and hands it to the admin server, which serves it at `/metrics` in the
//! OpenMetrics text format. The query and cache hot paths only touch atomics.

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
}
