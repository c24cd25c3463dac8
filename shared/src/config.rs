//! Loading TOML configuration files into typed structs.
//!
//! Both binaries describe their configuration as `serde` structs marked
//! `#[serde(deny_unknown_fields)]`, so a misspelt key is an error rather than a
//! silently ignored line. Errors carry everything an operator needs to find the
//! mistake: the file, the line and column, and the dotted key path, e.g.
//! `geodns.toml:14:3: services.cdn.ttl: invalid duration "30x"`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file was read but is not valid TOML or does not fit the schema.
    #[error("{0}")]
    Invalid(Box<InvalidConfig>),
    /// The file has several TOML syntax errors: every one, in order (the
    /// parser recovers after each, so one check shows them all).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Syntax(Vec<InvalidConfig>),
    /// The file holds nothing but blanks and comments: most likely the
    /// wrong file, or one truncated by a failed copy.
    #[error(
        "{path}: the file is empty (nothing but blanks and comments); give at least one setting"
    )]
    Empty {
        /// The file that was asked for.
        path: PathBuf,
    },
}

/// A configuration file that does not parse or does not fit the schema.
#[derive(Debug)]
pub struct InvalidConfig {
    /// The file that was loaded.
    pub path: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the offending key or value, when known.
    pub column: Option<usize>,
    /// Dotted path of the key, e.g. `services.cdn.ttl`; empty at the top level.
    pub key: String,
    /// What is wrong, in the words of the parser or the field's validator.
    pub message: String,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InvalidConfig {}

/// Reads and parses a TOML configuration file.
pub fn load<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let settings = text
        .lines()
        .map(str::trim)
        .any(|line| !line.is_empty() && !line.starts_with('#'));
    if !settings {
        return Err(ConfigError::Empty {
            path: path.to_path_buf(),
        });
    }
    parse(path, &text)
}

/// Parses TOML text; `path` only names the source in error messages.
///
/// Used for embedded defaults and tests as well as for files on disk, so that
/// every configuration goes through the same checks.
pub fn parse<T: DeserializeOwned>(path: impl AsRef<Path>, text: &str) -> Result<T, ConfigError> {
    let path = path.as_ref();
    let invalid = |span: Option<std::ops::Range<usize>>, key: String, message: String| {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ConfigError::Invalid(Box::new(InvalidConfig {
            path: path.to_path_buf(),
            line,
            column,
            key,
            message,
        }))
    };

    let deserializer = toml::Deserializer::parse(text).map_err(|error| {
        let message = tidy_message(error.message());
        let first_at = error.span().map(|span| span.start);
        // toml's own message first (it also checks values, such as an
        // unquoted string), then the other lines the recovering parser
        // finds fault with: one error per line, so that a cascade stays
        // readable, and at most MAX_SYNTAX_ERRORS.
        let (found, cascade) = syntax_errors(text);
        // After an open bracket, toml's own message is part of the cascade.
        let mut errors: Vec<(usize, String)> = first_at
            .filter(|_| !cascade)
            .map(|at| (at, message.clone()))
            .into_iter()
            .collect();
        let mut lines: Vec<usize> = errors
            .iter()
            .map(|(at, _)| line_and_column(text, *at).0)
            .collect();
        for (at, message) in found {
            let line = line_and_column(text, at).0;
            if !lines.contains(&line) && errors.len() < MAX_SYNTAX_ERRORS {
                lines.push(line);
                errors.push((at, message));
            }
        }
        match errors.len() {
            0 => return invalid(error.span(), String::new(), message),
            1 => {
                let (at, message) = errors.remove(0);
                return invalid(Some(at..at), String::new(), message);
            }
            _ => {}
        }
        let sorted_from = usize::from(!cascade);
        errors[sorted_from..].sort_by_key(|(at, _)| *at);
        ConfigError::Syntax(
            errors
                .into_iter()
                .map(|(offset, message)| {
                    let (line, column) = line_and_column(text, offset);
                    InvalidConfig {
                        path: path.to_path_buf(),
                        line: Some(line),
                        column: Some(column),
                        key: String::new(),
                        message,
                    }
                })
                .collect(),
        )
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = key_path(error.path());
        let inner = error.into_inner();
        invalid(inner.span(), key, tidy_message(inner.message()))
    })
}

/// Syntax errors reported for one file at most.
const MAX_SYNTAX_ERRORS: usize = 10;

