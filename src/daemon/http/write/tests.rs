use super::*;

fn req(headers: &[(&str, &str)]) -> Request {
    Request {
        method: "POST".into(),
        path: "/api/labels/save".into(),
        query: vec![],
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: vec![],
    }
}

#[test]
fn origins_must_name_the_same_host_and_port() {
    assert!(same_origin("http://127.0.0.1:9464", "127.0.0.1:9464"));
    assert!(same_origin("http://Box.local", "box.local:80"));
    assert!(same_origin("https://box.local", "box.local:443"));
    assert!(same_origin("http://[::1]:9464", "[::1]:9464"));
    for (o, h) in [
        ("http://evil.example", "127.0.0.1:9464"),
        ("http://127.0.0.1:9465", "127.0.0.1:9464"),
        ("null", "127.0.0.1:9464"),
        ("file://", "127.0.0.1:9464"),
        ("http://127.0.0.1:9464/x", "127.0.0.1:9464"),
        ("http://127.0.0.1:9464", ""),
        ("https://box.local", "box.local:80"),
    ] {
        assert!(!same_origin(o, h), "{o} vs {h}");
    }
}

#[test]
fn writes_need_the_page_sessions_token_and_stay_under_the_rate() {
    let w = Writes::default();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let (csrf, cookie) = w.page_session(&req(&[]));
    let cookie = cookie.unwrap();
    let id = cookie
        .split_once('=')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let c = format!("{PAGE_COOKIE}={id}");
    let host = ("Host", "127.0.0.1:9464");
    // The same session again: same token, no new cookie.
    assert_eq!(
        w.page_session(&req(&[("Cookie", &c)])),
        (csrf.clone(), None)
    );
    assert!(w
        .check(
            &req(&[host, ("Cookie", &c), (CSRF_HEADER, &csrf)]),
            peer,
            false
        )
        .is_ok());
    for bad in [
        req(&[host, ("Cookie", &c)]),
        req(&[host, ("Cookie", &c), (CSRF_HEADER, "0")]),
        req(&[host, (CSRF_HEADER, &csrf)]),
        req(&[
            host,
            ("Cookie", &c),
            (CSRF_HEADER, &csrf),
            ("Origin", "http://evil.example"),
        ]),
        req(&[
            host,
            ("Cookie", &c),
            (CSRF_HEADER, &csrf),
            ("Sec-Fetch-Site", "cross-site"),
        ]),
    ] {
        assert_eq!(
            w.check(&bad, peer, false).unwrap_err().status,
            "403 Forbidden"
        );
    }
    // A script with the token needs no page session.
    assert!(w.check(&req(&[host]), peer, true).is_ok());
    // Past the burst: 429, another address goes on.
    let mut refused = 0;
    for _ in 0..BURST as usize {
        if let Err(r) = w.check(&req(&[host]), peer, true) {
            assert_eq!(r.status, "429 Too Many Requests");
            refused += 1;
        }
    }
    assert!(refused >= 1, "the burst of {BURST} was not enforced");
    let other: SocketAddr = "127.0.0.2:5000".parse().unwrap();
    assert!(w.check(&req(&[host]), other, true).is_ok());
}

#[test]
fn areas() {
    assert_eq!(area("/api/labels"), Some(Area::Labels));
    assert_eq!(area("/api/labels/crop/a.png"), Some(Area::Labels));
    assert_eq!(area("/api/teach/start"), Some(Area::Teach));
    assert_eq!(area("/api/bundles"), Some(Area::Teach));
    assert_eq!(area("/api/labelsx"), None);
    assert_eq!(area("/api/status"), None);
    assert_eq!(body_limit("/api/labels/upload"), 2 << 20);
    assert_eq!(body_limit("/api/labels/save"), 4096);
}
