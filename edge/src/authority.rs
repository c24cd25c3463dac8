//! The authority grammar of the requests the edge serves: a host name,
//! IPv4 address or bracketed IPv6 address, with an optional numeric port
//! (RFC 9110 section 4.2.3, RFC 3986 section 3.2, narrowed to what names a
//! site). Normalised so that every spelling of one site is one cache key.

/// `host[:port]` lowercased, without a trailing dot or the default port
/// of HTTP (80); `None` when it is not a host name, IPv4 or bracketed IPv6
/// address with an optional numeric port.
pub fn normalise(authority: &str) -> Option<String> {
    normalise_for_port(authority, 80)
}

/// [`normalise`] for a scheme whose default port is `default_port` (443
/// for HTTPS), which is dropped.
pub fn normalise_for_port(authority: &str, default_port: u16) -> Option<String> {
    let (host, port) = split_port(authority)?;
    let host = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        let address: std::net::Ipv6Addr = inner.parse().ok()?;
        format!("[{address}]")
    } else {
        let host = host.strip_suffix('.').unwrap_or(host);
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
            });
        if !valid {
            return None;
        }
        host.to_ascii_lowercase()
    };
    Some(match port {
        None => host,
        Some(port) if port == default_port => host,
        Some(port) => format!("{host}:{port}"),
    })
}

/// `host` and `port` of an authority; `None` when the port is not a number.
pub fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.rfind(':') {
        // A colon inside brackets belongs to the IPv6 address.
        Some(colon) if !authority[colon..].contains(']') => {
            (&authority[..colon], Some(&authority[colon + 1..]))
        }
        _ => (authority, None),
    };
    let port = match port {
        // An empty port is the default one (RFC 3986 section 3.2.3).
        None | Some("") => None,
        Some(digits) if digits.bytes().all(|byte| byte.is_ascii_digit()) => {
            Some(digits.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// The host of an authority, without its port.
pub fn host_part(authority: &str) -> &str {
    split_port(authority).map_or(authority, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_site_are_one_authority() {
        for spelling in [
            "site.test",
            "SITE.test",
            "site.test.",
            "site.test:80",
            "site.test:",
        ] {
            assert_eq!(
                normalise(spelling).as_deref(),
                Some("site.test"),
                "{spelling}"
            );
        }
        assert_eq!(
            normalise("site.test:8080").as_deref(),
            Some("site.test:8080")
        );
        assert_eq!(
            normalise("[2001:DB8:0::1]").as_deref(),
            Some("[2001:db8::1]")
        );
    }
}
