//! The request pipeline, one phase after the other:
//!
//! 1. **admit**: hop-by-hop fields dropped, loops refused (`Via` names us);
//! 2. **key**: scheme, host, path and query ([`crate::cache::key`]);
//! 3. **lookup**: fresh -> HIT; stale within `stale-while-revalidate` ->
//!    STALE now and one background refresh; stale otherwise -> revalidate;
//! 4. **fetch**: misses coalesce per key ([`coalesce`]); the origin is asked
//!    through [`origin`] with failover;
//! 5. **store**: [`crate::cache::policy`] decides; bodies up to the maximum
//!    object size are kept, larger ones stream through;
//! 6. **respond**: [`respond`] applies the client's conditionals and ranges.
//!
//! Methods other than GET and HEAD pass straight to the origin with their
//! bodies, and a success invalidates what they touched (RFC 9111 section 4.4).

mod coalesce;
mod headers;
mod origin;
mod respond;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, BodyStream, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;

pub use coalesce::{Coalescer, Outcome};
pub use origin::{Origin, OriginBody, OriginError};
pub use respond::CacheStatus;

use crate::cache::key::KeyRules;
use crate::cache::policy::{self, Storability};
use crate::cache::{Directives, Store, StoredResponse};
use crate::config::{Config, TtlRule};
use crate::metrics::EdgeMetrics;

/// Response bodies to clients (and request bodies to the origin).
pub type Body = OriginBody;

/// Cache settings the pipeline consults.
#[derive(Debug, Clone)]
struct Settings {
    name: String,
    max_object_size: usize,
    max_request_body: usize,
    grace: Duration,
    default_ttl: Duration,
    cache_set_cookie: bool,
    targeted: Vec<HeaderName>,
    coalesce_timeout: Duration,
    rules: Vec<TtlRule>,
}

struct Inner {
    settings: Settings,
    keys: KeyRules,
    store: Store,
    origin: Origin,
    coalescer: Coalescer,
    metrics: Arc<EdgeMetrics>,
    in_flight: AtomicU64,
    draining: AtomicBool,
    refreshing: Mutex<HashSet<String>>,
}

/// The caching proxy. Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("name", &self.inner.settings.name)
            .finish_non_exhaustive()
    }
}

/// Counts a request as in flight while it lives.
struct InFlight<'a>(&'a Inner);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> Self {
        inner.in_flight.fetch_add(1, Ordering::Relaxed);
        inner.metrics.in_flight.inc();
        Self(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.in_flight.dec();
    }
}

