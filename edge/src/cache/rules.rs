//! Per-path freshness rules from the configuration (`[[cache.rules]]`):
//! a prefix or a `*` glob, first match wins.

use std::time::Duration;

use crate::config::TtlRule;

/// The rules, checked once at start.
#[derive(Debug, Clone, Default)]
pub struct TtlRules {
    rules: Vec<(Pattern, Duration)>,
}

#[derive(Debug, Clone)]
enum Pattern {
    Prefix(String),
    Glob(String),
}

impl TtlRules {
    /// Validates the configured rules (exactly one of prefix or glob each).
    pub fn new(rules: &[TtlRule]) -> Result<Self, String> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let pattern = match (&rule.prefix, &rule.glob) {
                    (Some(prefix), None) => Pattern::Prefix(prefix.clone()),
                    (None, Some(glob)) => Pattern::Glob(glob.clone()),
                    _ => {
                        return Err(format!(
                            "cache.rules[{index}]: give exactly one of prefix or glob"
                        ));
                    }
                };
                Ok((pattern, rule.ttl.as_std()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// The lifetime imposed on `path`, if a rule matches.
    pub fn ttl_for(&self, path: &str) -> Option<Duration> {
        self.rules.iter().find_map(|(pattern, ttl)| {
            let matched = match pattern {
                Pattern::Prefix(prefix) => path.starts_with(prefix.as_str()),
                Pattern::Glob(glob) => glob_match(glob, path),
            };
            matched.then_some(*ttl)
        })
    }
}

/// `*` matches any run of characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(index) => remaining = &remaining[index + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("/img/*.png", "/img/a/b.png"));
        assert!(!glob_match("/img/*.png", "/img/a.jpg"));
        assert!(glob_match("*", "/anything"));
        assert!(glob_match("/exact", "/exact"));
        assert!(!glob_match("/exact", "/exact/more"));
    }

    #[test]
    fn first_matching_rule_wins_and_bad_rules_are_named() {
        let rule = |prefix: Option<&str>, glob: Option<&str>, secs| TtlRule {
            prefix: prefix.map(str::to_string),
            glob: glob.map(str::to_string),
            ttl: shared::Duration::from_secs(secs),
        };
        let rules = TtlRules::new(&[
            rule(Some("/static/"), None, 60),
            rule(None, Some("*.css"), 5),
        ])
        .unwrap();
        assert_eq!(
            rules.ttl_for("/static/a.css"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(rules.ttl_for("/b.css"), Some(Duration::from_secs(5)));
        assert_eq!(rules.ttl_for("/b.js"), None);
        let error = TtlRules::new(&[rule(None, None, 1)]).unwrap_err();
        assert!(error.starts_with("cache.rules[0]:"), "{error}");
    }
}
