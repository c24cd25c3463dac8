#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn parts(version: Version, target: &str, hosts: &[&str]) -> hyper::http::request::Parts {
    let mut builder = hyper::Request::get(target).version(version);
    for host in hosts {
        builder = builder.header(header::HOST, *host);
    }
    builder.body(()).unwrap().into_parts().0
}

fn admitted(version: Version, target: &str, hosts: &[&str]) -> Result<(String, String), Refusal> {
    let mut parts = parts(version, target, hosts);
    admit(&mut parts, &ServedHosts::default())?;
    assert_eq!(parts.headers.get_all(header::HOST).iter().count(), 1);
    Ok((
        parts.headers[header::HOST].to_str().unwrap().to_string(),
        parts.uri.to_string(),
    ))
}

#[test]
fn one_host_is_normalised_and_the_target_put_in_origin_form() {
    assert_eq!(
        admitted(Version::HTTP_11, "/a?b=1", &["Site.Test:80"]).unwrap(),
        ("site.test".into(), "/a?b=1".into())
    );
    assert_eq!(
        admitted(Version::HTTP_11, "/", &["site.test.:8080"])
            .unwrap()
            .0,
        "site.test:8080"
    );
    assert_eq!(
        admitted(Version::HTTP_11, "/", &["[2001:DB8::1]:443"])
            .unwrap()
            .0,
        "[2001:db8::1]:443"
    );
    assert_eq!(
        admitted(Version::HTTP_11, "/", &["192.0.2.1:"]).unwrap().0,
        "192.0.2.1"
    );
}

#[test]
fn over_tls_the_default_port_dropped_is_443() {
    let session = std::sync::Arc::new(crate::tls::TlsSession {
        names: std::sync::Arc::new(crate::tls::CertificateNames::new(["site.test"])),
        version: rustls::ProtocolVersion::TLSv1_3,
    });
    for (host, expected) in [
        ("site.test:443", "site.test"),
        ("site.test:80", "site.test:80"),
        ("site.test", "site.test"),
    ] {
        let mut parts = parts(Version::HTTP_11, "/", &[host]);
        parts.extensions.insert(session.clone());
        admit(&mut parts, &ServedHosts::default()).unwrap();
        assert_eq!(parts.headers[header::HOST], expected);
    }
}

#[test]
fn several_or_missing_hosts_are_refused() {
    assert_eq!(
        admitted(Version::HTTP_11, "/", &["a.test", "b.test"]).unwrap_err(),
        Refusal::SeveralHosts
    );
    assert_eq!(
        admitted(Version::HTTP_11, "/", &[]).unwrap_err(),
        Refusal::MissingHost
    );
    assert_eq!(
        admitted(Version::HTTP_10, "/", &[]).unwrap_err(),
        Refusal::MissingHost
    );
}

#[test]
fn authorities_that_could_merge_into_a_path_are_refused() {
    for bad in [
        "site.test/evil",
        "site.test?x",
        "user@site.test",
        "site test",
        "site.test:99999",
        "site.test:8o",
        "",
        "[::1",
        "a..b",
    ] {
        assert_eq!(
            admitted(Version::HTTP_11, "/", &[bad]).unwrap_err(),
            Refusal::InvalidAuthority,
            "{bad:?}"
        );
    }
}

#[test]
fn absolute_form_target_replaces_host() {
    assert_eq!(
        admitted(Version::HTTP_11, "http://Victim.Test/p", &["attacker.test"]).unwrap(),
        ("victim.test".into(), "/p".into())
    );
    // HTTP/1.1 must send Host even then; HTTP/1.0 need not.
    assert_eq!(
        admitted(Version::HTTP_11, "http://victim.test/p", &[]).unwrap_err(),
        Refusal::MissingHost
    );
    assert_eq!(
        admitted(Version::HTTP_10, "http://victim.test/p", &[])
            .unwrap()
            .0,
        "victim.test"
    );
}

#[test]
fn http2_authority_is_used_and_a_different_host_refused() {
    assert_eq!(
        admitted(Version::HTTP_2, "http://site.test/p", &[])
            .unwrap()
            .0,
        "site.test"
    );
    assert_eq!(
        admitted(Version::HTTP_2, "http://site.test/p", &["SITE.test"])
            .unwrap()
            .0,
        "site.test"
    );
    assert_eq!(
        admitted(Version::HTTP_2, "http://site.test/p", &["other.test"]).unwrap_err(),
        Refusal::ConflictingHost
    );
}

#[test]
fn connect_and_trace_are_refused() {
    for method in [Method::CONNECT, Method::TRACE] {
        let mut parts = hyper::Request::builder()
            .method(method.clone())
            .uri(if method == Method::CONNECT {
                "site.test:443"
            } else {
                "/"
            })
            .header(header::HOST, "site.test")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let refusal = admit(&mut parts, &ServedHosts::default()).unwrap_err();
        assert_eq!(refusal.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}

#[test]
fn only_served_hosts_pass_when_listed() {
    let served = ServedHosts::new(&["cdn.example.com".into(), "*.img.example.com".into()]).unwrap();
    for (host, ok) in [
        ("cdn.example.com", true),
        ("CDN.example.com:8080", true),
        ("a.img.example.com", true),
        ("img.example.com", false),
        ("evil.test", false),
        ("xcdn.example.com", false),
    ] {
        let mut parts = parts(Version::HTTP_11, "/", &[host]);
        assert_eq!(admit(&mut parts, &served).is_ok(), ok, "{host}");
    }
    assert!(ServedHosts::new(&["bad/host".into()]).is_err());
}

#[test]
fn rewriting_fields_are_dropped() {
    let mut parts = parts(Version::HTTP_11, "/", &["site.test"]);
    parts
        .headers
        .insert("x-forwarded-host", HeaderValue::from_static("evil.test"));
    parts
        .headers
        .insert("x-original-url", HeaderValue::from_static("/admin"));
    admit(&mut parts, &ServedHosts::default()).unwrap();
    assert!(!parts.headers.contains_key("x-forwarded-host"));
    assert!(!parts.headers.contains_key("x-original-url"));
}
