//! `GET /api/topics/stream`, the hub console's live topic table, over real sockets: a snapshot
//! at once and every second (subscribers, newest id, history, events per second), its bounds
//! (`limit`, the stream cap), who may see what (private topics, tokens, expiry) and shutdown.

use crate::common;

use std::time::Duration;

use common::auth::*;
use common::{data, spawn_app, SseStream, TestApp, PATIENCE};
use serde_json::{json, Value};

const PATH: &str = "/api/topics/stream";

/// Opens the topic stream with these headers and checks it is one.
async fn open(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> SseStream {
    let stream = SseStream::open(&app.client, &app.url(path), headers).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    stream
}

/// The next snapshot's `data` (`topics`, `total`, `truncated`).
async fn snapshot(stream: &mut SseStream) -> Value {
    let event = stream.next().await.expect("the topic stream ended");
    assert_eq!(event.event, "topics", "{event:?}");
    let body = data(&event);
    assert!(body["timestamp"].as_f64().unwrap() > 1.7e9, "{body}");
    body["data"].clone()
}

/// Reads snapshots until `done` holds for one (at most `PATIENCE`); returns it.
async fn until(stream: &mut SseStream, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let next = tokio::time::timeout_at(deadline, snapshot(stream))
            .await
            .expect("no matching snapshot in time");
        if done(&next) {
            return next;
        }
    }
}

fn topic<'a>(snapshot: &'a Value, name: &str) -> Option<&'a Value> {
    snapshot["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == name)
}