/// Every TOML syntax error of `text`, by byte offset, as the parser under
/// `toml` finds them when it recovers after each.
/// Also says whether a bracket left open made the rest of the file read as
/// its contents (then only what precedes it, and the bracket, are kept).
fn syntax_errors(text: &str) -> (Vec<(usize, String)>, bool) {
    let source = toml_parser::Source::new(text);
    let tokens: Vec<_> = source.lex().collect();
    let mut errors: Vec<toml_parser::ParseError> = Vec::new();
    toml_parser::parser::parse_document(&tokens, &mut (), &mut errors);
    let mut found: Vec<(usize, String)> = errors
        .iter()
        .map(|error| {
            // An unclosed bracket is found at the end of the file; it is
            // named where it was opened (its context).
            let unclosed = spans_lines(error);
            let span = if unclosed {
                error.context().or(error.unexpected())
            } else {
                error.unexpected().or(error.context())
            };
            let at = span.map_or(0, |span| span.start());
            let mut message = error.description().to_string();
            if let Some(expected) = error.expected().filter(|expected| !expected.is_empty()) {
                let names: Vec<String> = expected
                    .iter()
                    .map(|expected| match expected {
                        toml_parser::Expected::Literal("\n") => "a new line".to_string(),
                        toml_parser::Expected::Literal(literal) => format!("`{literal}`"),
                        toml_parser::Expected::Description(description) => {
                            (*description).to_string()
                        }
                        _ => String::from("?"),
                    })
                    .collect();
                message.push_str(&format!(", expected {}", names.join(" or ")));
            }
            (at, message)
        })
        .collect();
    // What follows an unclosed bracket is read as its contents: those
    // complaints are the same mistake.
    let opened = errors
        .iter()
        .zip(&found)
        .filter(|(error, _)| spans_lines(error))
        .map(|(_, (at, _))| *at)
        .min();
    if let Some(opened) = opened {
        found = errors
            .iter()
            .zip(found)
            .filter(|(error, (at, _))| *at <= opened || spans_lines(error))
            .map(|(_, entry)| entry)
            .collect();
    }
    found.sort_by_key(|(at, _)| *at);
    found.dedup();
    (found, opened.is_some())
}

/// Whether `error` is a bracket left open that can swallow the lines after
/// it (an array or an inline table; a table header ends with its line).
fn spans_lines(error: &toml_parser::ParseError) -> bool {
    let description = error.description();
    description.starts_with("unclosed array") || description.starts_with("unclosed inline table")
}

/// What checks after parsing found wrong in a file (references between
/// sections, values the schema cannot check), every one of them, each
/// located at the line of its key.
#[derive(Debug)]
pub struct SemanticErrors {
    path: PathBuf,
    /// Located messages, in the order found, without repeats.
    messages: Vec<String>,
}

