//! What browsers rely on, over real sockets: CORS (preflights, the allow headers on ordinary
//! responses and on streams served by the direct path and by hyper, `*`, unset) and the origin
//! check of cookie-authenticated publishes (CSRF).

use crate::common;

use common::auth::*;
use common::{spawn_app, TestApp};
use reqwest::Method;
use serde_json::json;

const APP: &str = "https://app.test";
const EVIL: &str = "https://evil.test";

async fn cors_app(origins: &[&str]) -> TestApp {
    let origins: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
    spawn_app(|c| c.auth.cors_origins = origins).await
}

/// The `access-control-*` headers of a reply.
fn cors_of(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

/// The comma-separated list in a header, lowercased.
fn list(reply: &Reply, name: &str) -> Vec<String> {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("no {name}: {reply:?}"))
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .collect()
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Reply {
    let request = app
        .client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, last-event-id",
        );
    Reply::read(request).await
}

#[tokio::test]
async fn preflights_from_allowed_origins_are_answered() {
    let app = cors_app(&[APP, "https://other.test"]).await;
    for (path, method) in [("/api/messages", "POST"), ("/stream", "GET")] {
        let reply = preflight(&app, path, APP, method).await;
        assert_eq!(reply.status, 204, "{reply:?}");
        assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            Some("true")
        );
        let headers = list(&reply, "access-control-allow-headers");
        for needed in ["authorization", "last-event-id", "content-type"] {
            assert!(headers.iter().any(|h| h == needed), "{headers:?}");
        }
        let methods = list(&reply, "access-control-allow-methods");
        assert!(methods.iter().any(|m| m == &method.to_ascii_lowercase()));
        assert!(list(&reply, "vary").iter().any(|v| v == "origin"));
    }
    let reply = preflight(&app, "/api/messages", EVIL, "POST").await;
    assert_eq!(cors_of(&reply), Vec::<String>::new(), "{reply:?}");
    assert_ne!(reply.status, 204);
}

#[tokio::test]
async fn ordinary_responses_carry_cors_headers_for_allowed_origins_only() {
    let app = cors_app(&[APP]).await;
    let post = |origin: &str, body: serde_json::Value| {
        app.client
            .post(app.url("/api/messages"))
            .header("origin", origin)
            .json(&body)
    };
    let accepted = Reply::read(post(APP, json!({"message": "m"}))).await;
    assert_eq!(accepted.status, 201);
    assert_eq!(accepted.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        accepted.header("access-control-allow-credentials"),
        Some("true")
    );
    // An error is readable by the page too.
    let refused = Reply::read(post(APP, json!({"message": ""}))).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("access-control-allow-origin"), Some(APP));
    let evil = Reply::read(post(EVIL, json!({"message": "m"}))).await;
    assert_eq!(evil.status, 201);
    assert_eq!(cors_of(&evil), Vec::<String>::new());
    // The answer depends on the origin, allowed or not: a shared cache must know.
    for reply in [&accepted, &refused, &evil] {
        assert_eq!(list(reply, "vary"), ["origin"], "{reply:?}");
    }
    let ping = app.client.get(app.url("/api/ping")).header("origin", APP);
    let ping = Reply::read(ping).await;
    assert_eq!(ping.header("access-control-allow-origin"), Some(APP));
}

#[tokio::test]
async fn streams_carry_cors_headers_on_both_paths() {
    let app = cors_app(&[APP]).await;
    let (head, _stream) = raw_get(app.addr, "/stream?mode=live", &[("Origin", APP)]).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("\r\naccess-control-allow-origin: https://app.test\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\naccess-control-allow-credentials: true\r\n"),
        "{head}"
    );
    // Scripts of the allowed origin may read Mercure's discovery and cursor headers.
    let expose =
        "access-control-expose-headers: Link, Mercure-Last-Event-ID, Last-Event-ID, Retry-After";
    let expose = expose.to_ascii_lowercase();
    assert!(head.contains(&format!("\r\n{expose}\r\n")), "{head}");
    let (head, _evil) = raw_get(app.addr, "/stream?mode=live", &[("Origin", EVIL)]).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("access-control-"), "{head}");
    assert!(head.contains("\r\nvary: origin\r\n"), "{head}");
    // HTTP/2 streams go through hyper and the same policy.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = app.url("/stream?mode=live");
    let stream = common::SseStream::open(&h2, &url, &[("origin", APP)]).await;
    assert_eq!(stream.status, 200);
    let origin = stream.headers.get("access-control-allow-origin");
    assert_eq!(origin.map(|v| v.to_str().unwrap()), Some(APP));
}

#[tokio::test]
async fn a_star_allows_any_origin_without_credentials() {
    let app = cors_app(&["*"]).await;
    let reply = preflight(&app, "/api/messages", "https://anyone.test", "POST").await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.header("access-control-allow-credentials"), None);
    let ping = app.client.get(app.url("/api/ping")).header("origin", EVIL);
    let ping = Reply::read(ping).await;
    assert_eq!(ping.header("access-control-allow-origin"), Some("*"));
    assert_eq!(ping.header("access-control-allow-credentials"), None);
    assert_eq!(
        ping.header("access-control-expose-headers"),
        Some("Link, Mercure-Last-Event-ID, Last-Event-ID, Retry-After")
    );
    let (head, _stream) = raw_get(app.addr, "/stream?mode=live", &[("Origin", EVIL)]).await;
    assert!(
        head.contains("\r\naccess-control-allow-origin: *\r\n"),
        "{head}"
    );
    assert!(!head.contains("access-control-allow-credentials"), "{head}");
}

