//! Streams and their tokens over real sockets: the end of a stream at its token's `exp` and at
//! `--max-stream-lifetime`, `--require-subscriber-token`, query tokens only with
//! `--allow-query-token`, and the per-client and per-subject stream caps.

use crate::common;

use std::time::{Duration, Instant};

use common::auth::*;
use common::{data, message, spawn_app, take, SseStream, TestApp, PATIENCE};
use serde_json::json;

const TOO_MANY: &str = "too many streams for this client, retry later";

fn token_expiring_at(exp: u64, topics: &[&str]) -> String {
    hs256(
        SUB_SECRET,
        &json!({"exp": exp, "mercure": {"subscribe": topics}}),
    )
}

/// Reads a stream's `close` and the end of its response; returns the close's status and the
/// Unix time the close arrived.
async fn close_and_end(stream: &mut SseStream) -> (String, f64) {
    let close = stream.next_event().await.expect("ended without close");
    let at = now_f64();
    assert_eq!(close.event, "close", "{close:?}");
    let status = data(&close)["data"]["status"].as_str().unwrap().to_owned();
    let end = stream.next_within(Duration::from_secs(3)).await;
    assert!(matches!(end, Ok(None)), "the response went on: {end:?}");
    (status, at)
}

#[tokio::test]
async fn a_stream_closes_when_its_token_expires() {
    let app = spawn_app(|c| {
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.interval = Duration::from_millis(50);
    })
    .await;
    let exp = now() + 3;
    let auth = bearer(&token_expiring_at(exp, &["x"]));
    let headers = [("authorization", auth.as_str())];
    let mut live = app.stream_with("/stream?mode=live&topic=x", &headers).await;
    let mut burst = app.stream_with("/stream?topic=y", &headers).await;
    // Until then it is an ordinary stream.
    let id = app.publish("x", "before exp").await;
    assert_eq!(message(&take(&mut live, 1).await[0]), "before exp");
    let (status, at) = close_and_end(&mut live).await;
    assert_eq!(status, "expired");
    let exp = exp as f64;
    assert!(
        at >= exp - 0.5 && at <= exp + 3.0,
        "closed at {at}, exp {exp}"
    );
    assert!(now_f64() <= exp + 3.0, "ended at {}, exp {exp}", now_f64());
    // A burst stream waiting for its event ends the same way.
    let (status, _) = close_and_end(&mut burst).await;
    assert_eq!(status, "expired");
    // Reconnecting with the expired token is refused.
    let stale = format!("/stream?mode=live&topic=x&lastEventId={id}");
    let old = token_expiring_at(exp as u64 - 20, &["x"]);
    refused_stream(&app, &stale, &[("authorization", &bearer(&old))])
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &old);
}

#[tokio::test]
async fn max_stream_lifetime_ends_every_stream() {
    let app = spawn_app(|c| {
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.auth.max_stream_lifetime = Some(Duration::from_secs(3));
    })
    .await;
    let opened = Instant::now();
    let mut anonymous = app.stream("/stream?mode=live&topic=x").await;
    let far = bearer(&token_expiring_at(now() + 3600, &["x"]));
    let mut long_token = app
        .stream_with("/stream?mode=live&topic=x", &[("authorization", &far)])
        .await;
    // A token that expires before the lifetime ends its stream first, as `expired`.
    let near = bearer(&token_expiring_at(now() + 2, &["x"]));
    let mut short_token = app
        .stream_with("/stream?mode=live&topic=x", &[("authorization", &near)])
        .await;
    // `expired`, not `lifetime`: its token ended it, whatever the machine's load (no wall-clock
    // window to miss).
    let (status, _) = close_and_end(&mut short_token).await;
    assert_eq!(status, "expired");
    for stream in [&mut anonymous, &mut long_token] {
        let (status, _) = close_and_end(stream).await;
        assert_eq!(status, "lifetime");
        // Never before the lifetime (a lower bound no load can break: `opened` was read before
        // the streams opened); the upper bound only catches a stream that would not end, with
        // 3 s of slack for a loaded machine.
        let took = opened.elapsed();
        assert!(
            took >= Duration::from_millis(2900) && took <= Duration::from_secs(6),
            "{took:?}"
        );
    }
}