impl SemanticErrors {
    /// `Ok` when `messages` is empty; otherwise every message, located in
    /// the file at `path` by the key it starts with (see [`locate_message`]).
    pub fn check(path: &Path, messages: Vec<String>) -> Result<(), Self> {
        if messages.is_empty() {
            return Ok(());
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut located: Vec<String> = Vec::new();
        for message in messages {
            let message = locate_message(path, &text, &message);
            if !located.contains(&message) {
                located.push(message);
            }
        }
        Err(Self {
            path: path.to_path_buf(),
            messages: located,
        })
    }

    /// The located messages.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

impl fmt::Display for SemanticErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.messages.as_slice() {
            [one] => f.write_str(one),
            many => {
                write!(f, "{}: {} errors:", self.path.display(), many.len())?;
                for message in many {
                    write!(f, "\n  {message}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SemanticErrors {}

/// Prefixes `message` with `path:line:column: ` when it starts with a key
/// path (`services.www.fallback: ...`, as semantic checks write them) that
/// `text` holds, or with `path: ` otherwise: so that errors found after
/// parsing point at the line as parse errors do.
pub fn locate_message(path: &Path, text: &str, message: &str) -> String {
    let position = message
        .split_once(": ")
        .and_then(|(key, _)| key_position(text, key));
    match position {
        Some((line, column)) => format!("{}:{line}:{column}: {message}", path.display()),
        None => format!("{}: {message}", path.display()),
    }
}

/// The 1-based line and column where the key at `key` (dotted, with quoted
/// keys and `[n]` array items, as error messages write it) is written in
/// `text`; for a path only partly present, where the deepest present part is.
pub fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let segments = key_segments(key)?;
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut value: Option<&toml::de::DeValue<'_>> = None;
    let mut found: Option<usize> = None;
    for segment in &segments {
        match segment {
            KeySegment::Key(name) => {
                if let Some(toml::de::DeValue::Table(inner)) = value {
                    table = inner;
                } else if value.is_some() {
                    break;
                }
                let Some((spanned_key, spanned_value)) =
                    table.iter().find(|(k, _)| k.get_ref().as_ref() == name)
                else {
                    break;
                };
                found = Some(spanned_key.span().start);
                value = Some(spanned_value.get_ref());
            }
            KeySegment::Index(index) => {
                let Some(toml::de::DeValue::Array(items)) = value else {
                    break;
                };
                let Some(item) = items.get(*index) else {
                    break;
                };
                found = Some(item.span().start);
                value = Some(item.get_ref());
            }
        }
    }
    found.map(|offset| line_and_column(text, offset))
}

/// One step of a key path.
#[derive(Debug, PartialEq)]
enum KeySegment {
    Key(String),
    Index(usize),
}

/// Splits `a.b."c.d"[2].e` into its steps; `None` when it is no key path.
fn key_segments(key: &str) -> Option<Vec<KeySegment>> {
    let mut segments = Vec::new();
    let mut rest = key;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"')?;
            segments.push(KeySegment::Key(after[..end].to_string()));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            segments.push(KeySegment::Index(after[..end].parse().ok()?));
            rest = &after[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return None;
            }
            segments.push(KeySegment::Key(name.to_string()));
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    (!segments.is_empty()).then_some(segments)
}

/// Renders serde_path_to_error's path as dotted keys with `[n]` for array items.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                // Keys that hold dots (zone names) are quoted, as in TOML.
                if key.contains(['.', ' ', '"']) || key.is_empty() {
                    out.push_str(&format!("{key:?}"));
                } else {
                    out.push_str(key);
                }
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Parser messages sometimes end in a newline; error lines should not.
fn tidy_message(message: &str) -> String {
    message.trim().to_string()
}

/// Converts a byte offset into 1-based line and character column.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::units::Duration;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Service {
        ttl: Duration,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        #[serde(default)]
        name: String,
        #[serde(default)]
        services: BTreeMap<String, Service>,
    }

    fn error_text(toml: &str) -> String {
        parse::<Root>("geodns.toml", toml)
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn every_syntax_error_is_reported_one_per_line() {
        let text = "name = \"a\"\n[services.www\nttl = \"5s\"\n[other]\nx = = 1\nbad key = 1\n";
        let error = error_text(text);
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 3, "{error}");
        assert!(lines[0].starts_with("geodns.toml:2:14: "), "{error}");
        assert!(lines[1].starts_with("geodns.toml:5:5: "), "{error}");
        assert!(lines[2].starts_with("geodns.toml:6:5: "), "{error}");
    }

    #[test]
    fn an_unclosed_array_is_named_where_it_opens_not_at_every_line_after() {
        let text = "name = \"a\"\nlist = [1,\nttl = \"5s\"\nx = 2\ny = 3\n";
        let error = error_text(text);
        assert!(error.contains("geodns.toml:2:8: unclosed array"), "{error}");
        assert!(error.lines().count() <= 2, "{error}");
    }

    #[test]
    fn key_positions_follow_tables_arrays_and_quoted_keys() {
        let text = "[zones.\"cdn.test\"]\nttl = \"1h\"\n\n[[zones.\"cdn.test\".records]]\nname = \"a\"\n\n[[zones.\"cdn.test\".records]]\nname = \"b\"\n\n[services.www]\nfallback = { region = \"mars\" }\n";
        assert_eq!(key_position(text, "services.www.fallback"), Some((11, 1)));
        assert_eq!(
            key_position(text, "services.www.fallback.region"),
            Some((11, 14))
        );
        assert_eq!(
            key_position(text, "zones.\"cdn.test\".records[1]"),
            Some((7, 1))
        );
        assert_eq!(key_position(text, "zones.\"cdn.test\".ttl"), Some((2, 1)));
        // Partly present: the deepest part.
        assert_eq!(key_position(text, "services.www.answers"), Some((10, 11)));
        // A wildcard names no single place.
        assert_eq!(key_position(text, "services.*.health"), None);
        assert_eq!(key_position(text, "not a key"), None);
        assert_eq!(
            locate_message(Path::new("g.toml"), text, "services.www.fallback: no edge"),
            "g.toml:11:1: services.www.fallback: no edge"
        );
        assert_eq!(
            locate_message(Path::new("g.toml"), text, "cannot open x.mmdb"),
            "g.toml: cannot open x.mmdb"
        );
    }

    #[test]
    fn bad_duration_names_file_line_column_and_key() {
        let text = "name = \"x\"\n\n[services.cdn]\n  ttl = \"30x\"\n";
        let message = error_text(text);
        assert!(
            message.starts_with("geodns.toml:4:9: services.cdn.ttl: invalid duration \"30x\""),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_is_rejected_with_its_location() {
        let message = error_text("[services.cdn]\nttl = \"30s\"\ntll = \"5s\"\n");
        assert!(
            message.starts_with("geodns.toml:3:1: services.cdn"),
            "{message}"
        );
        assert!(message.contains("unknown field `tll`"), "{message}");
    }

    #[test]
    fn dotted_keys_are_quoted() {
        let message = error_text("[services.\"cdn.example.com\"]\nttl = \"1x\"\n");
        assert!(
            message.starts_with("geodns.toml:2:7: services.\"cdn.example.com\".ttl:"),
            "{message}"
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let message = error_text("name = \n");
        assert!(message.starts_with("geodns.toml:1:"), "{message}");
    }

    #[test]
    fn valid_config_parses() {
        let root: Root = parse("x.toml", "[services.a]\nttl = \"2m\"\n").expect("valid");
        assert_eq!(
            root.services["a"].ttl.as_std(),
            std::time::Duration::from_secs(120)
        );
        assert_eq!(root.name, "");
    }

    #[test]
    fn missing_file_names_the_path() {
        let message = load::<Root>("/nonexistent/geodns.toml")
            .expect_err("missing")
            .to_string();
        assert!(
            message.starts_with("/nonexistent/geodns.toml: cannot read"),
            "{message}"
        );
    }

    #[test]
    fn column_counts_characters_not_bytes() {
        assert_eq!(line_and_column("é = 1\nab", 8), (2, 2));
    }
}