#[tokio::test]
async fn without_cors_origins_there_are_no_cors_headers() {
    let app = spawn_app(|_| {}).await;
    let reply = preflight(&app, "/api/messages", APP, "POST").await;
    assert_eq!(cors_of(&reply), Vec::<String>::new(), "{reply:?}");
    let ping = app.client.get(app.url("/api/ping")).header("origin", APP);
    assert_eq!(cors_of(&Reply::read(ping).await), Vec::<String>::new());
    let (head, _stream) = raw_get(app.addr, "/stream?mode=live", &[("Origin", APP)]).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("access-control-"), "{head}");
}

async fn cookie_app(publish_origins: &[&str], cookie_name: Option<&str>) -> TestApp {
    let origins: Vec<String> = publish_origins.iter().map(|o| (*o).to_owned()).collect();
    let cookie_name = cookie_name.map(str::to_owned);
    spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(SECRET.into());
        c.auth.publish_origins = origins;
        c.auth.cookie_name = cookie_name;
    })
    .await
}

/// `POST /api/messages` with these headers.
async fn post_with(app: &TestApp, headers: &[(&str, &str)]) -> Reply {
    let mut request = app
        .client
        .post(app.url("/api/messages"))
        .json(&json!({"message": "m", "topic": "t"}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Reply::read(request).await
}

#[tokio::test]
async fn a_cookie_publish_needs_an_allowed_origin() {
    let app = cookie_app(&[APP], None).await;
    let token = hs256(SECRET, &legacy(&["*"], &[]));
    for name in ["mercureAuthorization", "__Secure-mercure_access_token"] {
        let cookie = format!("{name}={token}");
        for origin in [
            Some(EVIL),
            Some("null"),
            Some("https://app.test.evil.test"),
            None,
        ] {
            let mut headers = vec![("cookie", cookie.as_str())];
            headers.extend(origin.map(|o| ("origin", o)));
            post_with(&app, &headers)
                .await
                .assert_refused(403, None, ORIGIN, &token);
        }
        let accepted = post_with(&app, &[("cookie", &cookie), ("origin", APP)]).await;
        assert_eq!(accepted.status, 201, "{accepted:?}");
        accepted.assert_no_token(&token);
    }
    // The form endpoint (what a cross-site form would post to) checks the same.
    let cookie = format!("mercureAuthorization={token}");
    let form = |origin: &str| {
        app.client
            .post(app.url("/publish"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("message=csrf&topic=t")
    };
    Reply::read(form(EVIL))
        .await
        .assert_refused(403, None, ORIGIN, &token);
    assert_eq!(Reply::read(form(APP)).await.status, 202);
    // The header needs no origin, whatever the origin says.
    let auth = bearer(&token);
    assert_eq!(
        post_with(&app, &[("authorization", &auth)]).await.status,
        201
    );
    let header_from_evil = post_with(&app, &[("authorization", &auth), ("origin", EVIL)]).await;
    assert_eq!(header_from_evil.status, 201);
    // An allowed origin does not make a bad cookie good.
    let forged = hs256("some-other-secret-of-enough-length", &legacy(&["*"], &[]));
    let cookie = format!("mercureAuthorization={forged}");
    post_with(&app, &[("cookie", &cookie), ("origin", APP)])
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &forged);
    // Only the accepted publishes are in history.
    let history = app.get_json("/api/topics/t/events").await;
    let messages: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["m", "m", "csrf", "m", "m"]);
}

#[tokio::test]
async fn without_publish_origins_cookies_cannot_publish() {
    let app = cookie_app(&[], None).await;
    let token = hs256(SECRET, &legacy(&["*"], &[]));
    let cookie = format!("mercureAuthorization={token}");
    for origin in [APP, EVIL] {
        post_with(&app, &[("cookie", &cookie), ("origin", origin)])
            .await
            .assert_refused(403, None, ORIGIN, &token);
    }
    let auth = bearer(&token);
    assert_eq!(
        post_with(&app, &[("authorization", &auth)]).await.status,
        201
    );
}

#[tokio::test]
async fn a_configured_cookie_name_is_read_first() {
    let app = cookie_app(&[APP], Some("hubToken")).await;
    let token = hs256(SECRET, &legacy(&["*"], &[]));
    let forged = hs256("some-other-secret-of-enough-length", &legacy(&["*"], &[]));
    let cookie = format!("mercureAuthorization={forged}; hubToken={token}");
    let reply = post_with(&app, &[("cookie", &cookie), ("origin", APP)]).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    // The header wins over any cookie.
    let cookie = format!("hubToken={forged}");
    let auth = bearer(&token);
    let reply = post_with(&app, &[("cookie", &cookie), ("authorization", &auth)]).await;
    assert_eq!(reply.status, 201, "{reply:?}");
}
