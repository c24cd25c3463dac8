//! Metrics of client TLS: handshakes by version and kind, failures, and the
//! time left on each certificate. Series are bounded: two versions, two
//! kinds, a few failure reasons, one series per configured certificate.

use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustls::ProtocolVersion;

use super::Certificate;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HandshakeLabels {
    version: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CertificateLabels {
    certificate: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Client TLS metrics.
#[derive(Debug, Default)]
pub struct TlsMetrics {
    handshakes: Family<HandshakeLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    expiry: Family<CertificateLabels, Gauge>,
    reloads: Family<ResultLabels, Counter>,
    acme_challenges: Counter,
}

impl TlsMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> std::sync::Arc<Self> {
        let metrics = Self::default();
        registry.register(
            "edge_tls_handshakes",
            "Completed client TLS handshakes by protocol version and kind (full or resumed)",
            metrics.handshakes.clone(),
        );
        registry.register(
            "edge_tls_handshake_errors",
            "Client TLS handshakes that did not complete, by reason",
            metrics.errors.clone(),
        );
        registry.register(
            "edge_tls_certificate_expiry_seconds",
            "Seconds until each served certificate expires (0 once expired), by its first name",
            metrics.expiry.clone(),
        );
        registry.register(
            "edge_tls_certificate_reloads",
            "Reloads of the certificate files by result (a failed one keeps the certificates in use)",
            metrics.reloads.clone(),
        );
        registry.register(
            "edge_tls_acme_challenges_answered",
            "TLS-ALPN-01 validation handshakes answered for the ACME CA",
            metrics.acme_challenges.clone(),
        );
        std::sync::Arc::new(metrics)
    }

    pub(super) fn handshake_completed(&self, version: ProtocolVersion, resumed: bool) {
        let version = match version {
            ProtocolVersion::TLSv1_3 => "1.3",
            ProtocolVersion::TLSv1_2 => "1.2",
            _ => "other",
        };
        let kind = if resumed { "resumed" } else { "full" };
        self.handshakes
            .get_or_create(&HandshakeLabels { version, kind })
            .inc();
    }

    pub(super) fn handshake_failed(&self) {
        self.error("failed");
    }

    pub(super) fn handshake_timed_out(&self) {
        self.error("timeout");
    }

    /// A hello refused for `reason` (a fixed word).
    pub(super) fn handshake_refused(&self, reason: &'static str) {
        self.error(reason);
    }

    pub(super) fn challenge_answered(&self) {
        self.acme_challenges.inc();
    }

    fn error(&self, reason: &'static str) {
        self.errors.get_or_create(&ErrorLabels { reason }).inc();
    }

    pub(super) fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// Replaces the expiry series with those of the certificates now served.
    pub(super) fn certificates_loaded<'a>(
        &self,
        certificates: impl Iterator<Item = &'a Certificate>,
    ) {
        self.expiry.clear();
        self.refresh_expiry(certificates, SystemTime::now());
    }

    pub(super) fn refresh_expiry<'a>(
        &self,
        certificates: impl Iterator<Item = &'a Certificate>,
        now: SystemTime,
    ) {
        for certificate in certificates {
            let seconds = i64::try_from(certificate.remaining(now).as_secs()).unwrap_or(i64::MAX);
            self.expiry
                .get_or_create(&CertificateLabels {
                    certificate: certificate.names.first(),
                })
                .set(seconds);
        }
    }
}
