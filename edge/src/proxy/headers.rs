//! Header rules of a proxy: hop-by-hop fields removed both ways (RFC 9110
//! section 7.6.1), `Via` added (section 7.6.3), `X-Forwarded-For` set,
//! and loops detected by our own name in `Via`.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fields that describe one connection, never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes hop-by-hop fields, including those `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends `1.1 <node>` to `Via`.
pub fn add_via(headers: &mut HeaderMap, node: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("1.1 {node}")) {
        headers.append(header::VIA, value);
    }
}

/// Whether `Via` already names this node: the request has come round.
pub fn is_loop(headers: &HeaderMap, node: &str) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .any(|hop| hop.split_whitespace().nth(1) == Some(node))
}

/// Sets `X-Forwarded-For` for the next hop: the chain a trusted sender
/// (a configured proxy, a peer edge) passed on, then `client`; from anyone
/// else the client's own field is replaced, since it could name anyone.
/// `Forwarded` (RFC 7239) is kept from trusted senders only.
pub fn set_forwarded_for(headers: &mut HeaderMap, client: IpAddr, trusted: bool) {
    let name = HeaderName::from_static("x-forwarded-for");
    let chain: Vec<String> = if trusted {
        headers
            .get_all(&name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::to_string)
            .collect()
    } else {
        headers.remove(header::FORWARDED);
        Vec::new()
    };
    let client = client.to_canonical().to_string();
    let value = if chain.is_empty() {
        client
    } else {
        format!("{}, {client}", chain.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

/// The declared body length, if any and valid.
pub(super) fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_fields_go() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn via_marks_and_detects_loops() {
        let mut headers = HeaderMap::new();
        headers.insert(header::VIA, "1.1 other".parse().unwrap());
        assert!(!is_loop(&headers, "edge-1"));
        add_via(&mut headers, "edge-1");
        assert!(is_loop(&headers, "edge-1"));
        assert!(!is_loop(&headers, "edge"));
    }

    #[test]
    fn forwarded_for_is_appended_from_trusted_senders_only() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        headers.append("x-forwarded-for", "192.0.2.1".parse().unwrap());
        set_forwarded_for(&mut headers, "198.51.100.2".parse().unwrap(), true);
        assert_eq!(
            headers["x-forwarded-for"],
            "203.0.113.9, 192.0.2.1, 198.51.100.2"
        );
        headers.insert(header::FORWARDED, "for=192.0.2.60".parse().unwrap());
        set_forwarded_for(&mut headers, "::ffff:198.51.100.3".parse().unwrap(), false);
        assert_eq!(headers["x-forwarded-for"], "198.51.100.3");
        assert!(!headers.contains_key(header::FORWARDED));
    }
}
