//! Metrics of automatic certificates: orders by result and when each
//! certificate is next ordered. One series per configured certificate.

use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CertificateLabels {
    certificate: String,
}

/// ACME metrics.
#[derive(Debug, Default)]
pub struct AcmeMetrics {
    orders: Family<ResultLabels, Counter>,
    account_errors: Counter,
    next_order: Family<CertificateLabels, Gauge>,
}

impl AcmeMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> std::sync::Arc<Self> {
        let metrics = Self::default();
        registry.register(
            "edge_acme_orders",
            "ACME certificate orders by result (issued or failed)",
            metrics.orders.clone(),
        );
        registry.register(
            "edge_acme_account_errors",
            "Failures to open or create the ACME account (the CA unreachable, say)",
            metrics.account_errors.clone(),
        );
        registry.register(
            "edge_acme_next_order_timestamp_seconds",
            "When each ACME certificate is next ordered (Unix time), by its first name",
            metrics.next_order.clone(),
        );
        std::sync::Arc::new(metrics)
    }

    pub(super) fn ordered(&self, issued: bool) {
        let result = if issued { "issued" } else { "failed" };
        self.orders.get_or_create(&ResultLabels { result }).inc();
    }

    pub(super) fn account_failed(&self) {
        self.account_errors.inc();
    }

    pub(super) fn next_order(&self, certificate: &str, at: SystemTime) {
        let seconds = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        self.next_order
            .get_or_create(&CertificateLabels {
                certificate: certificate.to_string(),
            })
            .set(seconds);
    }
}
