//! A response stored and served: the origin's fields (`Cache-Control`,
//! targeted fields, `Age`, `Vary`, `Date`, validators) and then a client's
//! (conditionals, `Range`, varying fields). Nothing panics, and what the
//! client gets is consistent: a known status, `Content-Length` equal to
//! the body, and a 206 whose `Content-Range` names the bytes it carries.
#![no_main]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use edge::cache::policy::{self, Storability};
use edge::cache::{Directives, StoredResponse, entry, vary};
use edge::proxy::respond::{self, CacheStatus};
use geocdn_fuzz::field_lines;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 8] = [200, 203, 204, 206, 301, 404, 410, 500];

fn directives(headers: &HeaderMap) -> Directives {
    Directives::parse_targeted(headers.get_all("cdn-cache-control").iter())
        .unwrap_or_else(|| Directives::parse(headers.get_all(header::CACHE_CONTROL).iter()))
}

fn body_of(response: hyper::Response<edge::proxy::Body>) -> (hyper::http::response::Parts, Bytes) {
    use futures_util::FutureExt;
    let (parts, body) = response.into_parts();
    let collected = body
        .collect()
        .now_or_never()
        .expect("a stored body is ready at once")
        .expect("a stored body cannot fail");
    (parts, collected.to_bytes())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (origin, client) = match rest.windows(2).position(|pair| pair == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &[][..]),
    };
    let response = field_lines(origin);
    let request = field_lines(client);
    let status = StatusCode::from_u16(STATUSES[usize::from(selector) % STATUSES.len()]).unwrap();
    let method = if selector & 0x80 == 0 {
        Method::GET
    } else {
        Method::HEAD
    };

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let date = response
        .get(header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| httpdate::parse_http_date(text).ok())
        .unwrap_or(now);
    let directives = directives(&response);
    let decision = policy::decide(&policy::Response {
        method: &Method::GET,
        authorized: request.contains_key(header::AUTHORIZATION),
        status,
        headers: &response,
        directives: &directives,
        date,
        forced_ttl: None,
        default_ttl: Duration::from_secs(60),
        cache_set_cookie: false,
    });
    let Storability::Store(lifetime) = decision else {
        return;
    };
    let stored = StoredResponse {
        status,
        vary: vary::stored_values(&response, &request),
        age_value: entry::age_field(&response),
        headers: response.clone(),
        body: Bytes::from_static(b"0123456789abcdefghijklmnopqrstuvwxyz"),
        request_time: now,
        response_time: now,
        date,
        lifetime,
        directives,
    };
    let later = now + Duration::from_secs(u64::from(selector));
    let _ = stored.is_fresh(later);
    let _ = stored.within_stale_while_revalidate(later);
    let _ = stored.usable_on_error(later, Duration::from_secs(3600));
    for name in request.keys() {
        let _ = vary::request_value(&request, name);
    }

    let served = respond::from_stored(&stored, &method, &request, CacheStatus::Hit, later);
    let (parts, body) = body_of(served);
    let length = stored.body.len();
    match parts.status.as_u16() {
        206 => {
            assert_eq!(stored.status, StatusCode::OK);
            let range = parts.headers[header::CONTENT_RANGE].to_str().unwrap();
            let (span, total) = range
                .strip_prefix("bytes ")
                .and_then(|rest| rest.split_once('/'))
                .unwrap();
            assert_eq!(total.parse::<usize>().unwrap(), length);
            let (first, last) = span.split_once('-').unwrap();
            let (first, last): (usize, usize) = (first.parse().unwrap(), last.parse().unwrap());
            assert!(first <= last && last < length, "{range}");
            if method == Method::GET {
                assert_eq!(body, stored.body.slice(first..=last));
            }
        }
        304 | 412 | 416 => assert!(body.is_empty()),
        code => assert_eq!(code, stored.status.as_u16()),
    }
    if method == Method::HEAD {
        assert!(body.is_empty());
    } else if let Some(declared) = parts.headers.get(header::CONTENT_LENGTH) {
        assert_eq!(declared.to_str().unwrap(), body.len().to_string());
    }
});
