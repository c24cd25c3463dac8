//! Answering a client from a stored response: `Age`, `X-Cache`, the
//! client's own conditional requests (RFC 9110 section 13, evaluated in
//! `conditional`) and single byte ranges (section 14), and HEAD.

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::Body;
use super::conditional::{self, Precondition};
use crate::cache::StoredResponse;

/// How a response came to be, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served fresh from the cache.
    Hit,
    /// Fetched from the origin.
    Miss,
    /// Served stale (origin failing, or refreshing in the background).
    Stale,
    /// Revalidated with the origin (304) and served from the cache.
    Revalidated,
    /// Not cacheable: passed to the origin.
    Bypass,
}

impl CacheStatus {
    /// The `X-Cache` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Revalidated => "REVALIDATED",
            Self::Bypass => "BYPASS",
        }
    }
}

/// Builds the response to `method`/`request` from `stored`.
pub fn from_stored(
    stored: &StoredResponse,
    method: &Method,
    request: &HeaderMap,
    status: CacheStatus,
    now: SystemTime,
) -> Response<Body> {
    let mut headers = stored.headers.clone();
    let age = stored.current_age(now).as_secs();
    headers.insert(header::AGE, HeaderValue::from(age));
    headers.insert("x-cache", HeaderValue::from_static(status.as_str()));
    let ok = stored.status == StatusCode::OK;
    match ok.then(|| conditional::evaluate(&stored.headers, request)) {
        Some(Precondition::NotModified) => {
            return build(
                StatusCode::NOT_MODIFIED,
                conditional_headers(&headers),
                Bytes::new(),
                false,
            );
        }
        Some(Precondition::Failed) => {
            return build(
                StatusCode::PRECONDITION_FAILED,
                HeaderMap::new(),
                Bytes::new(),
                method == Method::HEAD,
            );
        }
        Some(Precondition::Serve) | None => {}
    }
    let body = stored.body.clone();
    let head = method == Method::HEAD;
    if ok
        && let Some(range) = request.get(header::RANGE)
        && conditional::range_applies(&stored.headers, request)
    {
        match parse_range(range, body.len()) {
            RangeOutcome::Satisfiable(start, end) => {
                let length = body.len();
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes {start}-{end}/{length}"))
                        .unwrap_or(HeaderValue::from_static("")),
                );
                return build(
                    StatusCode::PARTIAL_CONTENT,
                    headers,
                    body.slice(start..=end),
                    head,
                );
            }
            RangeOutcome::Unsatisfiable => {
                let mut headers = HeaderMap::new();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", body.len())) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                return build(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    headers,
                    Bytes::new(),
                    head,
                );
            }
            RangeOutcome::Ignore => {}
        }
    }
    build(stored.status, headers, body, head)
}

fn build(status: StatusCode, mut headers: HeaderMap, body: Bytes, head: bool) -> Response<Body> {
    let body_allowed = !(status == StatusCode::NOT_MODIFIED
        || status == StatusCode::NO_CONTENT
        || status.is_informational());
    if body_allowed {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    } else {
        headers.remove(header::CONTENT_LENGTH);
    }
    headers.remove(header::TRANSFER_ENCODING);
    let body: Body = if head || !body_allowed {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        Full::new(body).map_err(|never| match never {}).boxed()
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A 304 carries the validators and caching fields, no content fields.
fn conditional_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [
        header::ETAG,
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
        header::AGE,
        header::VIA,
    ] {
        for value in headers.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Some(value) = headers.get("x-cache") {
        out.insert("x-cache", value.clone());
    }
    out
}

enum RangeOutcome {
    Satisfiable(usize, usize),
    Unsatisfiable,
    /// Not a single byte range we serve: answer 200 with the whole body.
    Ignore,
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`; several ranges are answered whole.
fn parse_range(value: &HeaderValue, length: usize) -> RangeOutcome {
    let Some(spec) = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().strip_prefix("bytes="))
    else {
        return RangeOutcome::Ignore;
    };
    if spec.contains(',') {
        return RangeOutcome::Ignore;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |text: &str| text.parse::<usize>().ok();
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        (true, false) => {
            let Some(suffix) = parse(last) else {
                return RangeOutcome::Ignore;
            };
            if suffix == 0 || length == 0 {
                return RangeOutcome::Unsatisfiable;
            }
            (length.saturating_sub(suffix), length - 1)
        }
        (false, _) => {
            let Some(start) = parse(first) else {
                return RangeOutcome::Ignore;
            };
            let end = if last.is_empty() {
                length.saturating_sub(1)
            } else {
                match parse(last) {
                    Some(end) if end >= start => end.min(length.saturating_sub(1)),
                    _ => return RangeOutcome::Ignore,
                }
            };
            if start >= length {
                return RangeOutcome::Unsatisfiable;
            }
            (start, end)
        }
        (true, true) => return RangeOutcome::Ignore,
    };
    RangeOutcome::Satisfiable(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str, length: usize) -> Option<(usize, usize)> {
        match parse_range(&HeaderValue::from_str(text).unwrap(), length) {
            RangeOutcome::Satisfiable(a, b) => Some((a, b)),
            RangeOutcome::Unsatisfiable => Some((usize::MAX, usize::MAX)),
            RangeOutcome::Ignore => None,
        }
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(range("bytes=100-", 100), Some((usize::MAX, usize::MAX)));
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
        assert_eq!(range("bytes=9-1", 100), None);
    }
}
