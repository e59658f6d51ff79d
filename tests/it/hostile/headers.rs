//! One reading of a request on both HTTP/1 paths: a header that decides who may do what, or
//! where a stream starts, sent twice (as a proxy that appends headers might) is refused with
//! 400 JSON on the direct path and on hyper alike, and so is a `Host` that is not a host.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::auth::{bearer, hs256, legacy, SECRET};
use crate::common::raw::both_ways;
use crate::common::{spawn_app, TestApp, PATIENCE};

/// The status of `GET /stream` with `headers`: plain (the direct path) or with an empty
/// `Content-Length` (which the direct path hands to hyper).
async fn stream_status(app: &TestApp, headers: &[(&str, &str)], hyper: bool) -> String {
    get_status(app, "/stream?mode=live", "x", headers, hyper).await
}

async fn get_status(
    app: &TestApp,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    hyper: bool,
) -> String {
    let mut text = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if hyper {
        text.push_str("Content-Length: 0\r\n");
    }
    text.push_str("\r\n");
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(text.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(PATIENCE, async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no response head");
    let head = String::from_utf8_lossy(&seen);
    head.split(' ').nth(1).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_header_sent_twice_is_refused_the_same_on_both_paths() {
    let app = spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(SECRET.into());
        c.auth.publish_origins = vec!["http://good.example".into()];
        c.auth.cors_origins = vec!["http://good.example".into()];
    })
    .await;
    let good = bearer(&hs256(SECRET, &legacy(&["*"], &[])));
    let bad = bearer(&hs256(
        "another-secret-that-is-long-enough-for-hs256",
        &legacy(&["*"], &[]),
    ));
    let json = ("Content-Type", "application/json");
    let body = r#"{"message": "m"}"#;
    #[rustfmt::skip]
    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        // Once each: accepted (the baseline).
        (vec![("Authorization", &good), json], 201),
        (vec![("Authorization", &good), ("Authorization", &bad), json], 400),
        (vec![("Authorization", &bad), ("Authorization", &good), json], 400),
        (vec![("Authorization", &good), ("Origin", "http://evil.example"), ("Origin", "http://good.example"), json], 400),
        (vec![("Authorization", &good), ("Host", "other"), json], 400),
        (vec![("Authorization", &good), ("Last-Event-ID", "1-1"), ("Last-Event-ID", "1-2"), json], 400),
        (vec![("Authorization", &good), json, ("Content-Type", "text/plain")], 400),
        // Cookies may come in several headers: both paths join them in order.
        (vec![("Cookie", "mercureAuthorization=x"), ("Cookie", "a=b"), ("Origin", "http://good.example"), json], 401),
    ];
    for (headers, status) in &cases {
        both_ways(&app, "/api/messages", headers, body, *status).await;
    }
    let token = good.trim_start_matches("Bearer ");
    let cookie = format!("mercureAuthorization={token}");
    both_ways(
        &app,
        "/api/messages",
        &[
            ("Cookie", "a=b"),
            ("Cookie", &cookie),
            ("Origin", "http://good.example"),
            json,
        ],
        body,
        201,
    )
    .await;
    #[rustfmt::skip]
    let stream_cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "200"),
        (vec![("Last-Event-ID", "1-1"), ("Last-Event-ID", "1-2")], "400"),
        (vec![("Authorization", &good), ("Authorization", &bad)], "400"),
        (vec![("Origin", "http://good.example"), ("Origin", "http://evil.example")], "400"),
        (vec![("Host", "y")], "400"),
    ];
    for (headers, status) in &stream_cases {
        let direct = stream_status(&app, headers, false).await;
        let hyper = stream_status(&app, headers, true).await;
        assert_eq!(
            (direct.as_str(), hyper.as_str()),
            (*status, *status),
            "{headers:?}"
        );
    }
}

/// The `Host` goes into the `Link` header and the hub's URL: one that is not a host is
/// refused, on both paths, before it is written anywhere.
#[tokio::test]
async fn a_host_that_is_not_a_host_is_refused_on_both_paths() {
    let app = spawn_app(|_| {}).await;
    let target = "/.well-known/mercure?topic=a";
    for host in [
        r#"a>; rel="evil", <http://b"#,
        "a b",
        "a\"b",
        "a,b",
        "hub.test:8000",
    ] {
        let expected = if host == "hub.test:8000" {
            "200"
        } else {
            "400"
        };
        for hyper in [false, true] {
            let status = get_status(&app, target, host, &[], hyper).await;
            assert_eq!(status, expected, "{host} hyper={hyper}");
        }
    }
}
