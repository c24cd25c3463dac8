//! `Cache-Control` and targeted fields (RFC 9111 section 5.2, RFC 9213 over
//! RFC 8941 dictionaries): any field lines parse without a panic, and the
//! lifetimes they give stay within the delta-seconds range.
#![no_main]

use edge::cache::Directives;
use edge::cache::directives::MAX_DELTA_SECONDS;
use hyper::header::HeaderValue;
use libfuzzer_sys::fuzz_target;

fn within_range(directives: &Directives) {
    for seconds in [
        directives.max_age,
        directives.s_maxage,
        directives.stale_while_revalidate,
        directives.stale_if_error,
    ]
    .into_iter()
    .flatten()
    {
        assert!(seconds <= MAX_DELTA_SECONDS, "{directives:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<HeaderValue> = data
        .split(|&byte| byte == b'\n')
        .filter_map(|line| HeaderValue::from_bytes(line).ok())
        .collect();
    let plain = Directives::parse(lines.iter());
    within_range(&plain);
    assert!(!plain.targeted);
    if let Some(targeted) = Directives::parse_targeted(lines.iter()) {
        within_range(&targeted);
        assert!(targeted.targeted);
    }
});
