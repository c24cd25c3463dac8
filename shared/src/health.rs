//! The health document an edge publishes at `/healthz` and geodns polls.
//!
//! One type on both sides, so that the producer and the consumer cannot drift
//! apart. Unknown fields are ignored on read: a newer edge may add fields and an
//! older geodns must keep understanding it.

use serde::{Deserialize, Serialize};

/// Whether an edge wants new clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeStatus {
    /// Serving and accepting new clients.
    Up,
    /// Serving the clients it has but asking for no new ones (before maintenance).
    Draining,
    /// Not serving.
    Down,
}

impl EdgeStatus {
    /// Whether a DNS answer may send new clients to an edge in this state.
    pub fn accepts_new_clients(self) -> bool {
        matches!(self, Self::Up)
    }

    /// The lowercase name used on the wire and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Draining => "draining",
            Self::Down => "down",
        }
    }
}

impl std::fmt::Display for EdgeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fraction between 0.0 and 1.0; values outside are rejected on read so
/// that a buggy or hostile edge cannot skew load-aware decisions.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize)]
#[serde(transparent)]
pub struct Utilisation(f64);

impl Utilisation {
    /// Clamps `value` into 0.0..=1.0 (NaN becomes 0.0).
    pub fn saturating(value: f64) -> Self {
        if value.is_nan() {
            Self(0.0)
        } else {
            Self(value.clamp(0.0, 1.0))
        }
    }

    /// The fraction as a float in 0.0..=1.0.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Utilisation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "utilisation must be between 0.0 and 1.0, got {value}"
            )))
        }
    }
}

/// Load on the edge right now.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Load {
    /// Client requests being served at this instant.
    pub in_flight: u64,
    /// How busy the edge considers itself, 0.0 (idle) to 1.0 (saturated):
    /// the largest share in use of any resource that bounds it (connection
    /// slots, request slots). geodns sends no new clients to an edge at or
    /// above its `health.saturated_at`.
    pub utilisation: Utilisation,
    /// Client connections open.
    #[serde(default)]
    pub connections: u64,
    /// Client connections it accepts at most.
    #[serde(default)]
    pub connection_limit: u64,
}

/// How full the edge's cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheFill {
    /// Bytes currently accounted to stored objects.
    pub used_bytes: u64,
    /// The configured byte budget.
    pub capacity_bytes: u64,
    /// Number of stored objects.
    pub objects: u64,
}

/// The `/healthz` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Whether the edge wants new clients.
    pub status: EdgeStatus,
    /// Current load.
    pub load: Load,
    /// Cache occupancy.
    pub cache: CacheFill,
    /// Software version of the edge.
    pub version: String,
}

impl HealthReport {
    /// Largest document a reader should accept; a real one is a few hundred bytes.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Parses a document received over the network, refusing oversized input.
    pub fn from_json(bytes: &[u8]) -> Result<Self, HealthParseError> {
        if bytes.len() > Self::MAX_BYTES {
            return Err(HealthParseError::TooLarge(bytes.len()));
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Serialises the document for `/healthz`.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a received health document was rejected.
#[derive(Debug, thiserror::Error)]
pub enum HealthParseError {
    /// Larger than [`HealthReport::MAX_BYTES`].
    #[error("health document too large ({0} bytes)")]
    TooLarge(usize),
    /// Not JSON, or not the expected shape.
    #[error("invalid health document: {0}")]
    Invalid(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HealthReport {
        HealthReport {
            status: EdgeStatus::Draining,
            load: Load {
                in_flight: 12,
                utilisation: Utilisation::saturating(0.25),
                connections: 250,
                connection_limit: 1000,
            },
            cache: CacheFill {
                used_bytes: 1024,
                capacity_bytes: 4096,
                objects: 3,
            },
            version: "1.2.3".into(),
        }
    }

    #[test]
    fn documents_of_older_edges_without_connection_counts_are_read() {
        let old = br#"{"status":"up","load":{"in_flight":1,"utilisation":0.5},"cache":{"used_bytes":0,"capacity_bytes":0,"objects":0},"version":"0.0.1"}"#;
        let report = HealthReport::from_json(old).unwrap();
        assert_eq!(report.load.connections, 0);
        assert_eq!(report.load.utilisation.get(), 0.5);
    }

    #[test]
    fn report_round_trips_through_json() {
        let report = sample();
        assert_eq!(HealthReport::from_json(&report.to_json()).unwrap(), report);
    }

    #[test]
    fn wire_format_is_stable() {
        let json: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        assert_eq!(json["status"], "draining");
        assert_eq!(json["load"]["in_flight"], 12);
        assert_eq!(json["load"]["utilisation"], 0.25);
        assert_eq!(json["cache"]["capacity_bytes"], 4096);
    }

    #[test]
    fn unknown_fields_from_newer_edges_are_ignored() {
        let text = br#"{"status":"up","load":{"in_flight":0,"utilisation":0.0},
            "cache":{"used_bytes":0,"capacity_bytes":0,"objects":0},"version":"9","future":1}"#;
        assert_eq!(
            HealthReport::from_json(text).unwrap().status,
            EdgeStatus::Up
        );
    }

    #[test]
    fn out_of_range_utilisation_is_rejected() {
        let text = br#"{"status":"up","load":{"in_flight":0,"utilisation":7.5},
            "cache":{"used_bytes":0,"capacity_bytes":0,"objects":0},"version":"9"}"#;
        assert!(HealthReport::from_json(text).is_err());
    }

    #[test]
    fn oversized_document_is_rejected() {
        let big = vec![b' '; HealthReport::MAX_BYTES + 1];
        assert!(matches!(
            HealthReport::from_json(&big),
            Err(HealthParseError::TooLarge(_))
        ));
    }

    #[test]
    fn only_up_accepts_new_clients() {
        assert!(EdgeStatus::Up.accepts_new_clients());
        assert!(!EdgeStatus::Draining.accepts_new_clients());
        assert!(!EdgeStatus::Down.accepts_new_clients());
    }
}