impl Edge {
    /// Builds the proxy from its configuration.
    pub fn new(config: &Config, metrics: Arc<EdgeMetrics>) -> anyhow::Result<Self> {
        let origin = Origin::new(&config.origin)?;
        let cache = &config.cache;
        let mut targeted = vec![HeaderName::from_static("cdn-cache-control")];
        if let Some(name) = &cache.targeted_header {
            targeted.insert(
                0,
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    anyhow::anyhow!("cache.targeted_header: invalid header name \"{name}\"")
                })?,
            );
        }
        let key_headers = cache
            .key_headers
            .iter()
            .enumerate()
            .map(|(index, name)| {
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    anyhow::anyhow!("cache.key_headers[{index}]: invalid header name \"{name}\"")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (index, rule) in cache.rules.iter().enumerate() {
            if rule.prefix.is_some() == rule.glob.is_some() {
                anyhow::bail!("cache.rules[{index}]: give exactly one of prefix or glob");
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                settings: Settings {
                    name: config.server.name.clone(),
                    max_object_size: usize::try_from(cache.max_object_size.bytes())
                        .unwrap_or(usize::MAX),
                    max_request_body: usize::try_from(config.server.max_request_body.bytes())
                        .unwrap_or(usize::MAX),
                    grace: cache.grace.as_std(),
                    default_ttl: cache.default_ttl.as_std(),
                    cache_set_cookie: cache.cache_set_cookie,
                    targeted,
                    coalesce_timeout: cache.coalesce_timeout.as_std(),
                    rules: cache.rules.clone(),
                },
                keys: KeyRules {
                    query: cache.query,
                    headers: key_headers,
                },
                store: Store::new(usize::try_from(cache.capacity.bytes()).unwrap_or(usize::MAX)),
                origin,
                coalescer: Coalescer::default(),
                metrics,
                in_flight: AtomicU64::new(0),
                draining: AtomicBool::new(false),
                refreshing: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The store (for purges, health and metrics).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the edge asks geodns for no new clients.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// Starts or stops draining.
    pub fn set_draining(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::Relaxed);
    }

    /// Purges one URL (absolute, or a path on `host`); returns entries removed.
    pub fn purge_url(&self, url: &str, host: &str) -> usize {
        match self.inner.keys.key_for_url(url, host) {
            Some(key) => {
                self.inner.coalescer.forget(&key);
                self.inner.store.remove(&key)
            }
            None => 0,
        }
    }

    /// Purges every URL starting with `prefix` (absolute, or a path on `host`).
    pub fn purge_prefix(&self, prefix: &str, host: &str) -> usize {
        // Keys lowercase the host only; paths keep their case.
        let prefix = match prefix.strip_prefix("http://") {
            Some(rest) => {
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                format!("http://{}{path}", authority.to_ascii_lowercase())
            }
            None => format!("http://{}{prefix}", host.to_ascii_lowercase()),
        };
        self.inner.store.remove_prefix(&prefix)
    }

    /// Answers one client request.
    pub async fn handle(&self, request: Request<Incoming>, client: IpAddr) -> Response<Body> {
        let inner = &*self.inner;
        let _in_flight = InFlight::enter(inner);
        if headers::is_loop(request.headers(), &inner.settings.name) {
            return error_response(
                StatusCode::LOOP_DETECTED,
                "request loop: Via already names this edge",
            );
        }
        let (mut parts, body) = request.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        let response = if parts.method == Method::GET || parts.method == Method::HEAD {
            self.cacheable(parts, client).await
        } else {
            self.pass(parts, Some(body), client).await
        };
        self.finish(response)
    }

    fn finish(&self, mut response: Response<Body>) -> Response<Body> {
        headers::remove_hop_by_hop(response.headers_mut());
        for name in &self.inner.settings.targeted {
            response.headers_mut().remove(name);
        }
        headers::add_via(response.headers_mut(), &self.inner.settings.name);
        response
    }

    /// GET and HEAD: cache lookup, then fetch.
    async fn cacheable(
        &self,
        parts: hyper::http::request::Parts,
        client: IpAddr,
    ) -> Response<Body> {
        let inner = &*self.inner;
        let key = inner.keys.key(&parts.uri, &parts.headers);
        let now = SystemTime::now();
        if let Some(stored) = inner.store.get(&key, &parts.headers) {
            if stored.is_fresh(now) {
                return self.serve(&stored, &parts, CacheStatus::Hit);
            }
            if stored.within_stale_while_revalidate(now) {
                self.refresh_in_background(key, parts.clone(), client, stored.clone());
                return self.serve(&stored, &parts, CacheStatus::Stale);
            }
            return self.fetch(&key, &parts, client, None, Some(stored)).await;
        }
        if inner.coalescer.known_uncacheable(&key) {
            return self.pass(parts, None, client).await;
        }
        match inner.coalescer.join(&key) {
            coalesce::Role::Leader(leader) => {
                self.fetch(&key, &parts, client, Some(leader), None).await
            }
            coalesce::Role::Waiter(receiver) => {
                let outcome = coalesce::wait(receiver, inner.settings.coalesce_timeout).await;
                if outcome == Some(Outcome::Stored)
                    && let Some(stored) = inner.store.get(&key, &parts.headers)
                {
                    return self.serve(&stored, &parts, CacheStatus::Hit);
                }
                // Not storable, failed or slow: fetch on our own, all waiters at once.
                self.fetch(&key, &parts, client, None, None).await
            }
        }
    }

    fn serve(
        &self,
        stored: &StoredResponse,
        parts: &hyper::http::request::Parts,
        status: CacheStatus,
    ) -> Response<Body> {
        let response = respond::from_stored(
            stored,
            &parts.method,
            &parts.headers,
            status,
            SystemTime::now(),
        );
        self.inner.metrics.request(status);
        if parts.method != Method::HEAD {
            self.inner.metrics.served(stored.body.len());
        }
        response
    }

    fn refresh_in_background(
        &self,
        key: String,
        parts: hyper::http::request::Parts,
        client: IpAddr,
        stored: Arc<StoredResponse>,
    ) {
        if !self.inner.refreshing.lock().insert(key.clone()) {
            return;
        }
        let edge = self.clone();
        tokio::spawn(async move {
            let _ = edge.fetch(&key, &parts, client, None, Some(stored)).await;
            edge.inner.refreshing.lock().remove(&key);
        });
    }

    /// Fetches for the cache: a GET without the client's validators and
    /// ranges (we want the whole object), conditional on our own copy when
    /// revalidating `stale`.
    async fn fetch(
        &self,
        key: &str,
        parts: &hyper::http::request::Parts,
        client: IpAddr,
        leader: Option<coalesce::Leader>,
        stale: Option<Arc<StoredResponse>>,
    ) -> Response<Body> {
        let inner = &*self.inner;
        let finish = |leader: Option<coalesce::Leader>, outcome| {
            if let Some(leader) = leader {
                leader.finish(outcome);
            }
        };
        let mut origin_parts = parts.clone();
        origin_parts.method = Method::GET;
        for name in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
        ] {
            origin_parts.headers.remove(name);
        }
        if let Some(stale) = &stale {
            if let Some(etag) = stale.etag() {
                origin_parts
                    .headers
                    .insert(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(modified) = stale.last_modified() {
                origin_parts
                    .headers
                    .insert(header::IF_MODIFIED_SINCE, modified.clone());
            }
        }
        headers::add_via(&mut origin_parts.headers, &inner.settings.name);
        headers::append_forwarded_for(&mut origin_parts.headers, client);
        let request_time = SystemTime::now();
        let started = Instant::now();
        let sent = inner
            .origin
            .send(&origin_parts, || Some(empty_body()))
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                inner.metrics.origin("error", started.elapsed());
                tracing::warn!(%key, %error, "origin fetch failed");
                finish(leader, Outcome::Failed);
                return match stale {
                    Some(stale)
                        if stale.usable_on_error(SystemTime::now(), inner.settings.grace) =>
                    {
                        self.serve(&stale, parts, CacheStatus::Stale)
                    }
                    _ => origin_error_response(&error),
                };
            }
        };
        inner
            .metrics
            .origin_answered(response.status(), started.elapsed());
        let response_time = SystemTime::now();
        let (mut head, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut head.headers);

        if let Some(stale) = &stale {
            if head.status == StatusCode::NOT_MODIFIED {
                let refreshed =
                    self.freshen(stale, &head.headers, parts, request_time, response_time);
                inner.store.insert(key, refreshed.clone());
                finish(leader, Outcome::Stored);
                return self.serve(&refreshed, parts, CacheStatus::Revalidated);
            }
            if head.status.is_server_error()
                && stale.usable_on_error(response_time, inner.settings.grace)
            {
                finish(leader, Outcome::Failed);
                return self.serve(stale, parts, CacheStatus::Stale);
            }
        }

        let directives = self.directives(&head.headers);
        if !head.headers.contains_key(header::DATE) {
            head.headers.insert(
                header::DATE,
                HeaderValue::from_str(&httpdate::fmt_http_date(response_time))
                    .unwrap_or(HeaderValue::from_static("")),
            );
        }
        let date = head
            .headers
            .get(header::DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok())
            .unwrap_or(response_time);
        let decision = policy::decide(&policy::Response {
            method: &Method::GET,
            authorized: parts.headers.contains_key(header::AUTHORIZATION),
            status: head.status,
            headers: &head.headers,
            directives: &directives,
            date,
            forced_ttl: self.forced_ttl(parts.uri.path()),
            default_ttl: inner.settings.default_ttl,
            cache_set_cookie: inner.settings.cache_set_cookie,
        });
        let too_large = content_length(&head.headers)
            .is_some_and(|length| length > inner.settings.max_object_size);
        let Storability::Store(lifetime) = decision else {
            if let Storability::Refuse(reason) = decision {
                tracing::debug!(%key, reason, "not storing");
            }
            finish(leader, Outcome::Uncacheable);
            return self.stream(head, body, parts, CacheStatus::Miss);
        };
        if too_large {
            finish(leader, Outcome::Uncacheable);
            return self.stream(head, body, parts, CacheStatus::Miss);
        }
        let expected = content_length(&head.headers);
        let limit = inner.settings.max_object_size;
        match collect_bounded(body, expected, limit, inner.origin.total_timeout).await {
            Collected::Whole(bytes) => {
                for name in &inner.settings.targeted {
                    head.headers.remove(name);
                }
                for field in &directives.omit_fields {
                    head.headers.remove(field.as_str());
                }
                let stored = StoredResponse {
                    status: head.status,
                    vary: vary_values(&head.headers, &parts.headers),
                    age_value: age_header(&head.headers),
                    headers: owned_headers(&head.headers),
                    body: bytes,
                    request_time,
                    response_time,
                    date,
                    lifetime,
                    directives,
                };
                let kept = inner.store.insert(key, stored.clone());
                finish(
                    leader,
                    if kept {
                        Outcome::Stored
                    } else {
                        Outcome::Uncacheable
                    },
                );
                self.serve(&stored, parts, CacheStatus::Miss)
            }
            Collected::TooLarge(prefix, rest) => {
                finish(leader, Outcome::Uncacheable);
                use futures_util::{StreamExt, TryStreamExt};
                let rest = TryStreamExt::map_err(BodyStream::new(rest), boxed_error);
                let first = futures_util::stream::once(async move {
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(prefix))
                });
                let stream = first.chain(rest);
                let body: Body = BodyExt::boxed(StreamBody::new(stream));
                self.respond_streamed(head, body, parts, CacheStatus::Miss)
            }
            Collected::Failed(error) => {
                tracing::warn!(%key, %error, "origin body failed");
                finish(leader, Outcome::Failed);
                error_response(StatusCode::BAD_GATEWAY, "origin response incomplete")
            }
        }
    }

    /// The cache directives: a targeted field (ours, then `CDN-Cache-Control`)
    /// wins over `Cache-Control` (RFC 9213).
    fn directives(&self, headers: &HeaderMap) -> Directives {
        for name in &self.inner.settings.targeted {
            if headers.contains_key(name) {
                return Directives::parse(headers.get_all(name).iter());
            }
        }
        Directives::parse(headers.get_all(header::CACHE_CONTROL).iter())
    }

    fn forced_ttl(&self, path: &str) -> Option<Duration> {
        self.inner.settings.rules.iter().find_map(|rule| {
            let matched = match (&rule.prefix, &rule.glob) {
                (Some(prefix), _) => path.starts_with(prefix.as_str()),
                (None, Some(glob)) => glob_match(glob, path),
                (None, None) => false,
            };
            matched.then(|| rule.ttl.as_std())
        })
    }

    /// RFC 9111 section 4.3.4: a 304 updates the stored headers.
    fn freshen(
        &self,
        stale: &StoredResponse,
        update: &HeaderMap,
        parts: &hyper::http::request::Parts,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> StoredResponse {
        let mut headers = stale.headers.clone();
        for name in update.keys() {
            if name == header::CONTENT_LENGTH || self.inner.settings.targeted.contains(name) {
                continue;
            }
            headers.remove(name);
            for value in update.get_all(name) {
                if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
                    headers.append(name.clone(), copy);
                }
            }
        }
        let mut merged_for_directives = headers.clone();
        for name in &self.inner.settings.targeted {
            if let Some(value) = update.get(name) {
                merged_for_directives.insert(name.clone(), value.clone());
            }
        }
        let directives = self.directives(&merged_for_directives);
        let date = headers
            .get(header::DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok())
            .unwrap_or(response_time);
        let lifetime = match policy::decide(&policy::Response {
            method: &Method::GET,
            authorized: false,
            status: stale.status,
            headers: &headers,
            directives: &directives,
            date,
            forced_ttl: self.forced_ttl(parts.uri.path()),
            default_ttl: self.inner.settings.default_ttl,
            cache_set_cookie: true,
        }) {
            Storability::Store(lifetime) => lifetime,
            Storability::Refuse(_) => Duration::ZERO,
        };
        StoredResponse {
            status: stale.status,
            age_value: age_header(&headers),
            headers,
            body: stale.body.clone(),
            request_time,
            response_time,
            date,
            lifetime,
            directives,
            vary: stale.vary.clone(),
        }
    }

    fn stream(
        &self,
        head: hyper::http::response::Parts,
        body: Incoming,
        parts: &hyper::http::request::Parts,
        status: CacheStatus,
    ) -> Response<Body> {
        self.respond_streamed(head, body.map_err(boxed_error).boxed(), parts, status)
    }

    fn respond_streamed(
        &self,
        mut head: hyper::http::response::Parts,
        body: Body,
        parts: &hyper::http::request::Parts,
        status: CacheStatus,
    ) -> Response<Body> {
        self.inner.metrics.request(status);
        head.headers
            .insert("x-cache", HeaderValue::from_static(status.as_str()));
        let body = if parts.method == Method::HEAD {
            empty_body()
        } else {
            body
        };
        Response::from_parts(head, body)
    }

    /// Any other method, or a known-uncacheable GET: straight to the origin.
    async fn pass(
        &self,
        mut parts: hyper::http::request::Parts,
        body: Option<Incoming>,
        client: IpAddr,
    ) -> Response<Body> {
        let inner = &*self.inner;
        if content_length(&parts.headers)
            .is_some_and(|length| length > inner.settings.max_request_body)
        {
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        let original = parts.clone();
        headers::add_via(&mut parts.headers, &inner.settings.name);
        headers::append_forwarded_for(&mut parts.headers, client);
        let limit = inner.settings.max_request_body;
        let mut body = body.map(|body| Limited::new(body, limit).map_err(|error| error).boxed());
        let has_body = body.is_some();
        let started = Instant::now();
        let sent = inner
            .origin
            .send(&parts, || match body.take() {
                Some(body) => Some(body),
                // A streamed body cannot be sent twice: no failover for it.
                None if has_body => None,
                None => Some(empty_body()),
            })
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                inner.metrics.origin("error", started.elapsed());
                return origin_error_response(&error);
            }
        };
        inner
            .metrics
            .origin_answered(response.status(), started.elapsed());
        let unsafe_method = !matches!(
            original.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if unsafe_method && (response.status().is_success() || response.status().is_redirection()) {
            self.invalidate(&original, response.headers());
        }
        let (head, body) = response.into_parts();
        self.stream(head, body, &original, CacheStatus::Bypass)
    }

    /// RFC 9111 section 4.4: the target URI and same-host `Location` and
    /// `Content-Location` are invalidated after an unsafe request succeeds.
    fn invalidate(&self, request: &hyper::http::request::Parts, response: &HeaderMap) {
        let keys = &self.inner.keys;
        let host = request
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let mut targets = vec![keys.key(&request.uri, &request.headers)];
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(url) = response.get(&name).and_then(|value| value.to_str().ok()) else {
                continue;
            };
            if let Some(key) = keys.key_for_url(url, host)
                && key.starts_with(&format!("http://{}/", host.to_ascii_lowercase()))
            {
                targets.push(key);
            }
        }
        for key in targets {
            self.inner.coalescer.forget(&key);
            self.inner.store.remove(&key);
        }
    }
}

