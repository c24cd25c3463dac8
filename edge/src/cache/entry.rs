//! A stored response and its age and freshness (RFC 9111 section 4.2).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use super::directives::Directives;

/// Bytes charged per entry beyond its body, headers and key: the entry
/// itself, its LRU node and map slot.
pub const ENTRY_OVERHEAD: usize = 256;

/// The `Age` the origin gave: the first member when a proxy appended
/// more (RFC 9111 section 5.1), capped at the delta-seconds maximum of
/// section 1.2.2 (2^31) when larger.
pub fn age_field(headers: &HeaderMap) -> Duration {
    headers
        .get(hyper::header::AGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.split(',').next())
        .map(str::trim)
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
        .map_or(Duration::ZERO, |digits| {
            Duration::from_secs(
                digits
                    .parse::<u64>()
                    .unwrap_or(super::directives::MAX_DELTA_SECONDS)
                    .min(super::directives::MAX_DELTA_SECONDS),
            )
        })
}

/// One stored response.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// Status of the origin response.
    pub status: StatusCode,
    /// Headers as stored (hop-by-hop removed, `Date` present). Targeted
    /// cache-control fields stay, so that revalidation keeps them in force,
    /// and are removed when served unless forwarding is configured.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// When the request that fetched it was sent.
    pub request_time: SystemTime,
    /// When its head arrived.
    pub response_time: SystemTime,
    /// Its `Date`.
    pub date: SystemTime,
    /// The `Age` the origin (or an upstream cache) sent.
    pub age_value: Duration,
    /// How long it is fresh from its `Date`.
    pub lifetime: Duration,
    /// The directives that govern its use.
    pub directives: Directives,
    /// Request headers named by `Vary`, with the values the fetching request had.
    pub vary: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl StoredResponse {
    /// RFC 9111 section 4.2.3: the current age.
    pub fn current_age(&self, now: SystemTime) -> Duration {
        let apparent_age = self
            .response_time
            .duration_since(self.date)
            .unwrap_or_default();
        let response_delay = self
            .response_time
            .duration_since(self.request_time)
            .unwrap_or_default();
        let corrected_age_value = self.age_value + response_delay;
        let corrected_initial_age = apparent_age.max(corrected_age_value);
        let resident_time = now.duration_since(self.response_time).unwrap_or_default();
        corrected_initial_age + resident_time
    }

    /// How far past fresh it is (zero while fresh).
    pub fn staleness(&self, now: SystemTime) -> Duration {
        self.current_age(now).saturating_sub(self.lifetime)
    }

    /// Fresh and usable without asking the origin.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        !self.directives.no_cache && self.current_age(now) < self.lifetime
    }

    /// `must-revalidate`, `proxy-revalidate` and `no-cache` forbid serving
    /// it stale on our own initiative (RFC 9111 sections 4.2.4, 5.2.2).
    fn revalidation_required(&self) -> bool {
        let d = &self.directives;
        d.must_revalidate || d.proxy_revalidate || d.no_cache
    }

    /// Within `stale-while-revalidate` (RFC 5861): serve now, refresh in the background.
    pub fn within_stale_while_revalidate(&self, now: SystemTime) -> bool {
        !self.revalidation_required()
            && self
                .directives
                .stale_while_revalidate
                .is_some_and(|window| self.staleness(now) <= Duration::from_secs(window))
    }

    /// Usable when the origin fails: within `stale-if-error` (the origin's
    /// explicit permission), or within our grace unless the response demands
    /// revalidation (`s-maxage` carries `proxy-revalidate`, section 5.2.2.10).
    pub fn usable_on_error(&self, now: SystemTime, grace: Duration) -> bool {
        let staleness = self.staleness(now);
        let explicit = self
            .directives
            .stale_if_error
            .is_some_and(|window| staleness <= Duration::from_secs(window));
        let graced = !self.revalidation_required()
            && self.directives.s_maxage.is_none()
            && staleness <= grace;
        !self.directives.no_cache && (explicit || graced)
    }

    /// Memory charged for it, key excluded.
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        self.body.len() + headers + ENTRY_OVERHEAD
    }

    /// Its strong or weak entity tag.
    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(hyper::header::ETAG)
    }

    /// Its `Last-Modified`.
    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(hyper::header::LAST_MODIFIED)
    }
}
