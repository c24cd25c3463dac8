//! A request field as the cache compares it, for `Vary` and for
//! `cache.key_headers`.
//!
//! Every field line counts: lines combine with ", " (RFC 9110 section 5.3),
//! and `Cookie` lines, which HTTP/2 clients send one per cookie, with "; "
//! (RFC 9113 section 8.2.3). Values are then normalised where that cannot
//! change which response fits the request (RFC 9111 section 4.1):
//! whitespace around separators, and for `Accept-Encoding` the set of
//! acceptable codings, lowercased and sorted, so that the spellings clients
//! use for the same preference share one variant.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The normalised value of every `name` line of `request`, or `None` when
/// the request has none.
pub fn request_value(request: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut lines = request
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .peekable();
    lines.peek()?;
    Some(if name == header::COOKIE {
        cookies(lines)
    } else if name == header::ACCEPT_ENCODING {
        accepted_codings(lines)
    } else {
        lines
            .map(|line| line.trim().to_owned())
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The request fields a response's `Vary` names (every line, sorted, each
/// once), with the values `request` has for them: what a stored variant is
/// matched against.
pub fn stored_values(
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
            let value =
                request_value(request, &name).and_then(|value| HeaderValue::from_str(&value).ok());
            (name, value)
        })
        .collect()
}

/// Cookie pairs of every line, in order, joined with "; ".
fn cookies(lines: impl Iterator<Item = String>) -> String {
    let mut pairs = Vec::new();
    for line in lines {
        pairs.extend(
            line.split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty())
                .map(str::to_owned),
        );
    }
    pairs.join("; ")
}

/// The codings an `Accept-Encoding` accepts (q above 0), lowercased,
/// sorted and without repeats. Any of them may be served to the client, so
/// requests accepting the same set can share the response.
fn accepted_codings(lines: impl Iterator<Item = String>) -> String {
    let mut codings: Vec<String> = Vec::new();
    for line in lines {
        for member in line.split(',') {
            let mut parts = member.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            let refused = parts.any(|parameter| {
                let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                key.trim().eq_ignore_ascii_case("q")
                    && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            });
            if !refused {
                codings.push(coding);
            }
        }
    }
    codings.sort_unstable();
    codings.dedup();
    codings.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn value(name: HeaderName, lines: &[&str]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(name.clone(), HeaderValue::from_str(line).unwrap());
        }
        request_value(&headers, &name)
    }

    #[test]
    fn every_cookie_line_counts() {
        assert_eq!(
            value(header::COOKIE, &["user=alice", "theme=dark"]),
            value(header::COOKIE, &["user=alice; theme=dark"])
        );
        assert_ne!(
            value(header::COOKIE, &["theme=dark", "user=alice"]),
            value(header::COOKIE, &["theme=dark", "user=bob"])
        );
    }

    #[test]
    fn accept_encoding_spellings_share_a_value() {
        let spellings = [
            &["gzip, br"][..],
            &["br,gzip"],
            &["GZIP;q=1.0, br"],
            &["gzip", "br"],
            &["br, gzip, deflate;q=0"],
        ];
        let values: Vec<_> = spellings
            .iter()
            .map(|lines| value(header::ACCEPT_ENCODING, lines))
            .collect();
        assert!(
            values.iter().all(|v| v.as_deref() == Some("br,gzip")),
            "{values:?}"
        );
        assert_ne!(
            value(header::ACCEPT_ENCODING, &["gzip"]),
            value(header::ACCEPT_ENCODING, &["br"])
        );
    }

    #[test]
    fn other_fields_combine_their_lines() {
        let name = header::ACCEPT_LANGUAGE;
        assert_eq!(
            value(name.clone(), &["en", " de "]).as_deref(),
            Some("en, de")
        );
        assert_eq!(value(name, &[]), None);
    }
}
