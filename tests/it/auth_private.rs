//! Private events over real sockets: they reach only streams whose subscriber token grants
//! their topic, in live mode, in burst mode, on resume, in the history endpoint and in the
//! topic listing; tokens from the header, either cookie, or a draft-08 `subscribe` detail; on
//! the memory broker and across two nodes on Redis.

use crate::common;

use std::time::Duration;

use common::auth::*;
use common::redis::RedisServer;
use common::{data, message, spawn_app, take, SseStream, TestApp};
use serde_json::{json, Value};

async fn subscriber_app() -> TestApp {
    spawn_app(|c| {
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.interval = Duration::from_millis(50);
    })
    .await
}

/// A subscriber token granting `subscribe` on these selectors.
fn reader(topics: &[&str]) -> String {
    hs256(SUB_SECRET, &legacy(&[], topics))
}

/// Publishes (private or not); returns the id.
async fn publish(app: &TestApp, topic: &str, text: &str, private: bool) -> String {
    let body = json!({"message": text, "topic": topic, "private": private});
    let reply = post_message(&app.client, &base(app), None, &body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(
        reply.json()["data"]["private"].as_bool().unwrap_or(false),
        private
    );
    reply.json()["data"]["id"].as_str().unwrap().to_owned()
}

/// Publishes a private event with the form endpoint's `private=on`.
async fn publish_form_private(app: &TestApp, topic: &str, text: &str) {
    let form = app
        .client
        .post(app.url("/publish"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("message={text}&topic={topic}&private=on"));
    let reply = Reply::read(form).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.json()["data"]["private"], true);
}

async fn open(app: &TestApp, path: &str, token: Option<&str>) -> SseStream {
    match token {
        Some(token) => {
            app.stream_with(path, &[("authorization", &bearer(token))])
                .await
        }
        None => app.stream(path).await,
    }
}

fn messages(events: &[ssehub::sse::SseEvent]) -> Vec<String> {
    events.iter().map(message).collect()
}

/// Asserts the raw bytes a stream received hold none of `secrets`.
fn assert_unseen(stream: &SseStream, secrets: &[&str]) {
    let raw = String::from_utf8_lossy(&stream.raw);
    for secret in secrets {
        assert!(!raw.contains(secret), "{secret:?} leaked: {raw}");
    }
}

#[tokio::test]
async fn live_private_events_reach_only_granted_streams() {
    let app = subscriber_app().await;
    let path = "/stream?mode=live&topic=secret";
    let mut anonymous = open(&app, path, None).await;
    let mut granted = open(&app, path, Some(&reader(&["secret"]))).await;
    // `sec*` is no prefix selector (those end in `/*`): it names the topic `sec*` only.
    let mut not_prefix = open(&app, "/stream?mode=live&topic=*", Some(&reader(&["sec*"]))).await;
    let mut wildcard = open(&app, "/stream?mode=live&topic=*", Some(&reader(&["*"]))).await;
    let mut other = open(&app, path, Some(&reader(&["other"]))).await;
    let mut everything = open(&app, "/stream?mode=live&topic=*", None).await;
    publish(&app, "secret", "private-one", true).await;
    publish_form_private(&app, "secret", "private-two").await;
    publish(&app, "secret", "public-one", false).await;
    let all = ["private-one", "private-two", "public-one"];
    assert_eq!(messages(&take(&mut granted, 3).await), all);
    assert_eq!(messages(&take(&mut wildcard, 3).await), all);
    for stream in [&mut anonymous, &mut other, &mut everything, &mut not_prefix] {
        assert_eq!(messages(&take(stream, 1).await), ["public-one"]);
    }
    // And nothing private arrives later: the next event is the next public one.
    publish(&app, "secret", "public-two", false).await;
    for stream in [&mut anonymous, &mut other, &mut everything, &mut not_prefix] {
        assert_eq!(messages(&take(stream, 1).await), ["public-two"]);
        assert_unseen(stream, &["private-one", "private-two"]);
    }
    assert_eq!(messages(&take(&mut granted, 1).await), ["public-two"]);
}

#[tokio::test]
async fn an_anonymous_burst_skips_private_events() {
    let app = subscriber_app().await;
    let path = "/stream?topic=secret";
    let mut anonymous = open(&app, path, None).await;
    let mut other = open(&app, path, Some(&reader(&["other"]))).await;
    let mut granted = open(&app, path, Some(&reader(&["secret"]))).await;
    publish(&app, "secret", "private-burst", true).await;
    publish(&app, "secret", "public-burst", false).await;
    for (stream, expected) in [
        (&mut anonymous, "public-burst"),
        (&mut other, "public-burst"),
        (&mut granted, "private-burst"),
    ] {
        let events = stream.rest().await;
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            names,
            ["message", "message", "message", "close"],
            "{events:?}"
        );
        assert_eq!(messages(&events[..3]), [expected; 3]);
        assert_eq!(data(&events[3])["data"]["status"], "complete");
    }
    assert_unseen(&anonymous, &["private-burst"]);
    assert_unseen(&other, &["private-burst"]);
}

