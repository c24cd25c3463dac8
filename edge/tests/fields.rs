//! Fields that decide what is stored and for whom: every line of a varying
//! request field, normalised spellings, credentials, `Age` lists, fields
//! kept out of the shared copy, and GET requests with content.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{EdgeProcess, get, send};
use e2e::origin::{Origin, Reply};

/// Every cookie the origin saw, in order, as the page for that user.
fn cookie_page(seen: &e2e::origin::Seen) -> Reply {
    let cookies: Vec<String> = seen
        .headers
        .get_all("cookie")
        .iter()
        .map(|value| value.to_str().unwrap_or("").to_string())
        .collect();
    Reply::ok(
        cookies.join("; "),
        &[("cache-control", "max-age=60"), ("vary", "Cookie")],
    )
}

#[tokio::test]
async fn vary_cookie_compares_every_cookie_line() {
    let origin = Origin::start(cookie_page).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let alice = [("cookie", "theme=dark"), ("cookie", "user=alice")];
    let bob = [("cookie", "theme=dark"), ("cookie", "user=bob")];
    assert_eq!(
        get(edge.http, "/me", &alice).await.body,
        "theme=dark; user=alice"
    );
    let page = get(edge.http, "/me", &bob).await;
    assert_eq!(
        page.body, "theme=dark; user=bob",
        "bob got another user's page"
    );
    let again = get(edge.http, "/me", &alice).await;
    assert_eq!(
        (again.cache(), &again.body[..]),
        ("HIT", &b"theme=dark; user=alice"[..])
    );
    // The same cookies on one line are the same variant.
    let joined = get(edge.http, "/me", &[("cookie", "theme=dark; user=bob")]).await;
    assert_eq!(
        (joined.cache(), &joined.body[..]),
        ("HIT", &b"theme=dark; user=bob"[..])
    );
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn vary_cookie_over_http2_separates_users() {
    use http_body_util::{BodyExt, Empty};
    let origin = Origin::start(cookie_page).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    for user in ["alice", "bob", "alice", "bob"] {
        // HTTP/2 clients send one cookie field per cookie (RFC 9113 8.2.3).
        let request = hyper::Request::get(format!("http://{}/me", edge.http))
            .header("cookie", "theme=dark")
            .header("cookie", format!("user={user}"))
            .body(Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("theme=dark; user={user}"));
    }
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn accept_encoding_spellings_share_one_variant() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "encoded",
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    for spelling in [
        "gzip, br",
        "br,gzip",
        "GZIP;q=1.0, br",
        "br, gzip, x;q=0",
        "gzip,br",
    ] {
        get(edge.http, "/e", &[("accept-encoding", spelling)]).await;
    }
    assert_eq!(origin.requests(), 1, "one fetch for one set of codings");
    get(edge.http, "/e", &[("accept-encoding", "identity")]).await;
    assert_eq!(origin.requests(), 2, "another set is another variant");
}

#[tokio::test]
async fn accept_encoding_in_the_key_is_normalised_too() {
    let origin = Origin::start(|_| Reply::ok("k", &[("cache-control", "max-age=60")])).await;
    let edge = EdgeProcess::start(
        &[origin.address()],
        "key_headers = [\"accept-encoding\"]",
        "",
    );
    for spelling in ["gzip, br", "br,gzip", "BR, GZIP"] {
        get(edge.http, "/k", &[("accept-encoding", spelling)]).await;
    }
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn a_request_with_credentials_changes_nothing_for_others() {
    let origin = Origin::start(|seen| {
        let who = if seen.headers.contains_key("authorization") {
            "member"
        } else {
            "public"
        };
        Reply::ok(who, &[("cache-control", "max-age=60")])
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let member = [("authorization", "Bearer secret")];
    assert_eq!(get(edge.http, "/page", &member).await.body, "member");
    // Others are cached as usual, not passed for a while.
    assert_eq!(get(edge.http, "/page", &[]).await.cache(), "MISS");
    let public = get(edge.http, "/page", &[]).await;
    assert_eq!((public.cache(), &public.body[..]), ("HIT", &b"public"[..]));
    // And the stored page, which does not allow sharing, is not what a
    // request with credentials gets.
    let again = get(edge.http, "/page", &member).await;
    assert_ne!(again.cache(), "HIT");
    assert_eq!(again.body, "member");
    assert_eq!(origin.requests(), 3);
}

#[tokio::test]
async fn shared_responses_serve_requests_with_credentials() {
    let origin =
        Origin::start(|_| Reply::ok("shared", &[("cache-control", "public, max-age=60")])).await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let member = [("authorization", "Bearer secret")];
    get(edge.http, "/s", &member).await;
    assert_eq!(get(edge.http, "/s", &member).await.cache(), "HIT");
    assert_eq!(get(edge.http, "/s", &[]).await.cache(), "HIT");
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn the_first_age_member_counts() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "old",
            &[("cache-control", "max-age=3600"), ("age", "7200, 0")],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let first = get(edge.http, "/old", &[]).await;
    assert!(
        first.header("age").unwrap().parse::<u64>().unwrap() >= 7200,
        "{:?}",
        first.headers
    );
    let second = get(edge.http, "/old", &[]).await;
    assert_ne!(second.cache(), "HIT", "a response two hours old is stale");
}

#[tokio::test]
async fn fields_kept_from_others_reach_the_client_that_fetched() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "page",
            &[
                (
                    "cache-control",
                    "max-age=60, no-cache=\"set-cookie\", private=\"x-user\"",
                ),
                ("set-cookie", "session=abc"),
                ("x-user", "alice"),
            ],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let first = get(edge.http, "/p", &[]).await;
    assert_eq!(first.cache(), "MISS");
    assert_eq!(first.header("set-cookie"), Some("session=abc"));
    assert_eq!(first.header("x-user"), Some("alice"));
    let second = get(edge.http, "/p", &[]).await;
    assert_eq!(second.cache(), "HIT");
    assert!(second.header("set-cookie").is_none());
    assert!(second.header("x-user").is_none());
}

#[tokio::test]
async fn a_get_with_content_is_passed_with_it() {
    let origin = Origin::start(|seen| {
        Reply::ok(
            format!("{} {}", seen.method, String::from_utf8_lossy(&seen.body)),
            &[("cache-control", "max-age=60")],
        )
    })
    .await;
    let edge = EdgeProcess::start(&[origin.address()], "", "");
    let started = std::time::Instant::now();
    let searched = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        send(edge.http, "GET", "/search", &[], b"{\"q\":1}"),
    )
    .await
    .expect("the origin got the body it was promised");
    assert_eq!(searched.status, 200, "after {:?}", started.elapsed());
    assert_eq!(searched.body, "GET {\"q\":1}");
    // Not stored under a key that cannot tell bodies apart.
    let other = send(edge.http, "GET", "/search", &[], b"{\"q\":2}").await;
    assert_eq!(other.body, "GET {\"q\":2}");
    assert_eq!(origin.requests(), 2);
}