fn empty_body() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn boxed_error(
    error: impl std::error::Error + Send + Sync + 'static,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(error)
}

/// A short plain-text error response.
pub fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn origin_error_response(error: &OriginError) -> Response<Body> {
    match error {
        OriginError::Timeout(_) => error_response(StatusCode::GATEWAY_TIMEOUT, "origin timed out"),
        _ => error_response(StatusCode::BAD_GATEWAY, "origin unavailable"),
    }
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A copy of `headers` that owns its bytes. hyper parses header values as
/// slices of the connection's read buffer, so a stored `HeaderMap` would
/// otherwise keep that whole buffer (often as large as the body) alive for
/// as long as the entry lives, invisible to the store's accounting.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.append(name.clone(), copy);
        }
    }
    owned
}

fn age_header(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

fn vary_values(
    response: &HeaderMap,
    request: &HeaderMap,
) -> Vec<(HeaderName, Option<HeaderValue>)> {
    let mut names: Vec<HeaderName> = response
        .get_all(header::VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let value = request
                .get(&name)
                .and_then(|value| HeaderValue::from_bytes(value.as_bytes()).ok());
            (name, value)
        })
        .collect()
}

/// `*` matches any run of characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(index) => remaining = &remaining[index + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last)
}

enum Collected {
    Whole(Bytes),
    /// Over the limit: what was read, and the rest of the body.
    TooLarge(Bytes, Incoming),
    Failed(String),
}