#[tokio::test]
async fn resume_replays_private_events_only_with_a_grant() {
    let app = subscriber_app().await;
    let start = publish(&app, "secret", "before", false).await;
    publish(&app, "secret", "private-missed", true).await;
    publish(&app, "secret", "public-missed", false).await;
    let live = format!("/stream?mode=live&topic=secret&lastEventId={start}");
    let mut anonymous = open(&app, &live, None).await;
    let mut other = open(&app, &live, Some(&reader(&["other"]))).await;
    let mut granted = open(&app, &live, Some(&reader(&["secret"]))).await;
    publish(&app, "secret", "sentinel", false).await;
    for stream in [&mut anonymous, &mut other] {
        let events = take(stream, 2).await;
        assert_eq!(messages(&events), ["public-missed", "sentinel"]);
        assert_eq!(data(&events[0])["data"]["replayed"], true);
        assert_unseen(stream, &["private-missed"]);
    }
    let events = take(&mut granted, 3).await;
    assert_eq!(
        messages(&events),
        ["private-missed", "public-missed", "sentinel"]
    );
    // The Last-Event-ID header, in burst mode: the first missed event it may see is the burst.
    let burst = "/stream?topic=secret";
    let header = [("last-event-id", start.as_str())];
    let mut anonymous_burst = app.stream_with(burst, &header).await;
    assert_eq!(
        messages(&take(&mut anonymous_burst, 3).await),
        ["public-missed"; 3]
    );
    let token = bearer(&reader(&["secret"]));
    let mut granted_burst = app
        .stream_with(burst, &[header[0], ("authorization", token.as_str())])
        .await;
    assert_eq!(
        messages(&take(&mut granted_burst, 3).await),
        ["private-missed"; 3]
    );
    assert_unseen(&anonymous_burst, &["private-missed"]);
}

fn listed(history: &Value) -> Vec<String> {
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn history_lists_private_events_only_with_a_grant() {
    let app = subscriber_app().await;
    publish(&app, "secret", "public-a", false).await;
    publish(&app, "secret", "private-b", true).await;
    publish(&app, "secret", "public-c", false).await;
    let path = "/api/topics/secret/events";
    let anonymous = get_with(&app, path, &[]).await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(listed(&anonymous.json()), ["public-a", "public-c"]);
    assert!(!anonymous.text.contains("private-b"));
    let token = reader(&["other", "secret/*"]);
    let other = get_with(&app, path, &[("authorization", &bearer(&token))]).await;
    assert_eq!(listed(&other.json()), ["public-a", "public-c"]);
    let token = reader(&["secret"]);
    let granted = get_with(&app, path, &[("authorization", &bearer(&token))]).await;
    assert_eq!(
        listed(&granted.json()),
        ["public-a", "private-b", "public-c"]
    );
    granted.assert_no_token(&token);
    // Paging past private events: a page of one is the next public event.
    let first = anonymous.json()["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = get_with(&app, &format!("{path}?after={first}&limit=1"), &[]).await;
    assert_eq!(listed(&page.json()), ["public-c"]);
    // A presented token that is not valid is refused, not treated as anonymous.
    let forged = hs256("not-the-subscriber-secret-at-all", &legacy(&[], &["*"]));
    get_with(&app, path, &[("authorization", &bearer(&forged))])
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &forged);
}

#[tokio::test]
async fn the_topic_listing_hides_what_is_only_private() {
    let app = subscriber_app().await;
    publish(&app, "hidden", "private-only", true).await;
    let public_id = publish(&app, "mixed", "public", false).await;
    let private_id = publish(&app, "mixed", "private", true).await;
    let find = |listing: &Value, topic: &str| -> Option<Value> {
        listing["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic"] == topic)
            .cloned()
    };
    let anonymous = get_with(&app, "/api/topics", &[]).await;
    assert_eq!(anonymous.status, 200);
    let listing = anonymous.json();
    assert_eq!(find(&listing, "hidden"), None, "{listing}");
    let mixed = find(&listing, "mixed").unwrap();
    assert_eq!(mixed["history"], 1);
    assert_eq!(mixed["last_id"], public_id.as_str());
    assert!(!anonymous.text.contains(&private_id));
    let token = reader(&["hidden", "mixed"]);
    let granted = get_with(&app, "/api/topics", &[("authorization", &bearer(&token))]).await;
    let listing = granted.json();
    assert_eq!(find(&listing, "hidden").unwrap()["history"], 1);
    let mixed = find(&listing, "mixed").unwrap();
    assert_eq!(mixed["history"], 2);
    assert_eq!(mixed["last_id"], private_id.as_str());
}

