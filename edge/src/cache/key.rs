//! The cache key: scheme, host, path and query, as configured.

use hyper::Uri;
use hyper::header::{self, HeaderMap, HeaderName};

use crate::authority::normalise;
use crate::config::QueryKey;

/// Separates the URL key from each key-header value in a primary key; it
/// cannot occur in a URL or a header value.
pub const KEY_HEADER_SEPARATOR: char = '\u{1}';

/// How keys are built.
#[derive(Debug, Clone, Default)]
pub struct KeyRules {
    /// Query string handling.
    pub query: QueryKey,
    /// Request headers appended to the key.
    pub headers: Vec<HeaderName>,
}

impl KeyRules {
    /// The primary key of an admitted request: its URL key, then the values
    /// of the configured key headers, each after [`KEY_HEADER_SEPARATOR`].
    pub fn key(&self, uri: &Uri, headers: &HeaderMap) -> String {
        let mut key = self.url_key(uri, headers);
        for name in &self.headers {
            key.push(KEY_HEADER_SEPARATOR);
            key.push_str(name.as_str());
            key.push('=');
            if let Some(value) = super::vary::request_value(headers, name) {
                key.push_str(&value);
            }
        }
        key
    }

    /// The part of the key that names the URL: its `Host` (one, already
    /// normalised by admission) and its path as sent, with the query as
    /// configured. Every key of a URL starts with it, which is how purges and
    /// invalidations find all the key-header variants of a URL.
    pub fn url_key(&self, uri: &Uri, headers: &HeaderMap) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let mut key = format!("http://{host}{}", uri.path());
        match (self.query, uri.query()) {
            (_, None) | (QueryKey::Ignore, _) => {}
            (QueryKey::Keep, Some(query)) => {
                key.push('?');
                key.push_str(query);
            }
            (QueryKey::Sort, Some(query)) => {
                let mut pairs: Vec<&str> =
                    query.split('&').filter(|pair| !pair.is_empty()).collect();
                pairs.sort_unstable();
                key.push('?');
                key.push_str(&pairs.join("&"));
            }
        }
        key
    }

    /// The URL key of a URL (for purges and invalidation): `url` is
    /// absolute (`http://host/path`) or a path on `host`.
    pub fn url_key_for(&self, url: &str, host: &str) -> Option<String> {
        let uri: Uri = url.parse().ok()?;
        let mut headers = HeaderMap::new();
        let host = uri.authority().map_or(host, |authority| authority.as_str());
        headers.insert(header::HOST, normalise(host)?.parse().ok()?);
        Some(self.url_key(&uri, &headers))
    }

    /// Whether keys carry key-header values after the URL key.
    pub fn has_key_headers(&self) -> bool {
        !self.headers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rules: &KeyRules, uri: &str) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "example.com".parse().unwrap());
        rules.key(&uri.parse().unwrap(), &headers)
    }

    #[test]
    fn host_path_and_query() {
        let rules = KeyRules::default();
        assert_eq!(key(&rules, "/a/b?x=1"), "http://example.com/a/b?x=1");
    }

    #[test]
    fn sorted_and_ignored_queries() {
        let sort = KeyRules {
            query: QueryKey::Sort,
            ..KeyRules::default()
        };
        assert_eq!(key(&sort, "/p?b=2&a=1"), key(&sort, "/p?a=1&b=2"));
        let ignore = KeyRules {
            query: QueryKey::Ignore,
            ..KeyRules::default()
        };
        assert_eq!(key(&ignore, "/p?b=2"), "http://example.com/p");
    }

    #[test]
    fn urls_map_to_the_same_key() {
        let rules = KeyRules::default();
        assert_eq!(
            rules.url_key_for("http://example.com/a?x=1", "").unwrap(),
            key(&rules, "/a?x=1")
        );
        assert_eq!(
            rules.url_key_for("/a?x=1", "Example.COM:80").unwrap(),
            key(&rules, "/a?x=1")
        );
    }
}
