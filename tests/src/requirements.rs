//! What a test needs from the machine beyond the project's own binaries.
//!
//! A missing tool fails the test with the line that installs it: a test
//! that reports "ok" without having run would hide a broken setup. Setting
//! `GEOCDN_TESTS_ALLOW_MISSING=1` opts out explicitly: such tests then say
//! SKIPPED on stderr and return, and `tests/run.sh` counts them at the end.

/// The variable that lets tests whose tools are missing skip.
pub const ALLOW_MISSING: &str = "GEOCDN_TESTS_ALLOW_MISSING";

/// A file each skip is appended to (one line each), which `tests/run.sh`
/// counts at the end so that skipped tests never pass for run ones.
pub const SKIPPED_FILE: &str = "GEOCDN_TESTS_SKIPPED_FILE";

fn record_skip(what: &str, install: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os(SKIPPED_FILE) else {
        return;
    };
    // One short write in append mode: lines from parallel tests do not mix.
    let line = format!("{what} ({install})\n");
    if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Reports that `what` is missing: panics with `install` (how to get it),
/// or, when [`ALLOW_MISSING`] is set, says the test is skipped and returns
/// so the caller can return early.
pub fn missing(what: &str, install: &str) {
    if std::env::var_os(ALLOW_MISSING).is_some_and(|value| value == "1") {
        eprintln!("SKIPPED: {what} ({install}; {ALLOW_MISSING}=1 is set)");
        record_skip(what, install);
        return;
    }
    panic!("{what}: {install} (or set {ALLOW_MISSING}=1 to skip the tests that need it)");
}
