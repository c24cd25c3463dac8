//! The request pipeline, one phase after the other:
//!
//! 1. **admit** ([`admit`]): loops refused (`Via` names us), hop-by-hop
//!    fields dropped, CONNECT and TRACE refused, the authority validated and
//!    made the one `Host` that the key and the origin see, `X-Forwarded-For`
//!    set (appended to only for trusted proxies and peers);
//! 2. **key**: scheme, host, path and query ([`crate::cache::key`]);
//! 3. **lookup**: fresh -> HIT; stale within `stale-while-revalidate` ->
//!    STALE now and one background refresh; stale otherwise -> one client
//!    revalidates while the others get STALE within grace, or wait for it;
//! 4. **fetch**: misses, revalidations and background refreshes share one
//!    lock per key ([`coalesce`]); [`fill`] asks the
//!    key's owner in the region's [`ring`] (when another edge owns it), the
//!    parent, then the origin, through [`origin`] with failover,
//!    revalidating stale copies;
//! 5. **store**: [`crate::cache::policy`] decides; bodies up to the maximum
//!    object size are kept, larger ones stream through;
//! 6. **respond**: [`respond`] applies the client's conditionals and ranges.
//!
//! Methods other than GET and HEAD go through [`pass`]: straight to the
//! origin with their bodies, and a success invalidates what they touched
//! (RFC 9111 section 4.4).

pub mod admit;
mod coalesce;
mod conditional;
mod fill;
mod fill_budget;
mod headers;
pub mod https;
mod origin;
mod pass;
pub mod peer_check;
pub mod respond;
mod ring;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Notify;

pub use coalesce::{Coalescer, Outcome};
pub use origin::{
    FILL_FROM_PEER, Origin, OriginBody, OriginError, Upstream, UpstreamNote, peer_url,
};
pub use respond::CacheStatus;
pub use ring::{Peer, Ring, RingPeer};

use crate::cache::key::KeyRules;
use crate::cache::rules::TtlRules;
use crate::cache::{Directives, Store, StoredResponse};
use crate::config::Config;
use crate::metrics::EdgeMetrics;

/// Times the waiters of a failed fetch try again together before they
/// answer with the failure.
const SHARED_RETRIES: usize = 1;

/// Response bodies to clients (and request bodies to the origin).
pub type Body = OriginBody;

/// Cache settings the pipeline consults.
#[derive(Debug, Clone)]
struct Settings {
    max_object_size: usize,
    max_request_body: usize,
    grace: Duration,
    default_ttl: Duration,
    cache_set_cookie: bool,
    targeted: Vec<HeaderName>,
    forward_targeted: bool,
    coalesce_timeout: Duration,
    rules: TtlRules,
}

/// What the configuration decides per request, replaced whole by a reload
/// ([`Edge::reconfigure`]); a request reads it once per step.
struct Live {
    settings: Settings,
    keys: KeyRules,
    origin: Origin,
    served_hosts: admit::ServedHosts,
    https: https::HttpsPolicy,
    trusted_peers: Vec<ipnet::IpNet>,
    trusted_proxies: Vec<ipnet::IpNet>,
}

struct Inner {
    /// `server.name`: in Via, and how peers know this edge.
    name: String,
    live: ArcSwap<Live>,
    store: Store,
    coalescer: Coalescer,
    /// Warnings about responses too large to store, rate-limited.
    too_large_warning: shared::log_limit::LogLimiter,
    /// Memory for responses being read into the cache.
    fill_budget: Arc<fill_budget::FillBudget>,
    /// Warnings about responses not stored for want of fill memory, rate-limited.
    no_room_warning: shared::log_limit::LogLimiter,
    metrics: Arc<EdgeMetrics>,
    in_flight: AtomicU64,
    draining: AtomicBool,
    draining_changed: Notify,
    ring: Ring,
    /// Answers to the ACME CA's HTTP-01 validations, with `[acme]`.
    acme: Option<Arc<crate::acme::Challenges>>,
}

impl Inner {
    /// The configuration in force.
    fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }
}

/// Who a response goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Downstream {
    /// A client, or a cache outside the CDN.
    Client,
    /// An edge of this CDN filling its cache.
    Peer,
}

/// Marks a request that a peer sent to fill its cache: fetched from the
/// parent or origin, never from other peers.
#[derive(Debug, Clone, Copy)]
struct FromPeer;

/// The caching proxy. Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("name", &self.inner.name)
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

