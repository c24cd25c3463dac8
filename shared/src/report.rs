//! Turning an error and its causes into one line for people.
//!
//! Many errors already quote their cause in their own message
//! (`cannot open MaxMind database: i/o error: ...`), so printing the whole
//! chain repeats it. `describe` appends a cause only when the text so far
//! does not already contain it.

use std::error::Error;

/// One line: the error, then each cause not already mentioned.
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let part = current.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {source}")]
    struct Outer {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("context")]
    struct Context {
        #[source]
        inner: std::io::Error,
    }

    #[test]
    fn causes_already_quoted_are_not_repeated() {
        let error = Outer {
            source: std::io::Error::other("disk on fire"),
        };
        assert_eq!(describe(&error), "outer: disk on fire");
    }

    #[test]
    fn new_causes_are_appended() {
        let error = Context {
            inner: std::io::Error::other("disk on fire"),
        };
        assert_eq!(describe(&error), "context: disk on fire");
    }
}
