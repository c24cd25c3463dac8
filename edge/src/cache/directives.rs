//! `Cache-Control` (RFC 9111 section 5.2) and targeted cache-control fields
//! such as `CDN-Cache-Control` (RFC 9213), parsed once per response.
//!
//! `Cache-Control` has its own list grammar. Targeted fields are Structured
//! Field Dictionaries (RFC 8941, RFC 9213 section 2.1): a field that is
//! empty, does not parse, or gives a known directive a value of the wrong
//! type is ignored as a whole, and the next field in precedence applies.
//!
//! Unknown directives are ignored (section 5.2.3), so odd requests and
//! responses (`Cache-Control: nothing-to-see-here`) change nothing. When a
//! directive appears twice the first occurrence counts (section 4.2.1). A
//! delta-seconds value that does not parse makes the response stale rather
//! than fresh forever; values beyond 2^31 are clamped to 2^31 (section 1.2.2).

use hyper::header::HeaderValue;

/// Largest delta-seconds value kept (RFC 9111 section 1.2.2).
pub const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The directives a shared cache acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`: never store.
    pub no_store: bool,
    /// `no-cache`: store, but revalidate before every use.
    pub no_cache: bool,
    /// `private`: not for shared caches.
    pub private: bool,
    /// Fields named by the qualified forms `no-cache="..."` and
    /// `private="..."` (lowercase): the response may be stored and reused,
    /// but without these fields (RFC 9111 sections 5.2.2.4 and 5.2.2.7).
    pub omit_fields: Vec<String>,
    /// `public`: storable even with `Authorization`.
    pub public: bool,
    /// `must-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `must-understand`: store only if the status code's caching rules are
    /// understood, and then `no-store` may be ignored (RFC 9111 section 5.2.2.3).
    pub must_understand: bool,
    /// `proxy-revalidate`: like `must-revalidate` for shared caches.
    pub proxy_revalidate: bool,
    /// `max-age` in seconds.
    pub max_age: Option<u64>,
    /// `s-maxage` in seconds (shared caches).
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate` (RFC 5861) in seconds.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861) in seconds.
    pub stale_if_error: Option<u64>,
    /// Whether these came from a targeted field, whose directives alone
    /// decide freshness: `Expires` does not apply (RFC 9213 section 2.2).
    pub targeted: bool,
}

impl Directives {
    /// Whether a response with these directives may be stored from, and
    /// served to, requests with `Authorization` (RFC 9111 section 3.5).
    pub fn shared_with_credentials(&self) -> bool {
        self.public || self.s_maxage.is_some() || self.must_revalidate
    }

    /// Parses every line of a cache-control field.
    pub fn parse<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Self {
        let mut directives = Self::default();
        let mut seen = Seen::default();
        for value in values {
            let Ok(text) = value.to_str() else { continue };
            for (name, argument) in split(text) {
                directives.apply(&name.to_ascii_lowercase(), argument, &mut seen);
            }
        }
        directives
    }

    /// Parses every line of a targeted field as one Structured Field
    /// Dictionary; `None` when the field must be ignored (RFC 9213 section
    /// 2.1): empty, not a valid Dictionary, or a known directive whose value
    /// has the wrong type (`max-age="60"`, `no-store=1`, `max-age=-1`).
    pub fn parse_targeted<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<Self> {
        let mut joined = Vec::new();
        for value in values {
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value.as_bytes());
        }
        let dictionary: sfv::Dictionary = sfv::Parser::new(&joined).parse().ok()?;
        if dictionary.is_empty() {
            return None;
        }
        let mut directives = Self {
            targeted: true,
            ..Self::default()
        };
        for (name, member) in &dictionary {
            let sfv::ListEntry::Item(item) = member else {
                if is_known(name.as_str()) {
                    return None;
                }
                continue;
            };
            directives.apply_targeted(name.as_str(), &item.bare_item)?;
        }
        Some(directives)
    }

    /// Applies one Dictionary member; `None` when its value has the wrong type.
    fn apply_targeted(&mut self, name: &str, value: &sfv::BareItem) -> Option<()> {
        let flag = || value.as_boolean();
        let seconds = || {
            let seconds = i64::from(value.as_integer()?);
            u64::try_from(seconds)
                .ok()
                .map(|seconds| seconds.min(MAX_DELTA_SECONDS))
        };
        match name {
            "no-cache" | "private" if value.as_string().is_some() => {
                let fields = value.as_string()?.as_str();
                self.omit_fields.extend(field_names(fields));
            }
            "no-store" => self.no_store = flag()?,
            "no-cache" => self.no_cache = flag()?,
            "private" => self.private = flag()?,
            "public" => self.public = flag()?,
            "must-revalidate" => self.must_revalidate = flag()?,
            "must-understand" => self.must_understand = flag()?,
            "proxy-revalidate" => self.proxy_revalidate = flag()?,
            "max-age" => self.max_age = Some(seconds()?),
            "s-maxage" => self.s_maxage = Some(seconds()?),
            "stale-while-revalidate" => self.stale_while_revalidate = Some(seconds()?),
            "stale-if-error" => self.stale_if_error = Some(seconds()?),
            _ => {}
        }
        Some(())
    }

    /// Whether any directive was present at all.
    pub fn is_empty(&self) -> bool {
        Self {
            targeted: false,
            ..self.clone()
        } == Self::default()
    }

    fn apply(&mut self, name: &str, argument: Option<&str>, seen: &mut Seen) {
        match name {
            "no-store" => self.no_store = true,
            "no-cache" | "private" if argument.is_some_and(|fields| !fields.trim().is_empty()) => {
                self.omit_fields
                    .extend(field_names(argument.unwrap_or_default()));
            }
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "must-understand" => self.must_understand = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "max-age" if !seen.max_age => {
                seen.max_age = true;
                self.max_age = Some(seconds(argument));
            }
            "s-maxage" if !seen.s_maxage => {
                seen.s_maxage = true;
                self.s_maxage = Some(seconds(argument));
            }
            "stale-while-revalidate" if self.stale_while_revalidate.is_none() => {
                self.stale_while_revalidate = delta(argument);
            }
            "stale-if-error" if self.stale_if_error.is_none() => {
                self.stale_if_error = delta(argument);
            }
            _ => {}
        }
    }
}

/// The directives this cache acts on, whose value types are checked.
fn is_known(name: &str) -> bool {
    matches!(
        name,
        "no-store"
            | "no-cache"
            | "private"
            | "public"
            | "must-revalidate"
            | "must-understand"
            | "proxy-revalidate"
            | "max-age"
            | "s-maxage"
            | "stale-while-revalidate"
            | "stale-if-error"
    )
}

/// The lowercase field names of `no-cache="a, b"` and `private="a, b"`.
fn field_names(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(|field| field.trim().to_ascii_lowercase())
        .filter(|field| !field.is_empty())
}

#[derive(Default)]
struct Seen {
    max_age: bool,
    s_maxage: bool,
}

/// A lifetime argument; unparsable means "already stale".
fn seconds(argument: Option<&str>) -> u64 {
    delta(argument).unwrap_or(0)
}

fn delta(argument: Option<&str>) -> Option<u64> {
    let digits = argument?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<u64>()
            .unwrap_or(MAX_DELTA_SECONDS)
            .min(MAX_DELTA_SECONDS),
    )
}

/// Splits `a, b=1, c="x, y"` into directives, honouring quoted strings.
fn split(text: &str) -> Vec<(String, Option<&str>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut in_quotes = false;
        let mut end = rest.len();
        for (index, ch) in rest.char_indices() {
            match ch {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    end = index;
                    break;
                }
                _ => {}
            }
        }
        let item = rest[..end].trim();
        rest = rest.get(end + 1..).unwrap_or("");
        if item.is_empty() {
            continue;
        }
        match item.split_once('=') {
            // No whitespace is allowed around `=` (RFC 9111 section 5.2):
            // `max-age =60` names an unknown directive and is ignored.
            Some((name, value)) => {
                let value = value
                    .strip_prefix('"')
                    .and_then(|inner| inner.strip_suffix('"'))
                    .unwrap_or(value);
                out.push((name.to_string(), Some(value)));
            }
            None => out.push((item.to_string(), None)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Directives {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|line| HeaderValue::from_str(line).unwrap())
            .collect();
        Directives::parse(values.iter())
    }

    #[test]
    fn common_directives() {
        let d = parse(&[
            "public, max-age=60, s-maxage=\"120\"",
            "stale-while-revalidate=30",
        ]);
        assert!(d.public);
        assert_eq!(d.max_age, Some(60));
        assert_eq!(d.s_maxage, Some(120));
        assert_eq!(d.stale_while_revalidate, Some(30));
    }

    #[test]
    fn unknown_directives_change_nothing() {
        assert!(parse(&["nothing-to-see-here"]).is_empty());
        assert!(
            parse(&["foo=\"bar, no-store\""]).is_empty(),
            "quoted commas"
        );
    }

    #[test]
    fn first_max_age_wins_and_bad_values_are_stale() {
        assert_eq!(parse(&["max-age=10, max-age=20"]).max_age, Some(10));
        assert_eq!(parse(&["max-age=abc"]).max_age, Some(0));
        assert_eq!(parse(&["max-age=-5"]).max_age, Some(0));
        assert_eq!(
            parse(&["max-age=99999999999999999999"]).max_age,
            Some(1 << 31)
        );
    }

    #[test]
    fn whitespace_around_equals_is_not_a_directive() {
        assert_eq!(parse(&["max-age =3600"]).max_age, None);
        assert_eq!(parse(&["max-age= 3600"]).max_age, Some(0));
        assert_eq!(parse(&["max-age=003600"]).max_age, Some(3600));
        assert_eq!(parse(&["max-age='3600'"]).max_age, Some(0));
        assert_eq!(
            parse(&["extension=\"max-age=3600\", max-age=1"]).max_age,
            Some(1)
        );
    }

    fn targeted(lines: &[&str]) -> Option<Directives> {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|line| HeaderValue::from_str(line).unwrap())
            .collect();
        Directives::parse_targeted(values.iter())
    }

    #[test]
    fn targeted_fields_are_dictionaries_over_every_line() {
        let d = targeted(&["max-age=60, must-revalidate", "private=\"Set-Cookie\""]).unwrap();
        assert_eq!(d.max_age, Some(60));
        assert!(d.must_revalidate && d.targeted && !d.private);
        assert_eq!(d.omit_fields, ["set-cookie"]);
        assert!(targeted(&["no-store"]).unwrap().no_store);
        assert_eq!(
            targeted(&["max-age=99999999999999"]).unwrap().max_age,
            Some(1 << 31)
        );
        assert!(!targeted(&["no-store=?0"]).unwrap().no_store);
        let unknown = targeted(&["x-ours=(1 2), max-age=5;p=1"]).unwrap();
        assert_eq!(
            unknown.max_age,
            Some(5),
            "parameters and unknown members ignored"
        );
    }

    #[test]
    fn invalid_targeted_fields_are_ignored_whole() {
        for lines in [
            &[""][..],
            &["   "],
            &["max-age=60,"],
            &["max-age=60, , no-store"],
            &["MAX-AGE=60"],
            &["max-age=\"60\""],
            &["max-age=-1"],
            &["max-age=1.5"],
            &["no-store=1"],
            &["no-store=(a b)"],
            &["max-age=60", "no-store=\"\"\""],
        ] {
            assert_eq!(targeted(lines), None, "{lines:?}");
        }
    }

    #[test]
    fn qualified_forms_name_fields_to_omit() {
        let d = parse(&["No-Cache=\"Set-Cookie, a\", PRIVATE=\"x\", max-age=5"]);
        assert!(!d.no_cache && !d.private);
        assert_eq!(d.omit_fields, ["set-cookie", "a", "x"]);
        let plain = parse(&["no-cache, private"]);
        assert!(plain.no_cache && plain.private);
    }
}
