//! Whether a response may be stored, and for how long it is fresh
//! (RFC 9111 sections 3 and 4.2.1-4.2.2), for a shared cache.

use std::time::{Duration, SystemTime};

use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode};

use super::directives::Directives;

/// Statuses cacheable by default (RFC 9110 section 15.1).
const HEURISTICALLY_CACHEABLE: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];
/// Statuses whose caching rules we implement (RFC 9110 section 15): the
/// heuristically cacheable ones and the other final codes of RFC 9110.
const UNDERSTOOD: [u16; 27] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 406, 409, 410, 411, 412, 413,
    414, 415, 416, 417, 421, 501, 502, 503,
];
/// Upper bound of heuristic freshness.
const MAX_HEURISTIC: Duration = Duration::from_secs(24 * 3600);

/// What the cache decided about a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storability {
    /// Store it, fresh for this long (may be zero: store and revalidate).
    Store(Duration),
    /// Do not store it, and why.
    Refuse(&'static str),
}

/// The inputs of the decision.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Whether the request carried `Authorization`.
    pub authorized: bool,
    /// Response status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: &'a HeaderMap,
    /// Effective directives (targeted field if present, else `Cache-Control`).
    pub directives: &'a Directives,
    /// The response `Date` (or the time it arrived).
    pub date: SystemTime,
    /// A freshness lifetime imposed by configuration for this path.
    pub forced_ttl: Option<Duration>,
    /// Freshness for responses with a validator but no explicit lifetime.
    pub default_ttl: Duration,
    /// Whether responses with `Set-Cookie` may be stored.
    pub cache_set_cookie: bool,
}

/// Decides storability and the freshness lifetime.
pub fn decide(response: &Response<'_>) -> Storability {
    let directives = response.directives;
    if response.method != Method::GET {
        return Storability::Refuse("method");
    }
    // Section 5.2.2.3: with must-understand, a cache that understands the
    // status code may ignore no-store; one that does not must not store.
    let understood = UNDERSTOOD.contains(&response.status.as_u16());
    if directives.must_understand && !understood {
        return Storability::Refuse("must-understand with an unknown status");
    }
    if directives.no_store && !(directives.must_understand && understood) {
        return Storability::Refuse("no-store");
    }
    if directives.private {
        return Storability::Refuse("private");
    }
    if response.status.is_informational() || response.status == StatusCode::PARTIAL_CONTENT {
        return Storability::Refuse("status");
    }
    // Section 3.5: Authorization only with explicit permission for shared caches.
    if response.authorized && !directives.shared_with_credentials() {
        return Storability::Refuse("authorization");
    }
    // Set-Cookie named by no-cache="set-cookie" is dropped before storing.
    let cookie_omitted = directives
        .omit_fields
        .iter()
        .any(|field| field == "set-cookie");
    if response.headers.contains_key(header::SET_COOKIE)
        && !response.cache_set_cookie
        && !cookie_omitted
    {
        return Storability::Refuse("set-cookie");
    }
    if response.headers.get_all(header::VARY).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|text| text.split(',').any(|name| name.trim() == "*"))
    }) {
        return Storability::Refuse("vary-star");
    }
    let explicit = explicit_lifetime(response);
    let heuristic_status = HEURISTICALLY_CACHEABLE.contains(&response.status.as_u16());
    let has_validator = response.headers.contains_key(header::ETAG)
        || response.headers.contains_key(header::LAST_MODIFIED);
    if let Some(ttl) = response.forced_ttl {
        return Storability::Store(ttl);
    }
    match explicit {
        Some(lifetime) => Storability::Store(lifetime),
        None if !heuristic_status => Storability::Refuse("status without explicit freshness"),
        None if !response.default_ttl.is_zero() && (has_validator || directives.public) => {
            Storability::Store(response.default_ttl)
        }
        None => match heuristic_lifetime(response) {
            Some(lifetime) => Storability::Store(lifetime),
            None if has_validator || directives.no_cache => Storability::Store(Duration::ZERO),
            None if directives.public => Storability::Store(Duration::ZERO),
            None => Storability::Refuse("no freshness information and no validator"),
        },
    }
}

/// Section 4.2.1: `s-maxage`, then `max-age`, then `Expires` - `Date`
/// (except under a targeted field, RFC 9213 section 2.2).
fn explicit_lifetime(response: &Response<'_>) -> Option<Duration> {
    let directives = response.directives;
    if let Some(seconds) = directives.s_maxage.or(directives.max_age) {
        return Some(Duration::from_secs(seconds));
    }
    if directives.targeted {
        return None;
    }
    let expires = response.headers.get(header::EXPIRES)?;
    // An invalid Expires (including "0") means already expired (section 5.3).
    let Some(expires) = expires
        .to_str()
        .ok()
        .and_then(|text| httpdate::parse_http_date(text).ok())
    else {
        return Some(Duration::ZERO);
    };
    Some(expires.duration_since(response.date).unwrap_or_default())
}

/// Section 4.2.2: 10 % of the time since `Last-Modified`, at most a day.
fn heuristic_lifetime(response: &Response<'_>) -> Option<Duration> {
    let modified = response
        .headers
        .get(header::LAST_MODIFIED)?
        .to_str()
        .ok()
        .and_then(|text| httpdate::parse_http_date(text).ok())?;
    let age = response.date.duration_since(modified).ok()?;
    Some((age / 10).min(MAX_HEURISTIC))
}

#[cfg(test)]
mod tests;
