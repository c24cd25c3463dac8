//! The client's preconditions evaluated against a stored response
//! (RFC 9110 section 13), as a cache may for a GET or HEAD it answers itself.
//!
//! The fields are parsed by the `headers` crate: entity-tag lists are split
//! on the commas between tags, never inside one (`"a,b"` is one tag), every
//! field line counts, and dates are read in all three HTTP formats.

use std::time::{Duration, SystemTime};

use headers::{
    Date, ETag, HeaderMapExt, IfMatch, IfModifiedSince, IfNoneMatch, IfUnmodifiedSince,
    LastModified,
};
use hyper::header::{self, HeaderMap};

/// What the preconditions make of a request for a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition stops it: serve the response (or a range of it).
    Serve,
    /// The client's copy is current: 304.
    NotModified,
    /// `If-Match` or `If-Unmodified-Since` is false: 412.
    Failed,
}

/// Evaluates the preconditions of `request` in the order of RFC 9110
/// section 13.2.2 against the fields of a stored 200 response.
pub fn evaluate(stored: &HeaderMap, request: &HeaderMap) -> Precondition {
    let etag = tags::<ETag>(stored);
    let modified = stored.typed_get::<LastModified>().map(SystemTime::from);
    if request.contains_key(header::IF_MATCH) {
        // Strong comparison; `*` passes because a representation exists.
        let passes = tags::<IfMatch>(request).is_some_and(|condition| match &etag {
            Some(etag) => condition.precondition_passes(etag),
            None => condition == IfMatch::any(),
        });
        if !passes {
            return Precondition::Failed;
        }
    } else if let (Some(condition), Some(modified)) =
        (request.typed_get::<IfUnmodifiedSince>(), modified)
        && !condition.precondition_passes(modified)
    {
        return Precondition::Failed;
    }
    if request.contains_key(header::IF_NONE_MATCH) {
        // Weak comparison; `*` matches the representation that exists.
        let matched = tags::<IfNoneMatch>(request).is_some_and(|condition| match &etag {
            Some(etag) => !condition.precondition_passes(etag),
            None => condition == IfNoneMatch::any(),
        });
        return if matched {
            Precondition::NotModified
        } else {
            Precondition::Serve
        };
    }
    match (request.typed_get::<IfModifiedSince>(), modified) {
        (Some(since), Some(modified)) if !since.is_modified(modified) => Precondition::NotModified,
        _ => Precondition::Serve,
    }
}

/// Whether `If-Range` (RFC 9110 section 13.1.5) lets a `Range` apply: with
/// an entity tag, the stored one must be strong and equal; with a date, it
/// must equal `Last-Modified` exactly, and `Last-Modified` must be a strong
/// validator (at least a second before the response's `Date`). Without the
/// field, ranges apply.
pub fn range_applies(stored: &HeaderMap, request: &HeaderMap) -> bool {
    let Some(condition) = request.get(header::IF_RANGE) else {
        return true;
    };
    let mut values = std::iter::once(condition);
    if well_formed_tags(condition.as_bytes())
        && let Ok(tag) = <ETag as headers::Header>::decode(&mut values)
    {
        return tags::<ETag>(stored)
            .is_some_and(|etag| !headers::IfRange::etag(tag).is_modified(Some(&etag), None));
    }
    let Some(since) = condition
        .to_str()
        .ok()
        .and_then(|text| httpdate::parse_http_date(text).ok())
    else {
        return false;
    };
    let Some(modified) = stored.typed_get::<LastModified>().map(SystemTime::from) else {
        return false;
    };
    let strong = stored
        .typed_get::<Date>()
        .map(SystemTime::from)
        .is_some_and(|date| date >= modified + Duration::from_secs(1));
    strong && since == modified
}

/// A field of entity tags, `None` when absent or when a line has a byte no
/// entity tag may hold (RFC 9110 section 8.8.3: visible characters but
/// `"`, and obs-text). The `headers` crate expects such bytes never to
/// reach it.
fn tags<H: headers::Header>(fields: &HeaderMap) -> Option<H> {
    fields
        .get_all(H::name())
        .iter()
        .all(|value| well_formed_tags(value.as_bytes()))
        .then(|| fields.typed_get::<H>())
        .flatten()
}