async fn required_app(allow_query_token: bool) -> TestApp {
    spawn_app(|c| {
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.auth.require_subscriber_token = true;
        c.auth.allow_query_token = allow_query_token;
    })
    .await
}

#[tokio::test]
async fn a_required_subscriber_token_refuses_anonymous_and_invalid_streams() {
    let app = required_app(false).await;
    let path = "/stream?mode=live&topic=x";
    refused_stream(&app, path, &[])
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
    let forged = hs256("not-the-subscriber-secret-at-all", &legacy(&[], &["x"]));
    let expired = token_expiring_at(now() - 60, &["x"]);
    let publisher_shaped = unsigned(&legacy(&["*"], &["*"]));
    for token in [&forged, &expired, &publisher_shaped] {
        refused_stream(&app, path, &[("authorization", &bearer(token))])
            .await
            .assert_refused(401, Some(INVALID_TOKEN), INVALID, token);
    }
    refused_stream(&app, path, &[("authorization", &format!("Basic {forged}"))])
        .await
        .assert_refused(400, Some(INVALID_REQUEST), MALFORMED, &forged);
    // The direct path answers the same refusal.
    let (head, _socket) = raw_get(app.addr, path, &[]).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("www-authenticate: bearer\r\n"), "{head}");
    // A valid token, even one granting nothing, opens the stream; so does a cookie.
    let nothing = hs256(SUB_SECRET, &legacy(&[], &[]));
    app.stream_with(path, &[("authorization", &bearer(&nothing))])
        .await;
    let cookie = format!("mercureAuthorization={nothing}");
    app.stream_with(path, &[("cookie", &cookie)]).await;
    // The listing and history require it too.
    for path in ["/api/topics", "/api/topics/x/events"] {
        get_with(&app, path, &[])
            .await
            .assert_refused(401, Some(BEARER), MISSING, "");
        let reply = get_with(&app, path, &[("authorization", &bearer(&nothing))]).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}

#[tokio::test]
async fn query_tokens_are_refused_unless_allowed() {
    let token = hs256(SUB_SECRET, &legacy(&[], &["x"]));
    let path = format!("/stream?mode=live&topic=x&authorization={token}");
    let app = required_app(false).await;
    refused_stream(&app, &path, &[])
        .await
        .assert_refused(401, Some(BEARER), MISSING, &token);
    // Not required: the query token is ignored, so the stream is anonymous.
    let open = spawn_app(|c| c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into())).await;
    let mut ignored = open.stream(&path).await;
    let body = json!({"message": "private", "topic": "x", "private": true});
    post_message(&open.client, &base(&open), None, &body).await;
    open.publish("x", "public").await;
    assert_eq!(message(&take(&mut ignored, 1).await[0]), "public");
    // Allowed: it authenticates the stream and opens private events.
    let app = required_app(true).await;
    let mut allowed = app.stream(&path).await;
    post_message(&app.client, &base(&app), None, &body).await;
    assert_eq!(message(&take(&mut allowed, 1).await[0]), "private");
    let forged = hs256("not-the-subscriber-secret-at-all", &legacy(&[], &["x"]));
    let path = format!("/stream?mode=live&topic=x&authorization={forged}");
    refused_stream(&app, &path, &[]).await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &forged,
    );
}

