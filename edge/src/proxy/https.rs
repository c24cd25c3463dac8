//! What the client's scheme changes for a request, decided once after
//! admission:
//!
//! - over TLS, a host the connection's certificate does not cover is
//!   refused with 421 (RFC 9110 section 15.5.20): a client cannot reach one
//!   site under another site's certificate, while HTTP/2 connection reuse
//!   across names of one certificate still works (RFC 9113 section 9.1.1);
//!   other edges, which connect by the peer URL's name, are exempt;
//! - with `tls.redirect_http`, plain requests get a permanent redirect
//!   (308 keeps the method) to the same URL over HTTPS, except ACME HTTP-01
//!   challenges and requests from other edges (the fill ring's addresses and
//!   `fill.trusted_peers`: peers and children of a parent);
//! - the origin is told the scheme in `X-Forwarded-Proto`, and clients that
//!   came over HTTPS get `Strict-Transport-Security` when configured.
//!
//! A trusted proxy (`server.trusted_proxies`) that terminates TLS itself
//! says so with `X-Forwarded-Proto: https`, which is then believed.

use std::sync::Arc;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use super::{Body, error_response};
use crate::acme::{Challenges, HTTP_CHALLENGE_PATH as ACME_CHALLENGE_PATH};
use crate::authority::host_part;
use crate::config::TlsConfig;
use crate::tls::TlsSession;

const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The scheme a client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTPS, to this edge or to a trusted proxy in front of it.
    Https,
}

/// `[tls]`'s settings for requests.
#[derive(Debug, Clone, Default)]
pub struct HttpsPolicy {
    /// With `redirect_http`: the port plain requests are sent to (the
    /// first of `tls.listen`).
    redirect_port: Option<u16>,
    /// The `Strict-Transport-Security` value, when configured.
    hsts: Option<HeaderValue>,
}

impl HttpsPolicy {
    /// The policy of `[tls]`.
    pub fn new(config: &TlsConfig) -> Self {
        let redirect_port = config
            .listen
            .first()
            .filter(|_| config.redirect_http)
            .map(|address| address.port());
        let seconds = config.hsts_max_age.as_std().as_secs();
        let hsts = (seconds > 0).then(|| {
            let mut value = format!("max-age={seconds}");
            if config.hsts_include_subdomains {
                value.push_str("; includeSubDomains");
            }
            if config.hsts_preload {
                value.push_str("; preload");
            }
            HeaderValue::from_str(&value).expect("digits and ASCII words")
        });
        Self {
            redirect_port,
            hsts,
        }
    }