/// Whether `value` is a list of entity tags (or `*`) by the grammar of
/// RFC 9110 section 8.8.3: `W/` optional, a quoted run of visible
/// characters but `"` and obs-text, elements separated by commas with
/// optional whitespace. Anything else is not a tag list at all.
fn well_formed_tags(value: &[u8]) -> bool {
    let is_space = |byte: u8| byte == b' ' || byte == b'\t';
    let etagc = |byte: u8| byte == 0x21 || (0x23..=0x7e).contains(&byte) || byte >= 0x80;
    let mut at = 0;
    loop {
        while value
            .get(at)
            .copied()
            .is_some_and(|byte| is_space(byte) || byte == b',')
        {
            at += 1;
        }
        if at == value.len() {
            return true;
        }
        if value[at] == b'*' {
            at += 1;
        } else {
            if value[at..].starts_with(b"W/") {
                at += 2;
            }
            if value.get(at) != Some(&b'"') {
                return false;
            }
            at += 1;
            while value.get(at).copied().is_some_and(etagc) {
                at += 1;
            }
            if value.get(at) != Some(&b'"') {
                return false;
            }
            at += 1;
        }
        while value.get(at).copied().is_some_and(is_space) {
            at += 1;
        }
        if at < value.len() && value[at] != b',' {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    const MODIFIED: &str = "Tue, 01 Dec 2026 10:00:00 GMT";
    const LATER: &str = "Wed, 02 Dec 2026 10:00:00 GMT";
    const EARLIER: &str = "Mon, 30 Nov 2026 10:00:00 GMT";

    fn stored(etag: &'static str) -> HeaderMap {
        fields(&[("etag", etag), ("last-modified", MODIFIED), ("date", LATER)])
    }

    #[test]
    fn entity_tags_with_commas_are_one_tag() {
        let stored = stored("\"v1,2\"");
        let hit = fields(&[("if-none-match", "\"x\", \"v1,2\"")]);
        assert_eq!(evaluate(&stored, &hit), Precondition::NotModified);
        // The halves of the tag are not tags of their own.
        let halves = fields(&[("if-none-match", "\"v1\", \"2\"")]);
        assert_eq!(evaluate(&stored, &halves), Precondition::Serve);
    }

    #[test]
    fn every_field_line_of_if_none_match_counts() {
        let stored = stored("W/\"b\"");
        let lines = fields(&[("if-none-match", "\"a\""), ("if-none-match", "\"b\"")]);
        assert_eq!(evaluate(&stored, &lines), Precondition::NotModified);
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let stored = stored("\"a\"");
        let request = fields(&[("if-none-match", "\"b\""), ("if-modified-since", LATER)]);
        assert_eq!(evaluate(&stored, &request), Precondition::Serve);
        let dated = fields(&[("if-modified-since", LATER)]);
        assert_eq!(evaluate(&stored, &dated), Precondition::NotModified);
        let old = fields(&[("if-modified-since", EARLIER)]);
        assert_eq!(evaluate(&stored, &old), Precondition::Serve);
        // The obsolete date formats are dates too.
        let asctime = fields(&[("if-modified-since", "Wed Dec  2 10:00:00 2026")]);
        assert_eq!(evaluate(&stored, &asctime), Precondition::NotModified);
    }

    #[test]
    fn star_matches_an_existing_representation() {
        let untagged = fields(&[("last-modified", MODIFIED)]);
        let any = fields(&[("if-none-match", "*")]);
        assert_eq!(evaluate(&untagged, &any), Precondition::NotModified);
        let any_match = fields(&[("if-match", "*")]);
        assert_eq!(evaluate(&untagged, &any_match), Precondition::Serve);
    }

    #[test]
    fn if_match_is_strong_and_fails_with_412() {
        let strong = stored("\"a\"");
        assert_eq!(
            evaluate(&strong, &fields(&[("if-match", "\"a\"")])),
            Precondition::Serve
        );
        assert_eq!(
            evaluate(&strong, &fields(&[("if-match", "\"b\"")])),
            Precondition::Failed
        );
        let weak = stored("W/\"a\"");
        assert_eq!(
            evaluate(&weak, &fields(&[("if-match", "W/\"a\"")])),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&strong, &fields(&[("if-unmodified-since", EARLIER)])),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&strong, &fields(&[("if-unmodified-since", LATER)])),
            Precondition::Serve
        );
    }

    #[test]
    fn if_range_needs_a_strong_exact_validator() {
        let strong = stored("\"a,b\"");
        assert!(range_applies(&strong, &HeaderMap::new()));
        assert!(range_applies(&strong, &fields(&[("if-range", "\"a,b\"")])));
        assert!(!range_applies(&strong, &fields(&[("if-range", "\"a\"")])));
        assert!(!range_applies(
            &strong,
            &fields(&[("if-range", "W/\"a,b\"")])
        ));
        assert!(!range_applies(
            &stored("W/\"a\""),
            &fields(&[("if-range", "\"a\"")])
        ));
        assert!(range_applies(&strong, &fields(&[("if-range", MODIFIED)])));
        assert!(!range_applies(&strong, &fields(&[("if-range", LATER)])));
        assert!(!range_applies(&strong, &fields(&[("if-range", "garbage")])));
        // A Last-Modified equal to Date is weak: it cannot validate a range.
        let weak_date = fields(&[("last-modified", MODIFIED), ("date", MODIFIED)]);
        assert!(!range_applies(
            &weak_date,
            &fields(&[("if-range", MODIFIED)])
        ));
    }

    #[test]
    fn tags_with_spaces_inside_are_not_tags() {
        let spaced = stored("\"a b\"");
        assert_eq!(
            evaluate(&spaced, &fields(&[("if-none-match", "\"a b\"")])),
            Precondition::Serve
        );
        let plain = stored("\"a\"");
        assert_eq!(
            evaluate(&plain, &fields(&[("if-none-match", "\"a\", \"b\tc\"")])),
            Precondition::Serve
        );
        assert_eq!(
            evaluate(&plain, &fields(&[("if-match", "\"a\tb\"")])),
            Precondition::Failed
        );
        assert!(!range_applies(&plain, &fields(&[("if-range", "\"a \"")])));
        // An unbalanced quote on one line would shift the split of the next.
        let lines = fields(&[("if-none-match", "\""), ("if-none-match", "\"x\" \"a\"")]);
        assert_eq!(evaluate(&plain, &lines), Precondition::Serve);
        assert!(well_formed_tags(b"\"a\", W/\"b,c\" ,*"));
        assert!(!well_formed_tags(b"\"a\" \"b\""));
        assert!(!well_formed_tags(b"a"));
    }
}
