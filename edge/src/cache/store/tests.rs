use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderValue;

use super::*;
use crate::cache::directives::Directives;
use crate::cache::entry::ENTRY_OVERHEAD;

fn response(body: usize) -> StoredResponse {
    let now = SystemTime::now();
    StoredResponse {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Bytes::from(vec![b'x'; body]),
        request_time: now,
        response_time: now,
        date: now,
        age_value: Duration::ZERO,
        lifetime: Duration::from_secs(60),
        directives: Directives::default(),
        vary: Vec::new(),
    }
}

fn charge(body: usize, key: &str) -> usize {
    body + ENTRY_OVERHEAD + key.len()
}

#[test]
fn evicts_least_recently_used_first() {
    let store = Store::with_shards(3 * charge(1000, "/a"), 1);
    assert!(store.insert("/a", response(1000)));
    assert!(store.insert("/b", response(1000)));
    assert!(store.insert("/c", response(1000)));
    // Touch /a so that /b is now the least recently used.
    assert!(store.get("/a", &HeaderMap::new()).is_some());
    assert!(store.insert("/d", response(1000)));
    assert!(store.get("/b", &HeaderMap::new()).is_none(), "/b evicted");
    for key in ["/a", "/c", "/d"] {
        assert!(store.get(key, &HeaderMap::new()).is_some(), "{key} kept");
    }
    assert_eq!(store.evictions(), 1);
}

#[test]
fn byte_bound_holds_exactly() {
    let capacity = 10_000;
    let store = Store::with_shards(capacity, 1);
    for i in 0..100 {
        store.insert(&format!("/object/{i}"), response(700 + i));
        assert!(
            store.used_bytes() <= capacity,
            "{} > {capacity}",
            store.used_bytes()
        );
    }
    let expected: usize = (0..100)
        .rev()
        .map(|i| charge(700 + i, &format!("/object/{i}")))
        .scan(0, |total, size| {
            *total += size;
            Some(*total)
        })
        .take_while(|total| *total <= capacity)
        .count();
    assert_eq!(store.objects(), expected);
}

#[test]
fn oversized_object_is_refused() {
    let store = Store::with_shards(1000, 1);
    assert!(!store.insert("/big", response(5000)));
    assert_eq!(store.used_bytes(), 0);
}

#[test]
fn replacing_an_entry_keeps_the_accounting() {
    let store = Store::with_shards(100_000, 1);
    store.insert("/a", response(1000));
    store.insert("/a", response(2000));
    assert_eq!(store.used_bytes(), charge(2000, "/a"));
    assert_eq!(store.objects(), 1);
}

#[test]
fn vary_variants_are_stored_and_purged_together() {
    let store = Store::with_shards(100_000, 1);
    let name = HeaderName::from_static("accept-language");
    let mut english = response(10);
    english.vary = vec![(name.clone(), Some(HeaderValue::from_static("en")))];
    let mut german = response(20);
    german.vary = vec![(name.clone(), Some(HeaderValue::from_static("de")))];
    store.insert("/page", english);
    store.insert("/page", german);
    let mut request = HeaderMap::new();
    request.insert(name.clone(), HeaderValue::from_static("de"));
    assert_eq!(store.get("/page", &request).unwrap().body.len(), 20);
    request.insert(name, HeaderValue::from_static("fr"));
    assert!(store.get("/page", &request).is_none());
    assert_eq!(store.remove("/page"), 2);
    assert_eq!(store.used_bytes(), 0);
}

#[test]
fn prefix_purge_and_clear() {
    let store = Store::with_shards(100_000, 4);
    for path in ["http://h/img/1", "http://h/img/2", "http://h/css/1"] {
        store.insert(path, response(10));
    }
    assert_eq!(store.remove_prefix("http://h/img/"), 2);
    assert_eq!(store.objects(), 1);
    assert_eq!(store.clear(), 1);
    assert_eq!(store.used_bytes(), 0);
}