/// Opens `path` until it is admitted (a slot is given back when the server sees a stream's
/// client leave, which takes a moment); every refusal meanwhile must be the cap's 429.
async fn open_when_free(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> SseStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut stream = SseStream::open(&app.client, &app.url(path), headers).await;
        if stream.status == 200 {
            assert_eq!(stream.next().await.unwrap().event, "keepalive");
            return stream;
        }
        assert_eq!(stream.status, 429);
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_too_many(reply: &Reply) {
    reply.assert_refused(429, None, TOO_MANY, "");
    assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
}

#[tokio::test]
async fn streams_per_client_are_capped() {
    let app = spawn_app(|c| c.auth.max_streams_per_client = Some(2)).await;
    let path = "/stream?mode=live&topic=x";
    let first = app.stream(path).await;
    let mut second = app.stream(path).await;
    assert_too_many(&refused_stream(&app, path, &[]).await);
    assert_too_many(&refused_stream(&app, "/stream?topic=y", &[]).await);
    // Publishing and other requests are not streams.
    app.publish("x", "still publishing").await;
    assert_eq!(message(&take(&mut second, 1).await[0]), "still publishing");
    drop(first);
    let mut third = open_when_free(&app, path, &[]).await;
    assert_too_many(&refused_stream(&app, path, &[]).await);
    app.publish("x", "to both").await;
    for stream in [&mut second, &mut third] {
        assert_eq!(message(&take(stream, 1).await[0]), "to both");
    }
}

#[tokio::test]
async fn streams_per_client_count_http2_streams_too() {
    let app = spawn_app(|c| c.auth.max_streams_per_client = Some(2)).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = app.url("/stream?mode=live&topic=x");
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = SseStream::open(&h2, &url, &[]).await;
        assert_eq!(stream.status, 200);
        assert_eq!(stream.next().await.unwrap().event, "keepalive");
        open.push(stream);
    }
    let refused = Reply::read(h2.get(&url)).await;
    assert_too_many(&refused);
    // Over HTTP/1.1 from the same address as well.
    assert_too_many(&refused_stream(&app, "/stream?mode=live&topic=x", &[]).await);
}

#[tokio::test]
async fn streams_per_subject_are_capped() {
    let app = spawn_app(|c| {
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.auth.max_streams_per_subject = Some(2);
    })
    .await;
    let as_subject = |sub: &str, exp: u64| {
        let claims = json!({"sub": sub, "exp": exp, "mercure": {"subscribe": ["x"]}});
        bearer(&hs256(SUB_SECRET, &claims))
    };
    let path = "/stream?mode=live&topic=x";
    let alice = [
        as_subject("alice", now() + 3600),
        as_subject("alice", now() + 3601),
        as_subject("alice", now() + 3602),
    ];
    let first = app.stream_with(path, &[("authorization", &alice[0])]).await;
    let _second = app.stream_with(path, &[("authorization", &alice[1])]).await;
    let refused = refused_stream(&app, path, &[("authorization", &alice[2])]).await;
    assert_too_many(&refused);
    refused.assert_no_token(&alice[2]);
    // Another subject, and anonymous streams (no subject), are not counted with alice.
    let bob = as_subject("bob", now() + 3600);
    let _bob = app.stream_with(path, &[("authorization", &bob)]).await;
    let mut anonymous = Vec::new();
    for _ in 0..3 {
        anonymous.push(app.stream(path).await);
    }
    drop(first);
    let _again = open_when_free(&app, path, &[("authorization", &alice[2])]).await;
    assert_too_many(&refused_stream(&app, path, &[("authorization", &alice[0])]).await);
}

#[tokio::test]
async fn a_token_expiring_in_the_far_future_opens_a_stream() {
    let app = spawn_app(|c| c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into())).await;
    // Valid signatures and valid NumericDates, however far ahead: the stream opens and works,
    // like one whose token has no `exp` at all.
    for exp in [
        u64::from(u32::MAX),
        1 << 53,
        10_000_000_000_000_000_000,
        u64::MAX,
    ] {
        let auth = bearer(&token_expiring_at(exp, &["x"]));
        let request = app
            .client
            .get(app.url("/stream?mode=live&topic=x"))
            .header("authorization", &auth);
        let sent = tokio::time::timeout(PATIENCE, request.send())
            .await
            .unwrap();
        let mut response =
            sent.unwrap_or_else(|err| panic!("exp {exp}: the request was dropped: {err:?}"));
        assert_eq!(response.status(), 200, "exp {exp}");
        let body = json!({"message": "private", "topic": "x", "private": true});
        post_message(&app.client, &base(&app), None, &body).await;
        let mut seen = String::new();
        while !seen.contains(r#""message":"private""#) {
            let chunk = tokio::time::timeout(PATIENCE, response.chunk()).await;
            let chunk = chunk.unwrap().unwrap().expect("the stream ended");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(seen.contains("event: keepalive"), "exp {exp}: {seen}");
    }
}
