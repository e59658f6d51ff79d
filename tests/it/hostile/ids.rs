//! A publisher may choose an event's id (Mercure), and ids are resume cursors: no publisher
//! may use that to move another topic's subscribers. A hub id as the hub sends it
//! (`urn:ssehub:…`) always means the hub's event and no publisher may choose one; a publisher
//! id (which the draft lets publishers reuse) resolves only among the topics the resuming
//! stream watches, to the earliest such event there. On every broker.

use crate::common::auth::{hs256, legacy, SECRET};
use crate::common::mercure::{form, post, publish_with, subscribe, HUB};
use crate::common::redis::RedisServer;
use crate::common::{spawn_app, SseStream, TestApp};

async fn app_on(broker: &str, redis: Option<&RedisServer>, dir: &std::path::Path) -> TestApp {
    let app = spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(SECRET.into());
        match broker {
            "redis" => c.broker = redis.map(RedisServer::url),
            "durable" => c.data_dir = Some(dir.to_path_buf()),
            _ => {}
        }
    })
    .await;
    app.wait_ready().await;
    app
}

/// The response's cursor (`Mercure-Last-Event-ID`).
fn anchor(stream: &SseStream) -> String {
    let value = stream.headers.get("mercure-last-event-id").unwrap();
    value.to_str().unwrap().to_owned()
}

async fn datas(stream: &mut SseStream, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < n {
        seen.push(stream.next().await.expect("the stream ended").data);
    }
    seen
}

async fn cursors_stay_in_their_topics(broker: &str) {
    let redis = (broker == "redis").then(RedisServer::start);
    let dir = crate::common::auth::TempDir::new(&format!("ids-{broker}"));
    let app = app_on(broker, redis.as_ref(), &dir.0).await;
    let victim = hs256(SECRET, &legacy(&["victim"], &[]));
    let evil = hs256(SECRET, &legacy(&["evil"], &[]));
    let put = |token: &str, topic: &str, data: &str, id: Option<&str>| {
        let mut pairs = vec![("topic", topic.to_owned()), ("data", data.to_owned())];
        pairs.extend(id.map(|id| ("id", id.to_owned())));
        let token = token.to_owned();
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(app, Some(&token), &form(&pairs)).await
        }
    };
    let v1 = publish_with(&app, Some(&victim), &[("topic", "victim"), ("data", "v1")]).await;
    publish_with(&app, Some(&victim), &[("topic", "victim"), ("data", "v2")]).await;
    publish_with(&app, Some(&victim), &[("topic", "victim"), ("data", "v3")]).await;

    // Round 2's attack: the victim's hub id as the evil topic's publisher id. As the hub
    // writes it, it is refused; in its bare form it is the evil event's own id.
    let refused = put(&evil, "evil", "hijack", Some(&v1)).await;
    assert_eq!(refused.status, 400, "{broker}: {refused:?}");
    assert!(refused.json()["error"]
        .as_str()
        .unwrap()
        .contains("urn:ssehub:"));
    let bare = v1.trim_start_matches("urn:ssehub:");
    assert_eq!(put(&evil, "evil", "hijack", Some(bare)).await.status, 200);
    // The victim's subscribers still resume exactly after V1, by either spelling.
    let pairs = [("topic", "victim")];
    for cursor in [v1.as_str(), bare] {
        let mut resumed = subscribe(&app, &pairs, &[("last-event-id", cursor)]).await;
        assert_eq!(anchor(&resumed), cursor, "{broker}");
        assert_eq!(
            datas(&mut resumed, 2).await,
            ["v2", "v3"],
            "{broker} {cursor}"
        );
    }
    // The evil topic's subscribers resume from the evil event.
    let mut own = subscribe(&app, &[("topic", "evil")], &[("last-event-id", bare)]).await;
    assert_eq!(anchor(&own), bare, "{broker}");
    publish_with(&app, Some(&evil), &[("topic", "evil"), ("data", "e1")]).await;
    assert_eq!(datas(&mut own, 1).await, ["e1"], "{broker}");

    // An id reused on two topics: each topic's subscribers resume from their own event.
    let evil_first = [("topic", "evil"), ("data", "e2"), ("id", "order-42")];
    assert_eq!(
        publish_with(&app, Some(&evil), &evil_first).await,
        "order-42"
    );
    let victim_later = [("topic", "victim"), ("data", "v4"), ("id", "order-42")];
    publish_with(&app, Some(&victim), &victim_later).await;
    publish_with(&app, Some(&victim), &[("topic", "victim"), ("data", "v5")]).await;
    let mut moved = subscribe(&app, &pairs, &[("last-event-id", "order-42")]).await;
    assert_eq!(anchor(&moved), "order-42", "{broker}");
    assert_eq!(datas(&mut moved, 1).await, ["v5"], "{broker}");
    // An id the stream's topics never carried is unknown there: told of a gap (`earliest`).
    let evil_only = [("topic", "evil"), ("data", "e3"), ("id", "evil-only")];
    publish_with(&app, Some(&evil), &evil_only).await;
    let mut unknown = subscribe(&app, &pairs, &[("last-event-id", "evil-only")]).await;
    assert_eq!(anchor(&unknown), "earliest", "{broker}");
    assert_eq!(datas(&mut unknown, 1).await, ["v1"], "{broker}");
    let _ = HUB;
}

#[tokio::test]
async fn publisher_ids_cannot_move_other_topics_cursors_in_memory() {
    cursors_stay_in_their_topics("memory").await;
}

#[tokio::test]
async fn publisher_ids_cannot_move_other_topics_cursors_with_a_data_dir() {
    cursors_stay_in_their_topics("durable").await;
}

#[tokio::test]
async fn publisher_ids_cannot_move_other_topics_cursors_on_redis() {
    cursors_stay_in_their_topics("redis").await;
}