fn names(snapshot: &Value) -> Vec<&str> {
    snapshot["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_snapshot_at_once_then_every_second_with_subscribers_ids_and_rates() {
    let app = spawn_app(|_| {}).await;
    let mut console = open(&app, PATH, &[]).await;
    let first = snapshot(&mut console).await;
    assert!(
        console
            .raw
            .starts_with(b"retry: 2000\n\nevent: topics\ndata: {"),
        "{}",
        String::from_utf8_lossy(&console.raw)
    );
    assert_eq!(first, json!({"topics": [], "total": 0, "truncated": false}));
    // About a second to the next snapshot: not at once, not several seconds (a loaded CI
    // machine may deliver it late by a few hundred milliseconds).
    let started = tokio::time::Instant::now();
    snapshot(&mut console).await;
    let gap = started.elapsed();
    assert!(
        gap > Duration::from_millis(500) && gap < Duration::from_millis(2500),
        "{gap:?}"
    );

    let _subscriber = app.stream("/stream?mode=live&topic=news").await;
    let mut last = String::new();
    for i in 0..5 {
        last = app.publish("news", &format!("m{i}")).await.to_string();
    }
    let seen = until(&mut console, |s| {
        topic(s, "news").is_some_and(|t| t["events_per_second"].as_f64().unwrap() > 0.0)
    })
    .await;
    let news = topic(&seen, "news").unwrap();
    assert_eq!(news["subscribers"], 1, "{seen}");
    assert_eq!(news["last_id"], last.as_str(), "{seen}");
    assert_eq!(news["history"], 5, "{seen}");
    // 5 events over at most 5 s of completed seconds: at least 1 per second, and not more
    // than 5 events in the shortest window that can hold them (about one second).
    let rate = news["events_per_second"].as_f64().unwrap();
    assert!((0.9..=6.0).contains(&rate), "{rate}");
    assert_eq!(seen["total"], 1);

    // The REST listing says the same.
    let listing = app.get_json("/api/topics").await;
    assert!(listing["topics"][0]["events_per_second"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn bounds_limit_and_the_stream_cap() {
    let app = spawn_app(|c| c.max_streams = Some(2)).await;
    for bad in ["limit=0", "limit=1001", "limit=many", "limit=1.5"] {
        let reply = get_with(&app, &format!("{PATH}?{bad}"), &[]).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(reply.json(), json!({"error": "limit must be 1 to 1000"}));
    }
    for name in ["a", "b", "c", "d"] {
        app.publish(name, "once").await;
    }
    for _ in 0..4 {
        app.publish("busy", "often").await;
    }
    let mut console = open(&app, &format!("{PATH}?limit=2"), &[]).await;
    // Once the rates are known, the busiest topic is among the two listed.
    let seen = until(&mut console, |s| {
        topic(s, "busy").is_some_and(|t| t["events_per_second"].as_f64().unwrap() > 0.0)
    })
    .await;
    assert_eq!(seen["total"], 5, "{seen}");
    assert_eq!(seen["truncated"], true, "{seen}");
    let listed = names(&seen);
    assert_eq!(listed.len(), 2, "{seen}");
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted, "listed by name");

    // A console stream is a stream: it counts against --max-streams.
    let _second = open(&app, PATH, &[]).await;
    let refused = get_with(&app, PATH, &[]).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("1"));
    drop(console);
    // Its slot is released when the client leaves.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while app.state.open_streams() > 1 {
        assert!(tokio::time::Instant::now() < deadline, "slot not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open(&app, PATH, &[]).await;
}

#[tokio::test]
async fn private_topics_need_a_granting_token_and_the_stream_ends_at_its_exp() {
    let app = spawn_app(|c| c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into())).await;
    let private = |topic: &'static str, message: &'static str| {
        let body = json!({"message": message, "topic": topic, "private": true});
        let client = app.client.clone();
        let base = base(&app);
        async move {
            let reply = post_message(&client, &base, None, &body).await;
            assert_eq!(reply.status, 201, "{reply:?}");
            reply.json()["data"]["id"].as_str().unwrap().to_owned()
        }
    };
    private("hidden", "only private").await;
    let public_id = app.publish("mixed", "public").await.to_string();
    let private_id = private("mixed", "private").await;

    let mut anonymous = open(&app, PATH, &[]).await;
    let seen = until(&mut anonymous, |s| {
        topic(s, "mixed").is_some_and(|t| t["events_per_second"].as_f64().unwrap() > 0.0)
    })
    .await;
    assert_eq!(names(&seen), ["mixed"], "{seen}");
    let mixed = topic(&seen, "mixed").unwrap();
    assert_eq!(mixed["last_id"], public_id.as_str());
    assert_eq!(mixed["history"], 1);
    assert!(!String::from_utf8_lossy(&anonymous.raw).contains(&private_id));

    // A token granting both topics sees the private parts, and ends at its `exp`.
    let token = hs256(
        SUB_SECRET,
        &json!({"mercure": {"subscribe": ["hidden", "mixed"]}, "exp": now() + 3}),
    );
    let mut granted = open(&app, PATH, &[("authorization", &bearer(&token))]).await;
    let seen = until(&mut granted, |s| names(s) == ["hidden", "mixed"]).await;
    assert_eq!(
        topic(&seen, "mixed").unwrap()["last_id"],
        private_id.as_str()
    );
    assert_eq!(topic(&seen, "mixed").unwrap()["history"], 2);
    let close = loop {
        let event = granted.next().await.expect("ended without close");
        if event.event != "topics" {
            break event;
        }
    };
    assert_eq!(close.event, "close");
    assert_eq!(data(&close)["data"]["status"], "expired");
    assert!(
        granted.next().await.is_none(),
        "the response ends after close"
    );

    // A token that does not verify is refused, not treated as anonymous.
    let forged = hs256("not-the-subscriber-secret-at-all", &legacy(&[], &["*"]));
    get_with(&app, PATH, &[("authorization", &bearer(&forged))])
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &forged);
}

#[tokio::test]
async fn a_required_subscriber_token_is_required_here_too() {
    let app = spawn_app(|c| {
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.auth.require_subscriber_token = true;
    })
    .await;
    get_with(&app, PATH, &[])
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
    let token = hs256(SUB_SECRET, &legacy(&[], &[]));
    let mut console = open(
        &app,
        PATH,
        &[("cookie", &format!("mercureAuthorization={token}"))],
    )
    .await;
    snapshot(&mut console).await;
}

#[tokio::test]
async fn shutdown_closes_the_stream() {
    let mut app = spawn_app(|_| {}).await;
    let mut console = open(&app, PATH, &[]).await;
    snapshot(&mut console).await;
    let started = tokio::time::Instant::now();
    app.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let rest = console.rest().await;
    let close = rest.last().expect("a close event");
    assert_eq!(close.event, "close");
    assert_eq!(data(close)["data"]["status"], "shutdown");
}
