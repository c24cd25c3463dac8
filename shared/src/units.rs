//! Human-friendly units in configuration files: durations such as `30s` or
//! `1m30s`, and sizes such as `256MiB`.
//!
//! Parsing is done by `humantime` and `bytesize`; these wrappers only make the
//! error messages say which kind of value was expected and echo the bad text,
//! so that `ttl = "30x"` reports `invalid duration "30x"`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time written the way people write it: `500ms`, `30s`, `2m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// Wraps a standard duration.
    pub const fn new(duration: std::time::Duration) -> Self {
        Self(duration)
    }

    /// A whole number of seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// A whole number of milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    /// The standard duration, for timers and arithmetic.
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.0
    }
}

/// Why a duration did not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration \"{text}\": {reason} (examples: 500ms, 30s, 2m, 1h)")]
pub struct InvalidDuration {
    text: String,
    reason: humantime::DurationError,
}

impl FromStr for Duration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text)
            .map(Self)
            .map_err(|reason| InvalidDuration {
                text: text.to_string(),
                reason,
            })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An amount of memory or data: `512MiB`, `1GiB`, `64KiB`, `1000000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(u64);

impl ByteSize {
    /// A size of exactly `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// A size in mebibytes (2^20 bytes).
    pub const fn mib(mebibytes: u64) -> Self {
        Self(mebibytes * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

/// Why a size did not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid size \"{text}\": {reason} (examples: 64KiB, 512MiB, 2GiB)")]
pub struct InvalidByteSize {
    text: String,
    reason: String,
}

impl FromStr for ByteSize {
    type Err = InvalidByteSize;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| Self(size.as_u64()))
            .map_err(|reason| InvalidByteSize {
                text: text.to_string(),
                reason,
            })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bytesize::ByteSize::b(self.0).display().iec().fmt(f)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Sizes may be written as a bare number of bytes or as a string with a unit.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(bytes) => Ok(Self(bytes)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_human_units() {
        assert_eq!("30s".parse::<Duration>().unwrap(), Duration::from_secs(30));
        assert_eq!("2m".parse::<Duration>().unwrap(), Duration::from_secs(120));
        assert_eq!(
            "1500ms".parse::<Duration>().unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn bad_duration_echoes_the_text() {
        let error = "30x".parse::<Duration>().unwrap_err().to_string();
        assert!(error.starts_with("invalid duration \"30x\""), "{error}");
    }

    #[test]
    fn sizes_parse_binary_units() {
        assert_eq!("256MiB".parse::<ByteSize>().unwrap().bytes(), 256 << 20);
        assert_eq!("1 GiB".parse::<ByteSize>().unwrap().bytes(), 1 << 30);
        assert_eq!("1000".parse::<ByteSize>().unwrap().bytes(), 1000);
    }

    #[test]
    fn bad_size_echoes_the_text() {
        let error = "12 parsecs".parse::<ByteSize>().unwrap_err().to_string();
        assert!(error.starts_with("invalid size \"12 parsecs\""), "{error}");
    }

    #[test]
    fn size_accepts_bare_integer_in_toml() {
        #[derive(Deserialize)]
        struct Holder {
            size: ByteSize,
        }
        let holder: Holder = toml::from_str("size = 4096").unwrap();
        assert_eq!(holder.size.bytes(), 4096);
    }
}