/// Reads a body up to `limit` bytes within `timeout`. The stored copy is
/// sized exactly: a buffer grown by doubling would keep up to twice the
/// body alive, memory the store's accounting would not see.
async fn collect_bounded(
    mut body: Incoming,
    expected: Option<usize>,
    limit: usize,
    timeout: Duration,
) -> Collected {
    let mut buffer = BytesMut::with_capacity(expected.unwrap_or(0).min(limit.saturating_add(1)));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => return Err(error.to_string()),
            };
            if let Ok(data) = frame.into_data() {
                buffer.extend_from_slice(&data);
                if buffer.len() > limit {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(true)) if buffer.capacity() > buffer.len() + buffer.len() / 16 => {
            Collected::Whole(Bytes::copy_from_slice(&buffer))
        }
        Ok(Ok(true)) => Collected::Whole(buffer.freeze()),
        Ok(Ok(false)) => Collected::TooLarge(buffer.freeze(), body),
        Ok(Err(error)) => Collected::Failed(error),
        Err(_) => Collected::Failed(format!("body not complete within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("/img/*.png", "/img/a/b.png"));
        assert!(!glob_match("/img/*.png", "/img/a.jpg"));
        assert!(glob_match("*", "/anything"));
        assert!(glob_match("/exact", "/exact"));
        assert!(!glob_match("/exact", "/exact/more"));
    }
}
