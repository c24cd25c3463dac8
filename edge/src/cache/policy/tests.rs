use hyper::header::HeaderValue;

use super::*;

fn decide_with(status: u16, headers: &[(&str, &str)], authorized: bool) -> Storability {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let directives = Directives::parse(map.get_all(header::CACHE_CONTROL).iter());
    let date = SystemTime::now();
    decide(&Response {
        method: &Method::GET,
        authorized,
        status: StatusCode::from_u16(status).unwrap(),
        headers: &map,
        directives: &directives,
        date,
        forced_ttl: None,
        default_ttl: Duration::ZERO,
        cache_set_cookie: false,
    })
}

fn store(seconds: u64) -> Storability {
    Storability::Store(Duration::from_secs(seconds))
}

#[test]
fn s_maxage_beats_max_age_beats_expires() {
    assert_eq!(
        decide_with(200, &[("cache-control", "max-age=10, s-maxage=20")], false),
        store(20)
    );
    assert_eq!(
        decide_with(
            200,
            &[
                ("cache-control", "max-age=10"),
                ("expires", "Thu, 01 Jan 2099 00:00:00 GMT")
            ],
            false
        ),
        store(10)
    );
    assert_eq!(decide_with(200, &[("expires", "0")], false), store(0));
}

#[test]
fn no_store_private_and_vary_star_are_refused() {
    assert!(matches!(
        decide_with(200, &[("cache-control", "no-store, max-age=60")], false),
        Storability::Refuse(_)
    ));
    assert!(matches!(
        decide_with(200, &[("cache-control", "private, max-age=60")], false),
        Storability::Refuse(_)
    ));
    assert!(matches!(
        decide_with(
            200,
            &[("cache-control", "max-age=60"), ("vary", "*")],
            false
        ),
        Storability::Refuse(_)
    ));
    assert!(matches!(
        decide_with(
            200,
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
            false
        ),
        Storability::Refuse(_)
    ));
}

#[test]
fn authorization_needs_explicit_permission() {
    assert!(matches!(
        decide_with(200, &[("cache-control", "max-age=60")], true),
        Storability::Refuse(_)
    ));
    assert_eq!(
        decide_with(200, &[("cache-control", "public, max-age=60")], true),
        store(60)
    );
    assert_eq!(
        decide_with(200, &[("cache-control", "s-maxage=60")], true),
        store(60)
    );
}

#[test]
fn other_statuses_need_explicit_freshness() {
    assert!(matches!(
        decide_with(
            302,
            &[("last-modified", "Thu, 01 Jan 2015 00:00:00 GMT")],
            false
        ),
        Storability::Refuse(_)
    ));
    assert_eq!(
        decide_with(302, &[("cache-control", "max-age=5")], false),
        store(5)
    );
    assert!(matches!(
        decide_with(500, &[], false),
        Storability::Refuse(_)
    ));
}

#[test]
fn heuristic_freshness_from_last_modified() {
    let old = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(1000));
    let Storability::Store(lifetime) = decide_with(200, &[("last-modified", &old)], false) else {
        panic!("refused");
    };
    assert!((99..=101).contains(&lifetime.as_secs()), "{lifetime:?}");
}

#[test]
fn nothing_to_go_on_is_not_stored() {
    assert!(matches!(
        decide_with(200, &[], false),
        Storability::Refuse(_)
    ));
    assert_eq!(decide_with(200, &[("etag", "\"x\"")], false), store(0));
    assert_eq!(
        decide_with(
            200,
            &[("cache-control", "nothing-to-see-here, max-age=30")],
            false
        ),
        store(30)
    );
}

#[test]
fn must_understand_overrides_no_store_for_known_statuses() {
    assert_eq!(
        decide_with(
            200,
            &[("cache-control", "max-age=60, must-understand, no-store")],
            false
        ),
        store(60)
    );
    assert!(matches!(
        decide_with(
            299,
            &[("cache-control", "max-age=60, must-understand, no-store")],
            false
        ),
        Storability::Refuse(_)
    ));
}