impl Live {
    /// What `config` decides per request; fails on what the schema cannot
    /// check (URLs, header names, rules).
    fn new(config: &Config) -> anyhow::Result<Self> {
        let origin = Origin::new(&config.origin, &config.fill, &config.server.name)?;
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
        let rules = TtlRules::new(&cache.rules).map_err(anyhow::Error::msg)?;
        let served_hosts =
            admit::ServedHosts::new(&config.server.hosts).map_err(anyhow::Error::msg)?;
        Ok(Self {
            settings: Settings {
                max_object_size: usize::try_from(cache.max_object_size.bytes())
                    .unwrap_or(usize::MAX),
                max_request_body: usize::try_from(config.server.max_request_body.bytes())
                    .unwrap_or(usize::MAX),
                grace: cache.grace.as_std(),
                default_ttl: cache.default_ttl.as_std(),
                cache_set_cookie: cache.cache_set_cookie,
                targeted,
                forward_targeted: cache.forward_targeted,
                coalesce_timeout: cache.coalesce_timeout.as_std(),
                rules,
            },
            keys: KeyRules {
                query: cache.query,
                headers: key_headers,
            },
            origin,
            served_hosts,
            https: https::HttpsPolicy::new(&config.tls),
            trusted_peers: config.fill.trusted_peers.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
        })
    }
}