    /// The scheme of an admitted request: HTTPS when it came over TLS, or
    /// when a `trusted` sender says so. Sets `X-Forwarded-Proto` to it.
    pub fn scheme(parts: &mut Parts, trusted: bool) -> Scheme {
        let over_tls = parts.extensions.get::<Arc<TlsSession>>().is_some();
        let said_https = trusted
            && parts
                .headers
                .get(&FORWARDED_PROTO)
                .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"https"));
        let scheme = if over_tls || said_https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        parts.headers.insert(
            FORWARDED_PROTO,
            HeaderValue::from_static(match scheme {
                Scheme::Https => "https",
                Scheme::Http => "http",
            }),
        );
        scheme
    }

    /// The key authorization for an ACME HTTP-01 validation (RFC 8555
    /// section 8.3) of one of this edge's orders, on either scheme (a CA
    /// follows redirects). Other challenge paths go to the origin as
    /// usual, so that an origin can still answer its own.
    pub fn acme_answer(
        challenges: Option<&Challenges>,
        method: &hyper::Method,
        path: &str,
    ) -> Option<Response<Body>> {
        if method != hyper::Method::GET && method != hyper::Method::HEAD {
            return None;
        }
        let answer = challenges?.http_answer(path)?;
        let mut response = Response::new(http_body_util::BodyExt::boxed(
            http_body_util::BodyExt::map_err(
                http_body_util::Full::new(bytes::Bytes::from(answer)),
                |never| match never {},
            ),
        ));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(response)
    }

    /// The 421 for a TLS request whose host its certificate does not cover.
    pub fn misdirected(parts: &Parts) -> Option<Response<Body>> {
        let session = parts.extensions.get::<Arc<TlsSession>>()?;
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .map(host_part)?;
        let host = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host);
        (!session.names.covers(host)).then(|| {
            error_response(
                StatusCode::MISDIRECTED_REQUEST,
                "the certificate of this connection does not cover this host",
            )
        })
    }

    /// The redirect to HTTPS for a plain request, when configured; never
    /// for ACME challenges or a request `from_peer` (another edge).
    pub fn redirect(
        &self,
        parts: &Parts,
        scheme: Scheme,
        from_peer: bool,
    ) -> Option<Response<Body>> {
        let port = self.redirect_port?;
        if scheme == Scheme::Https || from_peer || parts.uri.path().starts_with(ACME_CHALLENGE_PATH)
        {
            return None;
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .map(host_part)?;
        let authority = if port == 443 {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str());
        let location = HeaderValue::from_str(&format!("https://{authority}{target}")).ok()?;
        let mut response = error_response(StatusCode::PERMANENT_REDIRECT, "moved to HTTPS");
        response.headers_mut().insert(header::LOCATION, location);
        Some(response)
    }

    /// Adds `Strict-Transport-Security` to a response for an HTTPS client,
    /// unless the origin set its own.
    pub fn add_hsts(&self, scheme: Scheme, headers: &mut HeaderMap) {
        if scheme == Scheme::Https
            && let Some(hsts) = &self.hsts
            && !headers.contains_key(header::STRICT_TRANSPORT_SECURITY)
        {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(listen: &[&str], redirect_http: bool, hsts_days: u64) -> HttpsPolicy {
        HttpsPolicy::new(&TlsConfig {
            listen: listen
                .iter()
                .map(|address| address.parse().expect("address"))
                .collect(),
            redirect_http,
            hsts_max_age: shared::Duration::from_secs(hsts_days * 86_400),
            hsts_include_subdomains: true,
            ..TlsConfig::default()
        })
    }

    fn parts(uri: &str, host: &str) -> Parts {
        let (mut parts, ()) = hyper::Request::get(uri)
            .body(())
            .expect("request")
            .into_parts();
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        parts
    }

    #[test]
    fn redirects_keep_host_path_and_query_and_name_the_https_port() {
        let policy = self::policy(&["0.0.0.0:8443"], true, 0);
        let response = policy
            .redirect(&parts("/a/b?c=d", "cdn.test:8080"), Scheme::Http, false)
            .expect("redirect");
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://cdn.test:8443/a/b?c=d"
        );
        let standard = self::policy(&["[::]:443"], true, 0);
        let response = standard
            .redirect(&parts("/", "cdn.test"), Scheme::Http, false)
            .expect("redirect");
        assert_eq!(response.headers()[header::LOCATION], "https://cdn.test/");
    }

    #[test]
    fn challenges_peers_and_https_clients_are_not_redirected() {
        let policy = self::policy(&["0.0.0.0:443"], true, 0);
        let challenge = parts("/.well-known/acme-challenge/token", "cdn.test");
        assert!(policy.redirect(&challenge, Scheme::Http, false).is_none());
        assert!(
            policy
                .redirect(&parts("/", "cdn.test"), Scheme::Http, true)
                .is_none()
        );
        assert!(
            policy
                .redirect(&parts("/", "cdn.test"), Scheme::Https, false)
                .is_none()
        );
        let off = self::policy(&["0.0.0.0:443"], false, 0);
        assert!(
            off.redirect(&parts("/", "cdn.test"), Scheme::Http, false)
                .is_none()
        );
    }

    #[test]
    fn hsts_goes_to_https_clients_only_and_never_over_the_origins() {
        let policy = self::policy(&[], false, 365);
        let mut headers = HeaderMap::new();
        policy.add_hsts(Scheme::Http, &mut headers);
        assert!(headers.is_empty());
        policy.add_hsts(Scheme::Https, &mut headers);
        assert_eq!(
            headers[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000; includeSubDomains"
        );
        let mut from_origin = HeaderMap::new();
        from_origin.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=60"),
        );
        policy.add_hsts(Scheme::Https, &mut from_origin);
        assert_eq!(from_origin[header::STRICT_TRANSPORT_SECURITY], "max-age=60");
    }

    #[test]
    fn the_scheme_is_believed_from_trusted_senders_only() {
        let mut from_anyone = parts("/", "cdn.test");
        from_anyone
            .headers
            .insert(FORWARDED_PROTO, HeaderValue::from_static("https"));
        assert_eq!(HttpsPolicy::scheme(&mut from_anyone, false), Scheme::Http);
        assert_eq!(from_anyone.headers[FORWARDED_PROTO], "http");
        let mut from_proxy = parts("/", "cdn.test");
        from_proxy
            .headers
            .insert(FORWARDED_PROTO, HeaderValue::from_static("HTTPS"));
        assert_eq!(HttpsPolicy::scheme(&mut from_proxy, true), Scheme::Https);
        assert_eq!(from_proxy.headers[FORWARDED_PROTO], "https");
    }
}