#[tokio::test]
async fn cookies_and_draft_08_tokens_open_private_events_too() {
    let app = subscriber_app().await;
    let path = "/stream?mode=live&topic=secret";
    let token = reader(&["secret"]);
    let legacy_cookie = format!("mercureAuthorization={token}");
    let cookie = format!("other=1; __Secure-mercure_access_token={token}");
    let mut by_legacy_cookie = app.stream_with(path, &[("cookie", &legacy_cookie)]).await;
    let mut by_cookie = app.stream_with(path, &[("cookie", &cookie)]).await;
    let here = format!("http://{}/.well-known/mercure", app.addr);
    let details = json!([detail(json!(["subscribe"]), json!([{"match": "secret"}]))]);
    let draft = at_jwt(SUB_SECRET, &draft08(&here, details));
    let mut by_draft = open(&app, path, Some(&draft)).await;
    // A cookie that does not verify is refused like a header would be.
    let forged = format!(
        "mercureAuthorization={}",
        reader(&["secret"]).replace('.', "x.")
    );
    refused_stream(&app, path, &[("cookie", &forged)])
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &forged);
    publish(&app, "secret", "private", true).await;
    publish(&app, "secret", "public", false).await;
    for stream in [&mut by_legacy_cookie, &mut by_cookie, &mut by_draft] {
        assert_eq!(messages(&take(stream, 2).await), ["private", "public"]);
    }
}

async fn redis_node(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    spawn_app(move |c| {
        c.broker = Some(url);
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.interval = Duration::from_millis(50);
    })
    .await
}

#[tokio::test]
async fn private_events_stay_private_across_redis_nodes() {
    let redis = RedisServer::start();
    let (a, b) = (redis_node(&redis).await, redis_node(&redis).await);
    a.wait_ready().await;
    b.wait_ready().await;
    let live = "/stream?mode=live&topic=secret";
    // Delivery to the other node is asynchronous: streams opened on b once "before" reached
    // it get only what follows.
    let mut probe = open(&b, live, None).await;
    let start = publish(&a, "secret", "before", false).await;
    assert_eq!(messages(&take(&mut probe, 1).await), ["before"]);
    let mut anonymous = open(&b, live, None).await;
    let mut granted = open(&b, live, Some(&reader(&["secret"]))).await;
    let mut burst = open(&b, "/stream?topic=secret", None).await;
    publish(&a, "secret", "private-one", true).await;
    publish(&a, "secret", "public-one", false).await;
    assert_eq!(messages(&take(&mut anonymous, 1).await), ["public-one"]);
    assert_eq!(
        messages(&take(&mut granted, 2).await),
        ["private-one", "public-one"]
    );
    assert_eq!(messages(&take(&mut burst, 3).await), ["public-one"; 3]);
    // Resume on the other node.
    let resume = format!("{live}&lastEventId={start}");
    let mut anonymous_resume = open(&a, &resume, None).await;
    let mut granted_resume = open(&a, &resume, Some(&reader(&["secret"]))).await;
    assert_eq!(
        messages(&take(&mut anonymous_resume, 1).await),
        ["public-one"]
    );
    assert_eq!(
        messages(&take(&mut granted_resume, 2).await),
        ["private-one", "public-one"]
    );
    publish(&b, "secret", "sentinel", false).await;
    for stream in [&mut anonymous, &mut anonymous_resume] {
        assert_eq!(messages(&take(stream, 1).await), ["sentinel"]);
        assert_unseen(stream, &["private-one"]);
    }
    assert_unseen(&burst, &["private-one"]);
    // History on either node.
    let path = "/api/topics/secret/events";
    let token = bearer(&reader(&["secret"]));
    for node in [&a, &b] {
        let anonymous = get_with(node, path, &[]).await;
        assert_eq!(
            listed(&anonymous.json()),
            ["before", "public-one", "sentinel"]
        );
        let granted = get_with(node, path, &[("authorization", &token)]).await;
        assert_eq!(
            listed(&granted.json()),
            ["before", "private-one", "public-one", "sentinel"]
        );
    }
}

#[tokio::test]
async fn the_topic_listing_hides_what_is_only_private_on_redis() {
    let redis = RedisServer::start();
    let app = redis_node(&redis).await;
    app.wait_ready().await;
    publish(&app, "hidden", "private-only", true).await;
    let public_id = publish(&app, "mixed", "public", false).await;
    let private_id = publish(&app, "mixed", "private", true).await;
    let anonymous = get_with(&app, "/api/topics", &[]).await;
    let listing = anonymous.json();
    let topics = listing["topics"].as_array().unwrap();
    assert!(topics.iter().all(|t| t["topic"] != "hidden"), "{listing}");
    let mixed = topics.iter().find(|t| t["topic"] == "mixed").unwrap();
    assert_eq!(mixed["last_id"], public_id.as_str(), "{listing}");
    assert_eq!(mixed["history"], 1, "{listing}");
    assert!(!anonymous.text.contains(&private_id));
}
