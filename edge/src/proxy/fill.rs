//! Fetching for the cache and storing what may be stored: the fetch and
//! store phases of the pipeline, and revalidation (RFC 9111 section 4.3).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::fill_budget::Reservation;
use super::headers::{self, content_length};
use super::{
    Body, CacheStatus, Edge, FromPeer, Outcome, boxed_error, coalesce, empty_body, error_response,
    origin_error_response,
};
use crate::cache::directives::Directives;
use crate::cache::policy::{self, Storability};
use crate::cache::{StoredResponse, entry, vary};

impl Edge {
    /// Fetches for the cache: a GET without the client's validators and
    /// ranges (we want the whole object), conditional on our own copy when
    /// revalidating `stale`.
    pub(super) async fn fetch(
        &self,
        key: &str,
        parts: &hyper::http::request::Parts,
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
        headers::add_via(&mut origin_parts.headers, &inner.name);
        let request_time = SystemTime::now();
        let started = Instant::now();
        let peers = if parts.extensions.get::<FromPeer>().is_some() {
            Vec::new()
        } else {
            inner.ring.ask_for(key)
        };
        let sent = inner
            .live()
            .origin
            .fill(&peers, &origin_parts, || Some(empty_body()))
            .await;
        let response = match sent {
            Ok((response, upstream)) => {
                inner.metrics.filled_from(upstream);
                super::UpstreamNote::note_on(parts, upstream);
                response
            }
            Err(error) => {
                inner.metrics.origin("error", started.elapsed());
                tracing::warn!(%key, %error, "origin fetch failed");
                finish(leader, Outcome::Failed);
                return match stale {
                    Some(stale)
                        if stale
                            .usable_on_error(SystemTime::now(), inner.live().settings.grace) =>
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
                && stale.usable_on_error(response_time, inner.live().settings.grace)
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
        if head.status == StatusCode::PARTIAL_CONTENT {
            // Asked without Range, the origin sent part of the object: this
            // copy cannot be stored, but the URL may well be cacheable.
            tracing::debug!(%key, "origin sent 206 to a request without Range");
            finish(leader, Outcome::NotStoredThisTime);
            return self.stream(head, body, parts, CacheStatus::Miss);
        }
        let decision = self.storability(parts, head.status, &head.headers, &directives, date);
        let too_large = content_length(&head.headers)
            .is_some_and(|length| length > inner.live().settings.max_object_size);
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
        let limit = inner.live().settings.max_object_size;
        let Some(mut reservation) = inner
            .fill_budget
            .reserve(expected.unwrap_or(FILL_STEP).min(limit))
        else {
            self.no_room(key);
            finish(leader, Outcome::NotStoredThisTime);
            return self.stream(head, body, parts, CacheStatus::Miss);
        };
        let collected = collect_bounded(
            body,
            expected,
            limit,
            inner.live().origin.total_timeout,
            &mut reservation,
        )
        .await;
        match collected {
            Collected::Whole(bytes) => {
                // `no-cache="f"` and `private="f"` keep the fields out of the
                // copy reused for others; this client still gets them.
                let fetched_headers =
                    (!directives.omit_fields.is_empty()).then(|| owned_headers(&head.headers));
                for field in &directives.omit_fields {
                    head.headers.remove(field.as_str());
                }
                let stored = StoredResponse {
                    status: head.status,
                    vary: vary::stored_values(&head.headers, &parts.headers),
                    age_value: entry::age_field(&head.headers),
                    headers: owned_headers(&head.headers),
                    body: if reservation.grow_to(bytes.len() * 2) {
                        // The sealed copy exists beside the buffer until sealed.
                        crate::cache::sealed::seal_off_thread(bytes).await
                    } else {
                        bytes
                    },
                    request_time,
                    response_time,
                    date,
                    lifetime,
                    directives,
                };
                let kept = inner.store.insert(key, stored.clone());
                // From here the store counts the bytes.
                drop(reservation);
                if !kept {
                    inner.metrics.refused_too_large.inc();
                    if let Some(left_out) = inner.too_large_warning.admit() {
                        tracing::warn!(
                            %key,
                            bytes = stored.size(),
                            left_out,
                            "response too large for its cache shard: not stored (raise cache.capacity or lower cache.max_object_size)"
                        );
                    }
                }
                finish(
                    leader,
                    if kept {
                        Outcome::Stored
                    } else {
                        Outcome::Uncacheable
                    },
                );
                match fetched_headers {
                    Some(headers) => {
                        let whole = StoredResponse { headers, ..stored };
                        self.serve(&whole, parts, CacheStatus::Miss)
                    }
                    None => self.serve(&stored, parts, CacheStatus::Miss),
                }
            }
            Collected::TooLarge(partial) => {
                finish(leader, Outcome::Uncacheable);
                let body = prefixed(partial, reservation);
                self.respond_streamed(head, body, parts, CacheStatus::Miss)
            }
            Collected::NoRoom(partial) => {
                self.no_room(key);
                finish(leader, Outcome::NotStoredThisTime);
                let body = prefixed(partial, reservation);
                self.respond_streamed(head, body, parts, CacheStatus::Miss)
            }
            Collected::Failed(error) => {
                tracing::warn!(%key, %error, "origin body failed");
                finish(leader, Outcome::Failed);
                error_response(StatusCode::BAD_GATEWAY, "origin response incomplete")
            }
        }
    }

    /// Counts and (rate-limited) logs a storable response streamed unstored
    /// for want of fill memory.
    fn no_room(&self, key: &str) {
        self.inner.metrics.not_stored_no_room.inc();
        if let Some(left_out) = self.inner.no_room_warning.admit() {
            tracing::warn!(
                %key,
                in_use = self.inner.fill_budget.in_use(),
                left_out,
                "fill memory in use: response streamed without being stored (raise cache.fill_memory)"
            );
        }
    }

    /// Whether a response to the GET in `parts` may be stored, and for how long.
    fn storability(
        &self,
        parts: &hyper::http::request::Parts,
        status: StatusCode,
        headers: &HeaderMap,
        directives: &Directives,
        date: SystemTime,
    ) -> Storability {
        let settings = &self.inner.live().settings;
        policy::decide(&policy::Response {
            method: &Method::GET,
            authorized: parts.headers.contains_key(header::AUTHORIZATION),
            status,
            headers,
            directives,
            date,
            forced_ttl: self.forced_ttl(parts.uri.path()),
            default_ttl: settings.default_ttl,
            cache_set_cookie: settings.cache_set_cookie,
        })
    }

    /// Whether a passed response to a GET of a key known as uncacheable shows
    /// the key cacheable again: a whole object the policy would store.
    pub(super) fn cacheable_again(
        &self,
        parts: &hyper::http::request::Parts,
        response: &Response<Body>,
    ) -> bool {
        let status = response.status();
        if matches!(
            status,
            StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        ) {
            return false;
        }
        let headers = response.headers();
        let directives = self.directives(headers);
        let date = headers
            .get(header::DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok())
            .unwrap_or_else(SystemTime::now);
        matches!(
            self.storability(parts, status, headers, &directives, date),
            Storability::Store(_)
        )
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
            if name == header::CONTENT_LENGTH {
                continue;
            }
            headers.remove(name);
            for value in update.get_all(name) {
                if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
                    headers.append(name.clone(), copy);
                }
            }
        }
        let directives = self.directives(&headers);
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
            default_ttl: self.inner.live().settings.default_ttl,
            cache_set_cookie: true,
        }) {
            Storability::Store(lifetime) => lifetime,
            Storability::Refuse(_) => Duration::ZERO,
        };
        StoredResponse {
            status: stale.status,
            age_value: entry::age_field(&headers),
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

    pub(super) fn stream(
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

/// Steps in which an unsized body reserves fill memory.
const FILL_STEP: usize = 64 * 1024;

/// What was read and then the rest of the body. The reservation of what
/// was read is held until it has been handed on.
fn prefixed(partial: Partial, reservation: Reservation) -> Body {
    use futures_util::{StreamExt, TryStreamExt};
    let Partial { read, next, rest } = partial;
    let rest = TryStreamExt::map_err(BodyStream::new(rest), boxed_error);
    let first = futures_util::stream::once(async move {
        let _held = reservation;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(read))
    });
    let next = futures_util::stream::once(async move { Ok(Frame::data(next)) });
    BodyExt::boxed(StreamBody::new(first.chain(next).chain(rest)))
}

enum Collected {
    Whole(Bytes),
    /// Over the limit.
    TooLarge(Partial),
    /// The fill memory budget had no room for more.
    NoRoom(Partial),
    Failed(String),
}

/// A body read in part.
struct Partial {
    /// Read into the buffer.
    read: Bytes,
    /// The frame that did not fit.
    next: Bytes,
    /// The rest of the body.
    rest: Incoming,
}

/// How reading a body ended; the frame that did not fit, if any.
enum Read {
    Complete,
    TooLarge(Bytes),
    NoRoom(Bytes),
}

/// Reads a body up to `limit` bytes within `timeout`, holding in
/// `reservation` every byte of buffer before it is allocated. The stored
/// copy is sized exactly: a buffer grown by doubling would keep up to twice
/// the body alive, memory the store's accounting would not see.
async fn collect_bounded(
    mut body: Incoming,
    expected: Option<usize>,
    limit: usize,
    timeout: Duration,
    reservation: &mut Reservation,
) -> Collected {
    let mut buffer = BytesMut::with_capacity(expected.unwrap_or(0).min(reservation.bytes()));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => return Err(error.to_string()),
            };
            if let Ok(data) = frame.into_data() {
                let needed = buffer.len() + data.len();
                if needed > limit {
                    return Ok(Read::TooLarge(data));
                }
                if needed > buffer.capacity() {
                    let grown = needed.max(buffer.capacity() * 2).min(limit);
                    if !reservation.grow_to(grown) {
                        return Ok(Read::NoRoom(data));
                    }
                    buffer.reserve(grown - buffer.len());
                }
                buffer.extend_from_slice(&data);
            }
        }
        Ok(Read::Complete)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(Read::Complete))
            if buffer.capacity() > buffer.len() + buffer.len() / 16
                && reservation.grow_to(buffer.capacity() + buffer.len()) =>
        {
            Collected::Whole(Bytes::copy_from_slice(&buffer))
        }
        Ok(Ok(Read::Complete)) => Collected::Whole(buffer.freeze()),
        Ok(Ok(Read::TooLarge(next))) => Collected::TooLarge(Partial {
            read: buffer.freeze(),
            next,
            rest: body,
        }),
        Ok(Ok(Read::NoRoom(next))) => Collected::NoRoom(Partial {
            read: buffer.freeze(),
            next,
            rest: body,
        }),
        Ok(Err(error)) => Collected::Failed(error),
        Err(_) => Collected::Failed(format!("body not complete within {timeout:?}")),
    }
}