impl Edge {
    /// Builds the proxy from its configuration.
    pub fn new(config: &Config, metrics: Arc<EdgeMetrics>) -> anyhow::Result<Self> {
        let live = Live::new(config)?;
        let peers = config
            .fill
            .peers
            .iter()
            .enumerate()
            .map(|(index, peer)| {
                let base = peer_url(&peer.url)
                    .map_err(|error| anyhow::anyhow!("fill.peers[{index}].url: {error}"))?;
                let health = peer
                    .health
                    .as_deref()
                    .map(peer_url)
                    .transpose()
                    .map_err(|error| anyhow::anyhow!("fill.peers[{index}].health: {error}"))?;
                Ok(Peer {
                    name: peer.name.clone(),
                    base,
                    health,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ring = Ring::new(&config.server.name, peers, config.fill.peer_attempts);
        let cache = &config.cache;
        Ok(Self {
            inner: Arc::new(Inner {
                name: config.server.name.clone(),
                live: ArcSwap::from_pointee(live),
                store: Store::new(
                    usize::try_from(cache.capacity.bytes()).unwrap_or(usize::MAX),
                    usize::try_from(cache.max_object_size.bytes()).unwrap_or(usize::MAX),
                ),
                coalescer: Coalescer::default(),
                too_large_warning: shared::log_limit::LogLimiter::new(Duration::from_secs(10)),
                fill_budget: fill_budget::FillBudget::new(
                    usize::try_from(cache.fill_memory().bytes()).unwrap_or(usize::MAX),
                    metrics.fill_bytes.clone(),
                ),
                no_room_warning: shared::log_limit::LogLimiter::new(Duration::from_secs(10)),
                metrics,
                in_flight: AtomicU64::new(0),
                draining: AtomicBool::new(false),
                draining_changed: Notify::new(),
                ring,
                acme: config
                    .acme
                    .as_ref()
                    .map(|_| crate::acme::Challenges::new(crate::tls::provider())),
            }),
        })
    }

    /// Applies a reloaded configuration to what it decides per request
    /// (origins, parent, cache rules and keys, hosts, HTTPS policy, trusted
    /// networks, body limit). The cache, the ring, in-flight fills and
    /// connections carry on; a configuration that does not build changes
    /// nothing. What needs a restart is [`crate::reload`]'s to say.
    pub fn reconfigure(&self, config: &Config) -> anyhow::Result<()> {
        let live = Live::new(config)?;
        self.inner.live.store(Arc::new(live));
        Ok(())
    }

    /// The answers to ACME validations, shared with the TLS listener and
    /// the ACME task (with `[acme]`).
    pub fn acme_challenges(&self) -> Option<Arc<crate::acme::Challenges>> {
        self.inner.acme.clone()
    }

    /// The upstream client, shared with the peer checks.
    pub fn upstream_client(
        &self,
    ) -> hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        OriginBody,
    > {
        self.inner.live().origin.client().clone()
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
        if self.inner.draining.swap(draining, Ordering::Relaxed) != draining {
            self.inner.draining_changed.notify_waiters();
        }
    }

    /// Resolves at the next change of [`Edge::is_draining`].
    pub async fn draining_changed(&self) {
        self.inner.draining_changed.notified().await;
    }

    /// The region's fill ring.
    pub fn ring(&self) -> &Ring {
        &self.inner.ring
    }

    /// The node name (`server.name`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Purges one URL (absolute, or a path on `host`); returns entries removed.
    pub fn purge_url(&self, url: &str, host: &str) -> usize {
        self.inner
            .live()
            .keys
            .url_key_for(url, host)
            .map_or(0, |url_key| self.remove_url(&url_key))
    }

    /// Removes every stored variant of one URL: by `Vary` and, when
    /// `cache.key_headers` is set, by key-header values.
    fn remove_url(&self, url_key: &str) -> usize {
        let inner = &*self.inner;
        if !inner.live().keys.has_key_headers() {
            inner.coalescer.forget(url_key);
            return inner.store.remove(url_key);
        }
        let variants = format!("{url_key}{}", crate::cache::key::KEY_HEADER_SEPARATOR);
        inner.coalescer.forget(url_key);
        inner.coalescer.forget_prefix(&variants);
        inner.store.remove_prefix(&variants)
    }

    /// Purges every URL starting with `prefix` (absolute, or a path on `host`).
    pub fn purge_prefix(&self, prefix: &str, host: &str) -> usize {
        // Keys normalise the host only; paths keep their case.
        let (authority, path) = match prefix.strip_prefix("http://") {
            Some(rest) => rest.split_at(rest.find('/').unwrap_or(rest.len())),
            None => (host, prefix),
        };
        let Some(authority) = crate::authority::normalise(authority) else {
            return 0;
        };
        let prefix = format!("http://{authority}{path}");
        self.inner.coalescer.forget_prefix(&prefix);
        self.inner.store.remove_prefix(&prefix)
    }

    /// Applies a purge (from the admin API or the cluster); returns entries removed.
    pub fn purge(&self, scope: &shared::cluster::PurgeScope) -> usize {
        use shared::cluster::PurgeScope;
        match scope {
            PurgeScope::Url { url, host } => self.purge_url(url, host),
            PurgeScope::Prefix { prefix, host } => self.purge_prefix(prefix, host),
            PurgeScope::All => {
                self.inner.coalescer.forget_all();
                self.inner.store.clear()
            }
        }
    }

    /// Answers one client request.
    pub async fn handle(&self, request: Request<Incoming>, client: IpAddr) -> Response<Body> {
        let inner = &*self.inner;
        let _in_flight = InFlight::enter(inner);
        if headers::is_loop(request.headers(), &inner.name) {
            return error_response(
                StatusCode::LOOP_DETECTED,
                "request loop: Via already names this edge",
            );
        }
        if let Some(answer) = https::HttpsPolicy::acme_answer(
            inner.acme.as_deref(),
            request.method(),
            request.uri().path(),
        ) {
            return answer;
        }
        let (mut parts, body) = request.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        if let Err(refusal) = admit::admit(&mut parts, &inner.live().served_hosts) {
            return self.finish(refused(&refusal), Downstream::Client);
        }
        // Only the edges of the ring may ask for a fill without the ring.
        let from_peer = self.is_peer(client);
        // Other edges reach this one by its own name (the peer URL's), not
        // by the site's: their requests are not misdirected.
        if !from_peer && let Some(misdirected) = https::HttpsPolicy::misdirected(&parts) {
            return self.finish(misdirected, Downstream::Client);
        }
        if parts.headers.remove(FILL_FROM_PEER).is_some() && from_peer {
            parts.extensions.insert(FromPeer);
        }
        let downstream = if parts.extensions.get::<FromPeer>().is_some() {
            Downstream::Peer
        } else {
            Downstream::Client
        };
        let trusted = from_peer || self.is_trusted_proxy(client);
        headers::set_forwarded_for(&mut parts.headers, client, trusted);
        let scheme = https::HttpsPolicy::scheme(&mut parts, trusted);
        // Edges of the CDN (ring peers, children filling from a parent)
        // fetch over whatever URL they were given.
        if let Some(redirect) = inner.live().https.redirect(&parts, scheme, from_peer) {
            return self.finish(redirect, downstream);
        }
        // A GET or HEAD with content (which has no defined meaning, RFC 9110
        // section 9.3.1) is passed with it: the key could not tell two
        // bodies apart, and dropping it would leave the origin waiting for
        // the length announced.
        let cacheable_method = parts.method == Method::GET || parts.method == Method::HEAD;
        let response = if cacheable_method && hyper::body::Body::is_end_stream(&body) {
            self.cacheable(parts).await
        } else {
            self.pass(parts, Some(body)).await
        };
        let mut response = self.finish(response, downstream);
        inner.live().https.add_hsts(scheme, response.headers_mut());
        response
    }

    /// Whether `client` is an edge of the fill ring (by the address in its
    /// URL) or in `fill.trusted_peers`.
    fn is_peer(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.inner
            .live()
            .trusted_peers
            .iter()
            .any(|network| network.contains(&client))
            || self.inner.ring.has_address(client)
    }

    /// Whether `client` is a proxy in `server.trusted_proxies`.
    fn is_trusted_proxy(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.inner
            .live()
            .trusted_proxies
            .iter()
            .any(|network| network.contains(&client))
    }

    /// The share of the fill memory budget in use, from 0 to 1.
    pub fn fill_memory_share(&self) -> f64 {
        self.inner.fill_budget.share()
    }

    fn finish(&self, mut response: Response<Body>, downstream: Downstream) -> Response<Body> {
        headers::remove_hop_by_hop(response.headers_mut());
        // A peer filling its cache is a cache of this CDN: it needs the
        // targeted fields to store what the origin meant for the CDN.
        if downstream == Downstream::Client {
            self.strip_targeted(response.headers_mut());
        }
        headers::add_via(response.headers_mut(), &self.inner.name);
        response
    }

    /// GET and HEAD: cache lookup, then fetch.
    async fn cacheable(&self, parts: hyper::http::request::Parts) -> Response<Body> {
        let inner = &*self.inner;
        let key = inner.live().keys.key(&parts.uri, &parts.headers);
        let now = SystemTime::now();
        // RFC 9111 section 3.5: a request with credentials is answered from
        // the cache only by responses that allow sharing. Otherwise it is
        // fetched on its own: it joins no other client's fetch and what its
        // response says about caching changes nothing for other clients.
        let authorized = parts.headers.contains_key(header::AUTHORIZATION);
        let stored = inner
            .store
            .get(&key, &parts.headers)
            .filter(|stored| !authorized || stored.directives.shared_with_credentials());
        if authorized && stored.is_none() {
            return self.fetch(&key, &parts, None, None).await;
        }
        if let Some(stored) = stored {
            if stored.is_fresh(now) {
                return self.serve(&stored, &parts, CacheStatus::Hit);
            }
            return self.expired(key, parts, stored, now).await;
        }
        if inner.coalescer.known_uncacheable(&key) {
            // Hit-for-miss ends as soon as the origin's answer is storable.
            let response = self.pass(parts.clone(), None).await;
            if self.cacheable_again(&parts, &response) {
                inner.coalescer.forget(&key);
            }
            return response;
        }
        // A failed fetch is shared by its waiters, who try once more
        // together (one of them leads the retry).
        for attempt in 0..=SHARED_RETRIES {
            let waiter = match inner.coalescer.join(&key) {
                coalesce::Role::Leader(leader) => {
                    return self.lead(&key, &parts, leader, None).await;
                }
                coalesce::Role::Waiter(waiter) => waiter,
            };
            match waiter.outcome(inner.live().settings.coalesce_timeout).await {
                Some(Outcome::Stored) => {
                    if let Some(stored) = inner.store.get(&key, &parts.headers) {
                        return self.serve(&stored, &parts, CacheStatus::Hit);
                    }
                }
                Some(Outcome::Failed) if attempt < SHARED_RETRIES => continue,
                Some(Outcome::Failed) => {
                    return error_response(StatusCode::BAD_GATEWAY, "origin fetch failed");
                }
                Some(Outcome::Uncacheable | Outcome::NotStoredThisTime) | None => {}
            }
            break;
        }
        // Not storable, not stored or slow: fetch on our own, all waiters at once.
        self.fetch(&key, &parts, None, None).await
    }

    /// Runs the fetch led by `leader` in a task of its own, so that it goes
    /// on for the waiters if this client leaves; it is cancelled when nobody
    /// (this client or a waiter) wants it any more.
    async fn lead(
        &self,
        key: &str,
        parts: &hyper::http::request::Parts,
        leader: coalesce::Leader,
        stale: Option<Arc<StoredResponse>>,
    ) -> Response<Body> {
        let interest = leader.interest();
        let edge = self.clone();
        let (key, task_parts) = (key.to_string(), parts.clone());
        let fetch =
            tokio::spawn(async move { edge.fetch(&key, &task_parts, Some(leader), stale).await });
        interest.cancel_when_unwanted(fetch.abort_handle());
        let response = fetch.await;
        drop(interest);
        response.unwrap_or_else(|_| error_response(StatusCode::BAD_GATEWAY, "fetch cancelled"))
    }

    /// A stored response past its freshness: one revalidation per key,
    /// through the same key lock as misses. Within `stale-while-revalidate`
    /// the client gets the stale copy and the refresh runs in the
    /// background; otherwise the first client revalidates while the others
    /// get the stale copy at once when grace allows it, or wait for that
    /// revalidation.
    async fn expired(
        &self,
        key: String,
        parts: hyper::http::request::Parts,
        stored: Arc<StoredResponse>,
        now: SystemTime,
    ) -> Response<Body> {
        let inner = &*self.inner;
        let role = inner.coalescer.join(&key);
        if stored.within_stale_while_revalidate(now) {
            if let coalesce::Role::Leader(leader) = role {
                self.refresh_in_background(key, parts.clone(), stored.clone(), leader);
            }
            return self.serve(&stored, &parts, CacheStatus::Stale);
        }
        let mut role = role;
        for attempt in 0..=SHARED_RETRIES {
            let waiter = match role {
                coalesce::Role::Leader(leader) => {
                    return self.lead(&key, &parts, leader, Some(stored)).await;
                }
                coalesce::Role::Waiter(waiter) => waiter,
            };
            if stored.usable_on_error(now, inner.live().settings.grace) {
                return self.serve(&stored, &parts, CacheStatus::Stale);
            }
            match waiter.outcome(inner.live().settings.coalesce_timeout).await {
                Some(Outcome::Stored) => {
                    if let Some(fresh) = inner.store.get(&key, &parts.headers) {
                        return self.serve(&fresh, &parts, CacheStatus::Hit);
                    }
                }
                Some(Outcome::Failed) if attempt < SHARED_RETRIES => {
                    role = inner.coalescer.join(&key);
                    continue;
                }
                Some(Outcome::Failed) => {
                    return error_response(StatusCode::BAD_GATEWAY, "origin fetch failed");
                }
                Some(Outcome::Uncacheable | Outcome::NotStoredThisTime) | None => {}
            }
            break;
        }
        self.fetch(&key, &parts, None, Some(stored)).await
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
        stored: Arc<StoredResponse>,
        leader: coalesce::Leader,
    ) {
        let edge = self.clone();
        tokio::spawn(async move {
            let _ = edge.fetch(&key, &parts, Some(leader), Some(stored)).await;
        });
    }

    /// The cache directives: the first valid targeted field (ours, then
    /// `CDN-Cache-Control`) wins over `Cache-Control` (RFC 9213 section 2.2);
    /// an invalid one is ignored as if absent.
    fn directives(&self, headers: &HeaderMap) -> Directives {
        self.inner
            .live()
            .settings
            .targeted
            .iter()
            .filter(|name| headers.contains_key(*name))
            .find_map(|name| Directives::parse_targeted(headers.get_all(name).iter()))
            .unwrap_or_else(|| Directives::parse(headers.get_all(header::CACHE_CONTROL).iter()))
    }

    /// Removes the targeted fields from a response for clients, unless
    /// configured to forward them (RFC 9213 section 3 makes removal a MAY).
    fn strip_targeted(&self, headers: &mut HeaderMap) {
        if self.inner.live().settings.forward_targeted {
            return;
        }
        for name in &self.inner.live().settings.targeted {
            headers.remove(name);
        }
    }

    fn forced_ttl(&self, path: &str) -> Option<Duration> {
        self.inner.live().settings.rules.ttl_for(path)
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

/// The answer to a request admission refused.
fn refused(refusal: &admit::Refusal) -> Response<Body> {
    let mut response = error_response(refusal.status(), &refusal.to_string());
    if let admit::Refusal::Method(_) = refusal {
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
    }
    response
}

fn origin_error_response(error: &OriginError) -> Response<Body> {
    match error {
        OriginError::Timeout(_) => error_response(StatusCode::GATEWAY_TIMEOUT, "origin timed out"),
        _ => error_response(StatusCode::BAD_GATEWAY, "origin unavailable"),
    }
}
