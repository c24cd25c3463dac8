//! The first phase: decide whether a request is served at all, and turn it
//! into the one canonical form every later phase (key, fill, origin) reads.
//!
//! - Methods a reverse proxy must not forward (CONNECT, TRACE) are refused.
//! - The request's authority is taken once, by the rules of its protocol:
//!   HTTP/2 `:authority` (a `Host` that names another is malformed, RFC 9113
//!   section 8.3.1); HTTP/1.1 the absolute-form target, which replaces `Host`
//!   (RFC 9112 section 3.2.2); in either form exactly one `Host` field
//!   (RFC 9112 section 3.2: none, or several, is a 400).
//! - The authority must be a host name, IPv4 address or bracketed IPv6
//!   address with an optional port; anything else (`/`, `@`, spaces...) is a
//!   400, so that it cannot merge into the path of a cache key.
//! - It is normalised (lowercase, no trailing dot, no default port of the
//!   connection's scheme: 80, or 443 over TLS) and
//!   written back as the only `Host`, with the target in origin form: the
//!   key is built from exactly what is sent to the origin.
//! - With `server.hosts`, other authorities get 421 and are never fetched.
//! - Fields that let a client rewrite what the origin sees without it being
//!   in the key (`X-Forwarded-Host`, `X-Original-URL`...) are dropped.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Uri, Version};

use crate::authority::{host_part, normalise, normalise_for_port};

/// Fields an origin framework may take as the host or path of the request,
/// which the cache key does not see: dropped from client requests.
const REWRITING_FIELDS: [&str; 7] = [
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
];

/// Why a request is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// CONNECT, TRACE: not forwarded by a reverse proxy.
    #[error("method {0} is not served here")]
    Method(Method),
    /// No authority at all.
    #[error("a Host field is required")]
    MissingHost,
    /// Several `Host` fields.
    #[error("several Host fields")]
    SeveralHosts,
    /// `Host` and `:authority` name different hosts.
    #[error("Host does not match :authority")]
    ConflictingHost,
    /// Not a host name or address with an optional port.
    #[error("invalid authority")]
    InvalidAuthority,
    /// Not one of `server.hosts`.
    #[error("this edge does not serve that host")]
    NotServed,
}

impl Refusal {
    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotServed => StatusCode::MISDIRECTED_REQUEST,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The hosts an edge serves (`server.hosts`): exact names and `*.suffix`
/// wildcards, compared after normalisation. Empty: every host.
#[derive(Debug, Clone, Default)]
pub struct ServedHosts {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl ServedHosts {
    /// Parses the configured list; an entry that is not a host name is an error.
    pub fn new(hosts: &[String]) -> Result<Self, String> {
        let mut served = Self::default();
        for (index, host) in hosts.iter().enumerate() {
            let (wildcard, name) = match host.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, host.as_str()),
            };
            let normalised = normalise(name)
                .filter(|normalised| !normalised.contains(':'))
                .ok_or_else(|| format!("server.hosts[{index}]: \"{host}\" is not a host name"))?;
            if wildcard {
                served.suffixes.push(format!(".{normalised}"));
            } else {
                served.exact.push(normalised);
            }
        }
        Ok(served)
    }

    fn allows(&self, authority: &str) -> bool {
        if self.exact.is_empty() && self.suffixes.is_empty() {
            return true;
        }
        let host = host_part(authority);
        self.exact.iter().any(|exact| exact == host)
            || self
                .suffixes
                .iter()
                .any(|suffix| host.ends_with(suffix.as_str()))
    }
}

/// Checks `parts` and rewrites them in canonical form: one normalised
/// `Host`, an origin-form target, no rewriting fields.
pub fn admit(parts: &mut hyper::http::request::Parts, served: &ServedHosts) -> Result<(), Refusal> {
    if parts.method == Method::CONNECT || parts.method == Method::TRACE {
        return Err(Refusal::Method(parts.method.clone()));
    }
    let raw = raw_authority(parts)?;
    let over_tls = parts
        .extensions
        .get::<std::sync::Arc<crate::tls::TlsSession>>()
        .is_some();
    let default_port = if over_tls { 443 } else { 80 };
    let authority = normalise_for_port(&raw, default_port).ok_or(Refusal::InvalidAuthority)?;
    if !served.allows(&authority) {
        return Err(Refusal::NotServed);
    }
    let value = HeaderValue::from_str(&authority).map_err(|_| Refusal::InvalidAuthority)?;
    parts.headers.insert(header::HOST, value);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    parts.uri = Uri::try_from(path).map_err(|_| Refusal::InvalidAuthority)?;
    for name in REWRITING_FIELDS {
        parts.headers.remove(HeaderName::from_static(name));
    }
    Ok(())
}

/// The authority the request names, by the rules of its protocol.
fn raw_authority(parts: &hyper::http::request::Parts) -> Result<String, Refusal> {
    let host = single_host(&parts.headers)?;
    let target = parts.uri.authority().map(|authority| authority.as_str());
    match (parts.version, target, host) {
        (Version::HTTP_2 | Version::HTTP_3, Some(target), Some(host)) => {
            if normalise(target) == normalise(&host) {
                Ok(target.to_string())
            } else {
                Err(Refusal::ConflictingHost)
            }
        }
        // An HTTP/1.1 request must carry Host even in absolute form (RFC 9112 3.2).
        (Version::HTTP_11, _, None) => Err(Refusal::MissingHost),
        // The target's authority wins over Host (RFC 9112 3.2.2).
        (_, Some(target), _) => Ok(target.to_string()),
        (_, None, Some(host)) => Ok(host),
        (_, None, None) => Err(Refusal::MissingHost),
    }
}

fn single_host(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let mut values = headers.get_all(header::HOST).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::SeveralHosts);
    }
    let text = first.to_str().map_err(|_| Refusal::InvalidAuthority)?;
    Ok(Some(text.to_string()))
}

#[cfg(test)]
mod tests;
