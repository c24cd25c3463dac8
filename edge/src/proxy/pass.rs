//! Requests the cache does not serve: other methods (with their bodies, and
//! invalidation after success, RFC 9111 section 4.4) and known-uncacheable
//! GETs, passed straight to the origin.

use std::time::Instant;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Response, StatusCode};

use super::headers::{self, content_length};
use super::{Body, CacheStatus, Edge, empty_body, error_response, origin_error_response};

impl Edge {
    /// Any other method, or a known-uncacheable GET: straight to the origin.
    pub(super) async fn pass(
        &self,
        mut parts: hyper::http::request::Parts,
        body: Option<Incoming>,
    ) -> Response<Body> {
        let inner = &*self.inner;
        if content_length(&parts.headers)
            .is_some_and(|length| length > inner.live().settings.max_request_body)
        {
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        let original = parts.clone();
        headers::add_via(&mut parts.headers, &inner.name);
        let limit = inner.live().settings.max_request_body;
        let mut body = body.map(|body| Limited::new(body, limit).map_err(|error| error).boxed());
        let has_body = body.is_some();
        let started = Instant::now();
        let sent = inner
            .live()
            .origin
            .send(&parts, || match body.take() {
                Some(body) => Some(body),
                // A streamed body cannot be sent twice: no failover for it.
                None if has_body => None,
                None => Some(empty_body()),
            })
            .await;
        let response = match sent {
            Ok(response) => {
                super::UpstreamNote::note_on(&original, super::Upstream::Origin);
                response
            }
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
        let keys = &self.inner.live().keys;
        let host = request
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let mut targets = vec![keys.url_key(&request.uri, &request.headers)];
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(url) = response.get(&name).and_then(|value| value.to_str().ok()) else {
                continue;
            };
            if let Some(key) = keys.url_key_for(url, host)
                && key.starts_with(&format!("http://{}/", host.to_ascii_lowercase()))
            {
                targets.push(key);
            }
        }
        for url_key in targets {
            self.remove_url(&url_key);
        }
    }
}
