//! RFC 9111 behaviour of the real edge binary in front of a real origin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use common::{EdgeProcess, get, send};
use e2e::origin::{Origin, Reply};

#[tokio::test]
async fn miss_then_hit_with_age() {
    let origin = Origin::start(|_| Reply::ok("hello", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let first = get(edge.http, "/a", &[]).await;
    assert_eq!(first.cache(), "MISS");
    assert_eq!(first.body, "hello");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = get(edge.http, "/a", &[]).await;
    assert_eq!(second.cache(), "HIT");
    assert_eq!(second.body, "hello");
    assert!(second.header("age").unwrap().parse::<u64>().unwrap() >= 1);
    assert!(second.header("via").unwrap().contains("edge-test"));
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn freshness_sources_expire() {
    let origin = Origin::start(|seen| match seen.uri.as_str() {
        "/max-age" => Reply::ok("m", &[("cache-control", "max-age=2")]),
        "/s-maxage" => Reply::ok("s", &[("cache-control", "max-age=60, s-maxage=2")]),
        "/expires" => {
            let expires =
                httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
            Reply::ok("e", &[("expires", &expires)])
        }
        _ => Reply::ok("x", &[]),
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    for path in ["/max-age", "/s-maxage", "/expires"] {
        assert_eq!(get(edge.http, path, &[]).await.cache(), "MISS", "{path}");
        assert_eq!(get(edge.http, path, &[]).await.cache(), "HIT", "{path}");
    }
    // Whole-second dates: 2 s lifetimes are surely over after 4 s.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    for path in ["/max-age", "/s-maxage", "/expires"] {
        assert_eq!(
            get(edge.http, path, &[]).await.cache(),
            "MISS",
            "{path} expired"
        );
    }
    assert_eq!(origin.requests(), 6);
}

#[tokio::test]
async fn not_stored_no_store_private_cookie_authorization() {
    let origin = Origin::start(|seen| match seen.uri.as_str() {
        "/no-store" => Reply::ok("x", &[("cache-control", "no-store, max-age=60")]),
        "/private" => Reply::ok("x", &[("cache-control", "private, max-age=60")]),
        "/cookie" => Reply::ok(
            "x",
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
        ),
        "/public-auth" => Reply::ok("x", &[("cache-control", "public, max-age=60")]),
        _ => Reply::ok("x", &[("cache-control", "max-age=60")]),
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    for path in ["/no-store", "/private", "/cookie"] {
        get(edge.http, path, &[]).await;
        assert_ne!(get(edge.http, path, &[]).await.cache(), "HIT", "{path}");
    }
    get(edge.http, "/auth", &[("authorization", "Bearer x")]).await;
    assert_ne!(
        get(edge.http, "/auth", &[("authorization", "Bearer x")])
            .await
            .cache(),
        "HIT"
    );
    get(edge.http, "/public-auth", &[("authorization", "Bearer x")]).await;
    assert_eq!(
        get(edge.http, "/public-auth", &[("authorization", "Bearer x")])
            .await
            .cache(),
        "HIT"
    );
}

#[tokio::test]
async fn odd_request_headers_do_not_switch_caching_off() {
    let origin = Origin::start(|_| Reply::ok("x", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let odd = [("cache-control", "nothing-to-see-here"), ("pragma", "foo")];
    get(edge.http, "/odd", &odd).await;
    assert_eq!(get(edge.http, "/odd", &odd).await.cache(), "HIT");
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn vary_stores_variants() {
    let origin = Origin::start(|seen| {
        let language = seen
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(
            language,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    assert_eq!(
        get(edge.http, "/v", &[("accept-language", "en")])
            .await
            .body,
        "en"
    );
    assert_eq!(
        get(edge.http, "/v", &[("accept-language", "de")])
            .await
            .body,
        "de"
    );
    let english = get(edge.http, "/v", &[("accept-language", "en")]).await;
    assert_eq!((english.cache(), &english.body[..]), ("HIT", &b"en"[..]));
    let german = get(edge.http, "/v", &[("accept-language", "de")]).await;
    assert_eq!((german.cache(), &german.body[..]), ("HIT", &b"de"[..]));
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn revalidation_with_etag_and_last_modified() {
    let origin = Origin::start(|seen| {
        let matches = seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"");
        let since = seen.headers.contains_key("if-modified-since");
        if matches || (seen.uri == "/lm" && since) {
            return Reply::ok("", &[("cache-control", "max-age=2")]).status(304);
        }
        match seen.uri.as_str() {
            "/lm" => Reply::ok(
                "lm-body",
                &[
                    ("cache-control", "max-age=2"),
                    ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ],
            ),
            _ => Reply::ok(
                "etag-body",
                &[("cache-control", "max-age=2"), ("etag", "\"v1\"")],
            ),
        }
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    for (path, body) in [("/etag", "etag-body"), ("/lm", "lm-body")] {
        assert_eq!(get(edge.http, path, &[]).await.cache(), "MISS");
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let refreshed = get(edge.http, path, &[]).await;
        assert_eq!(refreshed.cache(), "REVALIDATED", "{path}");
        assert_eq!(refreshed.body, body);
        assert_eq!(
            get(edge.http, path, &[]).await.cache(),
            "HIT",
            "{path}: fresh again"
        );
    }
    let conditional: Vec<_> = origin
        .seen()
        .into_iter()
        .filter(|s| {
            s.headers.contains_key("if-none-match") || s.headers.contains_key("if-modified-since")
        })
        .collect();
    assert_eq!(conditional.len(), 2);
}

#[tokio::test]
async fn client_conditionals_ranges_and_head_from_cache() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "0123456789abcdefghij",
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"tag\""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/r", &[]).await;
    let not_modified = get(edge.http, "/r", &[("if-none-match", "\"tag\"")]).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some("\"tag\""));
    let since = get(
        edge.http,
        "/r",
        &[("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT")],
    )
    .await;
    assert_eq!(since.status, 304);
    let range = get(edge.http, "/r", &[("range", "bytes=5-9")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.body, "56789");
    assert_eq!(range.header("content-range"), Some("bytes 5-9/20"));
    let suffix = get(edge.http, "/r", &[("range", "bytes=-3")]).await;
    assert_eq!(suffix.body, "hij");
    let beyond = get(edge.http, "/r", &[("range", "bytes=50-")]).await;
    assert_eq!(beyond.status, 416);
    let head = send(edge.http, "HEAD", "/r", &[], b"").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.cache(), "HIT");
    assert_eq!(head.header("content-length"), Some("20"));
    assert!(head.body.is_empty());
    assert_eq!(origin.requests(), 1);
    // The origin never saw a client's validators or ranges.
    assert!(
        origin
            .seen()
            .iter()
            .all(|s| !s.headers.contains_key("range"))
    );
}

#[tokio::test]
async fn client_preconditions_read_entity_tag_lists_and_dates_as_typed_fields() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "0123456789",
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1,2\""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/t", &[]).await;
    // A comma inside an entity tag does not split it.
    let listed = get(edge.http, "/t", &[("if-none-match", "\"x\", \"v1,2\"")]).await;
    assert_eq!(listed.status, 304);
    let halves = get(edge.http, "/t", &[("if-none-match", "\"v1\", \"2\"")]).await;
    assert_eq!(halves.status, 200);
    // A space has no place inside a tag: no tag, no match.
    let spaced = get(edge.http, "/t", &[("if-none-match", "\"v1, 2\"")]).await;
    assert_eq!(spaced.status, 200);
    // Every field line counts.
    let lines = get(
        edge.http,
        "/t",
        &[("if-none-match", "\"x\""), ("if-none-match", "W/\"v1,2\"")],
    )
    .await;
    assert_eq!(lines.status, 304);
    // If-Match uses strong comparison and fails with 412.
    let matched = get(edge.http, "/t", &[("if-match", "\"v1,2\"")]).await;
    assert_eq!(matched.status, 200);
    let mismatched = get(edge.http, "/t", &[("if-match", "\"v1\"")]).await;
    assert_eq!(mismatched.status, 412);
    // If-Range compares dates as dates (RFC 850 form of the same instant),
    // and an entity tag with a comma as one tag.
    let same_date = get(
        edge.http,
        "/t",
        &[
            ("range", "bytes=0-3"),
            ("if-range", "Monday, 01-Jan-24 00:00:00 GMT"),
        ],
    )
    .await;
    assert_eq!(same_date.status, 206);
    assert_eq!(same_date.body, "0123");
    let later = get(
        edge.http,
        "/t",
        &[
            ("range", "bytes=0-3"),
            ("if-range", "Tue, 02 Jan 2024 00:00:00 GMT"),
        ],
    )
    .await;
    assert_eq!(later.status, 200);
    assert_eq!(later.body, "0123456789");
    let tagged = get(
        edge.http,
        "/t",
        &[("range", "bytes=4-"), ("if-range", "\"v1,2\"")],
    )
    .await;
    assert_eq!(tagged.status, 206);
    assert_eq!(tagged.body, "456789");
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn stale_if_error_and_grace_when_the_origin_is_down() {
    let mut origin =
        Origin::start(|_| Reply::ok("kept", &[("cache-control", "max-age=1, stale-if-error=60")]))
            .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/s", &[]).await;
    origin.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stale = get(edge.http, "/s", &[]).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.cache(), "STALE");
    assert_eq!(stale.body, "kept");
    // Without anything cached, the client gets a clear 502.
    assert_eq!(get(edge.http, "/never", &[]).await.status, 502);
}

#[tokio::test]
async fn stale_on_origin_5xx_but_not_with_must_revalidate() {
    let flip = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failing = flip.clone();
    let origin = Origin::start(move |seen| {
        if failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Reply::ok("down", &[]).status(503);
        }
        match seen.uri.as_str() {
            "/strict" => Reply::ok("strict", &[("cache-control", "max-age=1, must-revalidate")]),
            _ => Reply::ok("soft", &[("cache-control", "max-age=1")]),
        }
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "grace = \"1h\"", "");
    get(edge.http, "/soft", &[]).await;
    get(edge.http, "/strict", &[]).await;
    flip.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let soft = get(edge.http, "/soft", &[]).await;
    assert_eq!((soft.status.as_u16(), soft.cache()), (200, "STALE"));
    let strict = get(edge.http, "/strict", &[]).await;
    assert_eq!(strict.status, 503, "must-revalidate forbids serving stale");
}

#[tokio::test]
async fn stale_while_revalidate_answers_now_and_refreshes_once() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "v",
            &[("cache-control", "max-age=3, stale-while-revalidate=30")],
        )
        .delayed(Duration::from_millis(300))
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/swr", &[]).await;
    // Date has whole seconds: wait long enough for max-age=3 to pass for sure.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let started = std::time::Instant::now();
    let results = futures_util::future::join_all((0..5).map(|_| get(edge.http, "/swr", &[]))).await;
    assert!(
        started.elapsed() < Duration::from_millis(280),
        "stale answers do not wait for the origin"
    );
    assert!(results.iter().all(|got| got.cache() == "STALE"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(origin.requests(), 2, "one background refresh");
    assert_eq!(get(edge.http, "/swr", &[]).await.cache(), "HIT");
}

#[tokio::test]
async fn concurrent_misses_make_one_origin_request() {
    let origin = Origin::start(|_| {
        Reply::ok("slow", &[("cache-control", "max-age=60")]).delayed(Duration::from_millis(500))
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let started = std::time::Instant::now();
    let results =
        futures_util::future::join_all((0..50).map(|_| get(edge.http, "/hot", &[]))).await;
    assert!(
        results
            .iter()
            .all(|got| got.status == 200 && got.body == "slow")
    );
    assert_eq!(origin.requests(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn uncacheable_coalesced_response_releases_waiters_together() {
    let origin = Origin::start(|_| {
        Reply::ok("private", &[("cache-control", "no-store")]).delayed(Duration::from_millis(400))
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let started = std::time::Instant::now();
    let results = futures_util::future::join_all((0..20).map(|_| get(edge.http, "/ns", &[]))).await;
    assert!(results.iter().all(|got| got.status == 200));
    // One round trip to learn it is not storable, then everyone in parallel.
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    // The next wave does not wait at all.
    let again = get(edge.http, "/ns", &[]).await;
    assert_eq!(again.cache(), "BYPASS");
}

#[tokio::test]
async fn unsafe_methods_pass_with_bodies_and_invalidate() {
    let origin = Origin::start(|seen| match seen.method.as_str() {
        "POST" => Reply::ok(
            format!("got {}", seen.body.len()),
            &[("location", "/other")],
        )
        .status(201),
        _ => Reply::ok("x", &[("cache-control", "max-age=60")]),
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/item", &[]).await;
    get(edge.http, "/other", &[]).await;
    assert_eq!(get(edge.http, "/item", &[]).await.cache(), "HIT");
    let posted = send(edge.http, "POST", "/item", &[], &[7u8; 1000]).await;
    assert_eq!(posted.status, 201);
    assert_eq!(posted.body, "got 1000");
    assert_eq!(
        get(edge.http, "/item", &[]).await.cache(),
        "MISS",
        "target invalidated"
    );
    assert_eq!(
        get(edge.http, "/other", &[]).await.cache(),
        "MISS",
        "Location invalidated"
    );
}

#[tokio::test]
async fn large_objects_stream_through_uncached() {
    let big = vec![b'z'; 3 * 1024 * 1024];
    let body = bytes::Bytes::from(big.clone());
    let origin =
        Origin::start(move |_| Reply::ok(body.clone(), &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let first = get(edge.http, "/big", &[]).await;
    assert_eq!(first.body.len(), big.len());
    let second = get(edge.http, "/big", &[]).await;
    assert_eq!(second.body.len(), big.len());
    assert_eq!(origin.requests(), 2, "over max_object_size: not stored");
}

#[tokio::test]
async fn failover_to_the_next_origin() {
    let dead: std::net::SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let origin = Origin::start(|_| Reply::ok("second", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[dead, origin.address()], "", "");
    let got = get(edge.http, "/f", &[]).await;
    assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"second"[..]));
}

#[tokio::test]
async fn targeted_cache_control_wins_and_is_not_forwarded() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "t",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let first = get(edge.http, "/t", &[]).await;
    assert!(first.header("cdn-cache-control").is_none());
    assert_eq!(
        first.header("cache-control"),
        Some("no-store"),
        "clients still see the origin's Cache-Control"
    );
    assert_eq!(get(edge.http, "/t", &[]).await.cache(), "HIT");
}

#[tokio::test]
async fn empty_or_malformed_targeted_fields_leave_cache_control_in_force() {
    for targeted in [
        "",
        "max-age=\"60\"",
        "max-age=60,",
        "max-age=-1",
        "public=1",
    ] {
        let origin = Origin::start(move |_| {
            Reply::ok(
                "t",
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", targeted),
                ],
            )
        })
        .await;
        let edge = EdgeProcess::start(&[origin.address()], "", "");
        assert_eq!(get(edge.http, "/t", &[]).await.cache(), "MISS");
        assert_ne!(
            get(edge.http, "/t", &[]).await.cache(),
            "HIT",
            "CDN-Cache-Control: {targeted:?} must not override no-store"
        );
        assert_eq!(origin.requests(), 2, "{targeted:?}");
    }
}

#[tokio::test]
async fn a_targeted_field_decides_freshness_without_expires() {
    let origin = Origin::start(|_| {
        let expires = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        Reply::ok(
            "t",
            &[
                ("cdn-cache-control", "must-revalidate"),
                ("expires", &expires),
            ],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/t", &[]).await;
    assert_ne!(get(edge.http, "/t", &[]).await.cache(), "HIT");
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn targeted_fields_stay_in_force_after_a_revalidation() {
    let origin = Origin::start(|seen| {
        let headers = [
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=1"),
        ];
        if seen.headers.get("if-none-match").is_some() {
            return Reply::ok("", &[("etag", "\"v\"")]).status(304);
        }
        Reply::ok("t", &[headers[0], headers[1], ("etag", "\"v\"")])
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    assert_eq!(get(edge.http, "/t", &[]).await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get(edge.http, "/t", &[]).await.cache(), "REVALIDATED");
    let after = get(edge.http, "/t", &[]).await;
    assert_eq!(
        after.cache(),
        "HIT",
        "the 304 renewed the max-age=1 of the stored field"
    );
    assert!(after.header("cdn-cache-control").is_none());
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn targeted_fields_are_forwarded_when_configured() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "t",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "forward_targeted = true", "");
    assert_eq!(
        get(edge.http, "/t", &[]).await.header("cdn-cache-control"),
        Some("max-age=60")
    );
    let hit = get(edge.http, "/t", &[]).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.header("cdn-cache-control"), Some("max-age=60"));
}

#[tokio::test]
async fn a_206_to_a_request_for_the_whole_object_leaves_the_url_cacheable() {
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    let origin = Origin::start(move |_| {
        let headers = [("cache-control", "max-age=60")];
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::ok("who", &[headers[0], ("content-range", "bytes 0-2/5")]).status(206);
        }
        Reply::ok("whole", &headers)
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    assert_eq!(get(edge.http, "/r", &[]).await.status, 206);
    let second = get(edge.http, "/r", &[]).await;
    assert_eq!((second.cache(), &second.body[..]), ("MISS", &b"whole"[..]));
    assert_eq!(get(edge.http, "/r", &[]).await.cache(), "HIT");
    let ranged = get(edge.http, "/r", &[("range", "bytes=1-2")]).await;
    assert_eq!(
        (ranged.status.as_u16(), &ranged.body[..]),
        (206, &b"ho"[..])
    );
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn hit_for_miss_ends_when_the_origin_sends_a_cacheable_response() {
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    let origin = Origin::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::ok("private", &[("cache-control", "no-store")]);
        }
        Reply::ok("public", &[("cache-control", "max-age=60")])
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    assert_eq!(get(edge.http, "/h", &[]).await.cache(), "MISS");
    assert_eq!(get(edge.http, "/h", &[]).await.cache(), "BYPASS");
    assert_eq!(get(edge.http, "/h", &[]).await.cache(), "MISS");
    assert_eq!(get(edge.http, "/h", &[]).await.cache(), "HIT");
    assert_eq!(origin.requests(), 3);
}

#[tokio::test]
async fn request_loops_are_refused() {
    let origin = Origin::start(|_| Reply::ok("x", &[])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let got = get(edge.http, "/l", &[("via", "1.1 edge-test")]).await;
    assert_eq!(got.status, 508);
    assert_eq!(origin.requests(), 0);
}

#[tokio::test]
async fn no_cache_is_stored_but_revalidated_every_time() {
    let origin = Origin::start(|seen| {
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"n\"")
        {
            return Reply::ok("", &[("cache-control", "no-cache"), ("etag", "\"n\"")]).status(304);
        }
        Reply::ok("body", &[("cache-control", "no-cache"), ("etag", "\"n\"")])
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    assert_eq!(get(edge.http, "/nc", &[]).await.cache(), "MISS");
    for _ in 0..3 {
        let got = get(edge.http, "/nc", &[]).await;
        assert_eq!((got.cache(), &got.body[..]), ("REVALIDATED", &b"body"[..]));
    }
    assert_eq!(origin.requests(), 4);
}

#[tokio::test]
async fn path_rules_override_origin_freshness() {
    let origin = Origin::start(|_| Reply::ok("r", &[("cache-control", "max-age=0")])).await;
    let edge = EdgeProcess::start(
        &[origin.address()],
        "[[cache.rules]]\nprefix = \"/static/\"\nttl = \"1h\"\n[[cache.rules]]\nglob = \"/img/*.png\"\nttl = \"1h\"",
        "",
    );
    for path in ["/static/app.js", "/img/a/logo.png"] {
        get(edge.http, path, &[]).await;
        assert_eq!(get(edge.http, path, &[]).await.cache(), "HIT", "{path}");
    }
    get(edge.http, "/other", &[]).await;
    assert_ne!(get(edge.http, "/other", &[]).await.cache(), "HIT");
}

#[tokio::test]
async fn oversized_request_body_is_refused() {
    let origin = Origin::start(|_| Reply::ok("x", &[])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    // Announce 65 MiB (over the 64 MiB default) and send only the head: the
    // edge answers before reading any of it.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    stream
        .write_all(b"PUT /upload HTTP/1.1\r\nHost: site.test\r\nContent-Length: 68157440\r\n\r\n")
        .await
        .unwrap();
    let mut response = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response[..read]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(origin.requests(), 0);
}

#[tokio::test]
async fn http2_clients_are_served_from_the_cache() {
    use http_body_util::{BodyExt, Empty};
    let origin = Origin::start(|_| Reply::ok("h2", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    for expected in ["MISS", "HIT"] {
        let request = hyper::Request::get(format!("http://{}/h2", edge.http))
            .body(Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        assert_eq!(response.headers()["x-cache"], expected);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "h2"
        );
    }
}

#[tokio::test]
async fn qualified_no_cache_and_connection_listed_fields_are_not_stored() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "q",
            &[
                ("cache-control", "max-age=60, no-cache=\"a\""),
                ("a", "1"),
                ("b", "2"),
                ("connection", "c"),
                ("c", "3"),
            ],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/q", &[]).await;
    let cached = get(edge.http, "/q", &[]).await;
    assert_eq!(cached.cache(), "HIT");
    assert_eq!(cached.header("b"), Some("2"));
    assert!(cached.header("a").is_none(), "no-cache=\"a\" field stored");
    assert!(
        cached.header("c").is_none(),
        "Connection-listed field stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_served_whole_and_in_ranges_over_both_protocols() {
    use http_body_util::{BodyExt, Empty};
    // Large enough to be kept in a sealed memory file and sent with
    // sendfile, and to be sealed off the request's thread (1 MiB, the
    // harness's largest storable object).
    let body: bytes::Bytes = (0..1_048_576u32)
        .map(|index| (index % 253) as u8)
        .collect::<Vec<_>>()
        .into();
    let served = body.clone();
    let origin =
        Origin::start(move |_| Reply::ok(served.clone(), &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    for expected in ["MISS", "HIT", "HIT"] {
        let got = get(edge.http, "/large", &[]).await;
        assert_eq!(got.cache(), expected, "{}", edge.log());
        assert!(got.body == body, "HTTP/1.1 body differs ({expected})");
    }
    let range = get(edge.http, "/large", &[("range", "bytes=100000-199999")]).await;
    assert_eq!(range.status, 206);
    assert!(range.body == body.slice(100_000..200_000), "range differs");
    let head = send(edge.http, "HEAD", "/large", &[], b"").await;
    assert_eq!(head.header("content-length"), Some("1048576"));
    assert!(head.body.is_empty());

    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    // (Its authority differs from the Host above: a key of its own.)
    for expected in ["MISS", "HIT"] {
        let request = hyper::Request::get(format!("http://{}/large", edge.http))
            .body(Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.headers()["x-cache"], expected);
        let h2_body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(h2_body == body, "HTTP/2 body differs ({expected})");
    }
    assert_eq!(origin.requests(), 2);
    // Both copies live in sealed memory files (what lets HTTP/1 hits go
    // out with sendfile).
    let memfds = std::fs::read_dir(format!("/proc/{}/fd", edge.process.pid()))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("memfd:edge-body"))
        .count();
    assert_eq!(memfds, 2);
}

#[tokio::test]
async fn an_expired_key_is_revalidated_once_for_many_clients() {
    let origin = Origin::start(|_| {
        Reply::ok("v", &[("cache-control", "max-age=1")]).delayed(Duration::from_millis(400))
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    assert_eq!(get(edge.http, "/expiring", &[]).await.body, "v");
    // Whole-second dates: the copy is surely stale after 2.1 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let results =
        futures_util::future::join_all((0..50).map(|_| get(edge.http, "/expiring", &[]))).await;
    assert!(
        results
            .iter()
            .all(|got| got.status == 200 && got.body == "v")
    );
    assert_eq!(origin.requests(), 2, "one revalidation for 50 clients");
    // Within grace the others got the stale copy instead of waiting.
    let stale = results.iter().filter(|got| got.cache() == "STALE").count();
    assert!(stale >= 40, "{stale} of 50 served stale");
}

#[tokio::test]
async fn without_grace_clients_of_an_expired_key_wait_for_one_fetch() {
    let origin = Origin::start(|_| {
        Reply::ok("m", &[("cache-control", "max-age=1, must-revalidate")])
            .delayed(Duration::from_millis(400))
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    get(edge.http, "/strict", &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let results =
        futures_util::future::join_all((0..50).map(|_| get(edge.http, "/strict", &[]))).await;
    assert!(
        results
            .iter()
            .all(|got| got.status == 200 && got.body == "m")
    );
    assert!(results.iter().all(|got| got.cache() != "STALE"));
    assert_eq!(origin.requests(), 2, "waiters share the one fetch");
}

#[tokio::test]
async fn objects_up_to_the_maximum_size_are_stored_in_a_small_cache() {
    let body = vec![b'x'; 10 << 20];
    let origin =
        Origin::start(move |_| Reply::ok(body.clone(), &[("cache-control", "max-age=60")])).await;
    // 64 MiB over four shards per CPU would leave less than 10 MiB a shard.
    let edge = EdgeProcess::start(
        &[origin.address()],
        "capacity = \"64MiB\"\nmax_object_size = \"16MiB\"",
        "",
    );
    assert_eq!(get(edge.http, "/big", &[]).await.body.len(), 10 << 20);
    let again = get(edge.http, "/big", &[]).await;
    assert_eq!(again.cache(), "HIT");
    assert_eq!(again.body.len(), 10 << 20);
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn misses_beyond_the_fill_memory_stream_unstored_and_are_stored_later() {
    let body = bytes::Bytes::from(
        (0..3 << 20)
            .map(|n: u32| (n % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let served = body.clone();
    let length = body.len().to_string();
    // Each body stops after 64 KiB for 2 s: the fills overlap. Its length is
    // announced, so the first fill reserves it all at once.
    let origin = Origin::start(move |_| {
        Reply::ok(
            served.clone(),
            &[("cache-control", "max-age=60"), ("content-length", &length)],
        )
        .paused_after(64 * 1024, Duration::from_secs(2))
    })
    .await;
    let edge = EdgeProcess::start(
        &[origin.address()],
        // Each shard evicts past its share of capacity: a large capacity gives
        // every shard room for all five bodies, wherever they hash.
        "capacity = \"1GiB\"\nmax_object_size = \"4MiB\"\nfill_memory = \"4MiB\"",
        "",
    );
    let paths: Vec<String> = (0..5).map(|n| format!("/file/{n}")).collect();
    let first =
        futures_util::future::join_all(paths.iter().map(|path| get(edge.http, path, &[]))).await;
    assert!(
        first
            .iter()
            .all(|got| got.status == 200 && got.body == body)
    );
    // Room for one 3 MiB fill in 4 MiB: those that overlapped it (all four
    // others unless the machine was slow to send them) streamed through.
    let no_room = common::metric(&edge, "edge_cache_not_stored_no_room_total").await;
    assert!((1..=4).contains(&no_room), "{no_room} fills found no room");
    assert_eq!(common::metric(&edge, "edge_cache_fill_bytes").await, 0);
    // Nothing was remembered against them: asked again one at a time, each is stored.
    let mut hits = 0;
    for path in &paths {
        let got = get(edge.http, path, &[]).await;
        assert_eq!(got.body, body);
        hits += u64::from(got.cache() == "HIT");
    }
    assert_eq!(
        hits,
        5 - no_room,
        "only the fills that had room were stored"
    );
    assert_eq!(common::metric(&edge, "edge_cache_evictions_total").await, 0);
    for path in &paths {
        assert_eq!(get(edge.http, path, &[]).await.cache(), "HIT");
    }
    assert_eq!(u64::try_from(origin.requests()).unwrap(), 5 + no_room);
}
