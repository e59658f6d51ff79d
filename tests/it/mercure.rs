//! The Mercure endpoint's publication over real sockets, written from the drafts'
//! "Publication" section (`../shared/reference/mercure/`): the publish form and every
//! validation rule, grants, and the frames on the wire. Subscriptions are in
//! `tests/it/mercure_subscribe.rs`.

use crate::common;

use common::auth::*;
use common::mercure::*;
use common::{spawn_app, TestApp};

const BOOK: &str = "https://example.com/books/1";

/// Refusals that differ from what the draft asks, as `request: expected X, got Y` lines.
async fn check_publishes(app: &TestApp, cases: &[(Vec<(&str, &str)>, u16)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (pairs, status) in cases {
        let reply = post(app, None, &form(pairs)).await;
        if reply.status != *status {
            let text: String = reply.text.chars().take(120).collect();
            wrong.push(format!(
                "POST {}: expected {status}, got {} {text}",
                shorten(&form(pairs)),
                reply.status
            ));
        }
    }
    wrong
}

/// `text`, cut to a readable length.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((at, _)) => format!("{}...({} bytes)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

#[tokio::test]
async fn a_publish_reaches_subscribers_field_for_field() {
    let app = spawn_app(|_| {}).await;
    let mut stream = subscribe(&app, &[("topic", BOOK)], &[]).await;
    let opening = stream.raw.len();
    let id = publish(
        &app,
        &[
            ("topic", BOOK),
            ("topic", "https://example.com/alternate/1"),
            ("data", "line 1\nline 2\r\nline 3\rline 4"),
            ("id", "urn:uuid:e1ee88e2"),
            ("type", "book-updated"),
            ("retry", "1500"),
            ("unknown-field", "ignored"),
        ],
    )
    .await;
    assert_eq!(id, "urn:uuid:e1ee88e2");
    let event = stream.next().await.unwrap();
    assert_eq!(event.id.as_deref(), Some("urn:uuid:e1ee88e2"));
    assert_eq!(event.event, "book-updated");
    assert_eq!(event.retry, Some(1500));
    assert_eq!(event.data, "line 1\nline 2\nline 3\nline 4");
    // One `data:` line per line, in the order id, event, retry, data.
    let frame = "id: urn:uuid:e1ee88e2\nevent: book-updated\nretry: 1500\n\
                 data: line 1\ndata: line 2\ndata: line 3\ndata: line 4\n\n";
    assert_eq!(String::from_utf8_lossy(&stream.raw[opening..]), frame);
    // Only a topic: the hub's own id (an IRI), the default type, empty data.
    let id = publish(&app, &[("topic", BOOK)]).await;
    assert!(id.starts_with("urn:ssehub:"), "{id}");
    let event = stream.next().await.unwrap();
    assert_eq!(
        (event.id.as_deref(), event.event.as_str()),
        (Some(&*id), "message")
    );
    assert_eq!(event.data, "");
}

#[tokio::test]
async fn publishes_breaking_a_draft_08_rule_are_refused_and_never_sent() {
    let app = spawn_app(|c| {
        c.max_message = 100;
        c.body_limit = 64 * 1024;
    })
    .await;
    let mut everything = subscribe(&app, &[("match", "*")], &[]).await;
    let own = format!("http://{}/.well-known/mercure/subscriptions/x", app.addr);
    fn t<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut pairs = vec![("topic", "t")];
        pairs.extend_from_slice(extra);
        pairs
    }
    let mut cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![("topic", "*")], 400),
        (vec![("topic", "/.well-known/mercure")], 400),
        (vec![("topic", "/.well-known/mercure/x")], 400),
        (
            vec![("topic", "https://other/.well-known/%6Dercure/x")],
            400,
        ),
        (vec![("topic", "/.well-known/mercure/../mercure/x")], 400),
        (vec![("topic", own.as_str())], 400),
        (
            vec![("topic", "ok"), ("topic", "/.well-known/mercure/x")],
            400,
        ),
        (vec![("topic", "ok"), ("topic", "*")], 400),
        (t(&[("type", "mercure")]), 400),
        (t(&[("id", "earliest")]), 400),
        (t(&[("id", "#frag")]), 400),
        (t(&[("retry", "12a")]), 400),
        (t(&[("retry", "-1")]), 400),
        (t(&[("retry", " 5")]), 400),
        (vec![("data", "no topic")], 400),
        (vec![], 400),
    ];
    for bad in [
        "a\u{1}b",
        "a\u{7f}b",
        "a\u{85}b",
        "a\u{200b}b",
        "a\u{feff}b",
        "a\nb",
    ] {
        cases.push((t(&[("id", bad)]), 400));
        cases.push((t(&[("type", bad)]), 400));
        cases.push((vec![("topic", bad)], 400));
    }
    let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let mut pairs: Vec<(&str, &str)> = many.iter().map(|t| ("topic", t.as_str())).collect();
    cases.push((pairs.clone(), 413));
    let long = "x".repeat(101);
    cases.push((t(&[("data", &long)]), 413));
    let mut wrong = check_publishes(&app, &cases).await;
    // Not reserved, unknown fields ignored, limits themselves allowed.
    pairs.pop();
    let fit = "x".repeat(100);
    for ok in [
        pairs,
        vec![("topic", "/.well-known/mercurex")],
        vec![("topic", "https://example.com/.well-known/mercure-like")],
        vec![
            ("topic", "plain"),
            ("data", &fit),
            ("foo", "bar"),
            ("private2", ""),
        ],
    ] {
        wrong.extend(check_publishes(&app, &[(ok, 200)]).await);
    }
    // Not a form: 415.
    for kind in [Some("application/json"), Some("text/plain"), None] {
        let mut request = app.client.post(app.url(HUB)).body("topic=a&data=b");
        if let Some(kind) = kind {
            request = request.header("content-type", kind);
        }
        let reply = Reply::read(request).await;
        if reply.status != 415 {
            wrong.push(format!(
                "content type {kind:?}: expected 415, got {reply:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Nothing refused was dispatched: the accepted ones, then the sentinel.
    publish(&app, &[("topic", "sentinel"), ("data", "sentinel")]).await;
    let data = datas_until(&mut everything, "sentinel").await;
    assert_eq!(data, ["", "", "", &fit, "sentinel"]);
}

#[tokio::test]
async fn over_long_fields_are_413() {
    // "Requests exceeding any such limit [...] the length of individual fields [...] MUST be
    // rejected with a 413" (draft-08, "Publication").
    let app = spawn_app(|_| {}).await;
    let (id, kind, topic) = ("i".repeat(4096), "k".repeat(4096), "t".repeat(4096));
    let cases = [
        (vec![("topic", "t"), ("id", id.as_str())], 413),
        (vec![("topic", "t"), ("type", kind.as_str())], 413),
        (vec![("topic", topic.as_str())], 413),
    ];
    let wrong = check_publishes(&app, &cases).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn values_that_are_not_utf_8_are_400() {
    // Subscription: "The value of each topic matcher query parameter MUST be valid UTF-8 [...]
    // MUST be rejected with a 400"; Publication: "Field names and values MUST be UTF-8".
    let app = spawn_app(|_| {}).await;
    let mut wrong = Vec::new();
    for query in [
        "match=%FF",
        "topic=a%C3",
        "match_urlpattern=https://e.com/%FE",
    ] {
        let status = subscribe_status(&app, query).await;
        if status != "400" {
            wrong.push(format!("GET ?{query}: expected 400, got {status}"));
        }
    }
    for body in ["topic=%FF", "topic=a&id=%FF", "topic=a&type=%C3"] {
        let reply = post(&app, None, body).await;
        if reply.status != 400 {
            wrong.push(format!("POST {body}: expected 400, got {}", reply.status));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn publishers_need_a_grant_on_every_topic() {
    let app = spawn_app(|c| c.auth.keys.publisher_jwt_key = Some(SECRET.into())).await;
    let mut everything = subscribe(&app, &[("topic", "*")], &[]).await;
    post(&app, None, &form(&[("topic", BOOK)]))
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
    let token = hs256(SECRET, &legacy(&["https://example.com/books/{id}"], &[]));
    let t = Some(token.as_str());
    publish_with(&app, t, &[("topic", BOOK), ("data", "granted")]).await;
    for refused in [
        form(&[("topic", "https://example.com/authors/1")]),
        form(&[("topic", "https://example.com/books/1/reviews")]),
        form(&[("topic", BOOK), ("topic", "https://example.com/authors/1")]),
        form(&[("topic", "https://example.com/authors/1"), ("topic", BOOK)]),
    ] {
        post(&app, t, &refused).await.assert_refused(
            403,
            Some(INSUFFICIENT_SCOPE),
            FORBIDDEN,
            &token,
        );
    }
    let two = [("topic", BOOK), ("topic", "https://example.com/books/2")];
    publish_with(&app, t, &[two[0], two[1], ("data", "both granted")]).await;
    let data = datas_until(&mut everything, "both granted").await;
    assert_eq!(data, ["granted", "both granted"]);
}
