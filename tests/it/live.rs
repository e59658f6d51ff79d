//! Topics, live streams, ids, resume, history and limits, over real TCP.

use crate::common;

use std::time::Duration;

use common::{assert_nothing_before_sentinel, data, ids, message, spawn_app, take, PATIENCE};
use futures_util::future::join_all;
use ssehub::sse::EventId;

#[tokio::test]
async fn live_stream_starts_with_retry_and_gets_only_its_topic() {
    let app = spawn_app(|_| {}).await;
    let mut stream = app.stream("/stream?mode=live&topic=a").await;
    assert_eq!(stream.parser.retry(), Some(2000));
    app.publish("b", "not for a").await;
    app.publish("a", "for a").await;
    app.publish("a/b", "not for a either").await;
    app.publish("a", "also for a").await;
    let events = take(&mut stream, 2).await;
    assert_eq!(
        events.iter().map(message).collect::<Vec<_>>(),
        ["for a", "also for a"]
    );
    assert_eq!(data(&events[0])["data"]["topic"], "a");
    assert_nothing_before_sentinel(&app, &mut stream, "a").await;
}

#[tokio::test]
async fn wildcards_match_prefixes_and_each_event_arrives_once() {
    let app = spawn_app(|_| {}).await;
    let mut wild = app.stream("/stream?mode=live&topic=chat/*").await;
    let mut overlapping = app
        .stream("/stream?mode=live&topic=chat/a&topic=chat/*&topic=*&topic=chat/a")
        .await;
    app.publish("chat", "no: not under chat/").await;
    app.publish("chat/a", "one").await;
    app.publish("chatter/x", "no").await;
    app.publish("chat/b/c", "two").await;
    app.publish("zzz", "three").await;
    let got = take(&mut wild, 2).await;
    assert_eq!(got.iter().map(message).collect::<Vec<_>>(), ["one", "two"]);
    let got = take(&mut overlapping, 5).await;
    let messages: Vec<String> = got.iter().map(message).collect();
    assert_eq!(
        messages,
        ["no: not under chat/", "one", "no", "two", "three"]
    );
    let ids = ids(&got);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_nothing_before_sentinel(&app, &mut overlapping, "chat/a").await;
}

#[tokio::test]
async fn custom_event_types_are_delivered_as_such() {
    let app = spawn_app(|_| {}).await;
    let mut stream = app.stream("/stream?mode=live&topic=t").await;
    let (status, _) = app
        .post_json(serde_json::json!({"message": "m", "topic": "t", "event": "price.update"}))
        .await;
    assert_eq!(status, 201);
    let event = stream.next_event().await.unwrap();
    assert_eq!(event.event, "price.update");
}

#[tokio::test]
async fn live_order_holds_under_concurrent_publishers() {
    let app = spawn_app(|_| {}).await;
    let mut streams = [
        app.stream("/stream?mode=live&topic=t").await,
        app.stream("/stream?mode=live&topic=t&topic=u").await,
    ];
    let publishers = (0..4).map(|p| {
        let app = &app;
        async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                let topic = if i % 2 == 0 { "t" } else { "u" };
                ids.push((topic, app.publish(topic, &format!("{p}:{i}")).await));
            }
            ids
        }
    });
    let published: Vec<(&str, EventId)> =
        join_all(publishers).await.into_iter().flatten().collect();
    let mut all_ids: Vec<EventId> = published.iter().map(|(_, id)| *id).collect();
    all_ids.sort_unstable();
    let mut t_ids: Vec<EventId> = published
        .iter()
        .filter(|(t, _)| *t == "t")
        .map(|(_, id)| *id)
        .collect();
    t_ids.sort_unstable();
    for (stream, expected) in streams.iter_mut().zip([t_ids, all_ids]) {
        let events = take(stream, expected.len()).await;
        assert_eq!(ids(&events), expected, "every event once, in id order");
        // Each publisher's own messages arrive in the order it sent them.
        for p in 0..4 {
            let mine: Vec<u32> = events
                .iter()
                .map(message)
                .filter(|m| m.starts_with(&format!("{p}:")))
                .map(|m| m[2..].parse().unwrap())
                .collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        }
    }
}

#[tokio::test]
async fn resume_after_a_dropped_connection_has_no_gap_and_no_duplicate() {
    let app = spawn_app(|_| {}).await;
    let mut stream = app.stream("/stream?mode=live&topic=a&topic=b").await;
    app.publish("a", "1").await;
    app.publish("b", "2").await;
    let seen = take(&mut stream, 2).await;
    let last = seen[1].id.clone().unwrap();
    assert_eq!(stream.parser.last_event_id(), Some(last.as_str()));
    drop(stream);
    // Published while the client was away.
    app.publish("a", "3").await;
    app.publish("c", "not subscribed").await;
    app.publish("b", "4").await;
    let mut again = app
        .stream_with(
            "/stream?mode=live&topic=a&topic=b&lastEventId=0",
            &[("last-event-id", &last)],
        )
        .await;
    let replayed = take(&mut again, 2).await;
    assert_eq!(replayed.iter().map(message).collect::<Vec<_>>(), ["3", "4"]);
    assert!(replayed.iter().all(|e| data(e)["data"]["replayed"] == true));
    app.publish("b", "5").await;
    let live = again.next_event().await.unwrap();
    assert_eq!(message(&live), "5");
    assert!(data(&live)["data"].get("replayed").is_none());
    assert_nothing_before_sentinel(&app, &mut again, "b").await;
}

#[tokio::test]
async fn an_id_older_than_history_gets_a_gap_event_then_the_oldest_held() {
    let app = spawn_app(|c| c.history = 3).await;
    let first = app.publish("t", "0").await;
    for i in 1..6 {
        app.publish("t", &i.to_string()).await;
    }
    let mut stream = app
        .stream(&format!("/stream?mode=live&topic=t&lastEventId={first}"))
        .await;
    let gap = stream.next_event().await.unwrap();
    assert_eq!(gap.event, "gap");
    assert_eq!(data(&gap)["data"]["requested"], first.to_string());
    let held = take(&mut stream, 3).await;
    assert_eq!(
        held.iter().map(message).collect::<Vec<_>>(),
        ["3", "4", "5"]
    );

    // A malformed or unknown id is treated the same way.
    for bad in [
        "banana",
        "99999999999999999999",
        "1-",
        "-1",
        "1-2-3",
        "99999999999999-1",
    ] {
        let mut stream = app
            .stream_with("/stream?mode=live&topic=t", &[("last-event-id", bad)])
            .await;
        assert_eq!(stream.next_event().await.unwrap().event, "gap", "{bad}");
        assert_eq!(take(&mut stream, 3).await.len(), 3);
    }
    // History honours its count bound.
    let page: serde_json::Value = app.get_json("/api/topics/t/events").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn history_expires_by_age() {
    let app = spawn_app(|c| c.history_age = Duration::from_millis(200)).await;
    let first = app.publish("t", "old").await;
    let mut waited = Duration::ZERO;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
        let page: serde_json::Value = app.get_json("/api/topics/t/events").await;
        if page["events"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(waited < Duration::from_secs(5), "history never expired");
    }
    let mut stream = app
        .stream(&format!(
            "/stream?mode=live&topic=t&lastEventId={}",
            EventId::new(first.ms, first.seq - 1)
        ))
        .await;
    assert_eq!(stream.next_event().await.unwrap().event, "gap");
}

#[tokio::test]
async fn heartbeats_keep_idle_streams_alive() {
    let app = spawn_app(|c| c.heartbeat = Duration::from_millis(100)).await;
    let mut stream = app.stream("/stream?mode=live").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stream.parser.comments < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no heartbeats");
        let _ = stream.next_within(Duration::from_millis(50)).await;
    }
    assert!(String::from_utf8_lossy(&stream.raw).contains(": heartbeat\n"));
}

#[tokio::test]
async fn stream_cap_answers_503_with_retry_after() {
    let app = spawn_app(|c| c.max_streams = Some(2)).await;
    let first = app.stream("/stream?mode=live").await;
    let _second = app.stream("/stream?mode=live").await;
    let response = app.client.get(app.url("/stream")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("too many"));
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while app.state.open_streams() > 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stream("/stream?mode=live").await;
}

#[tokio::test]
async fn too_many_topics_per_stream_is_a_400() {
    let app = spawn_app(|c| c.max_topics_per_stream = 2).await;
    let response = app
        .client
        .get(app.url("/stream?topic=a&topic=b&topic=c"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn an_id_from_before_a_restart_gets_a_gap_event() {
    let mut before = spawn_app(|_| {}).await;
    let old = before.publish("t", "lost with the old process").await;
    before.shutdown().await.unwrap();
    // The new process starts in a later millisecond than the old id.
    while (ssehub::event::unix_now() * 1000.0) as u64 <= old.ms {
        tokio::task::yield_now().await;
    }
    let after = spawn_app(|_| {}).await;
    after.publish("t", "new").await;
    let mut stream = after
        .stream_with(
            "/stream?mode=live&topic=t",
            &[("last-event-id", &old.to_string())],
        )
        .await;
    assert_eq!(stream.next_event().await.unwrap().event, "gap");
    assert_eq!(message(&stream.next_event().await.unwrap()), "new");
}

#[tokio::test]
async fn an_empty_last_event_id_means_no_resume() {
    let app = spawn_app(|_| {}).await;
    app.publish("t", "old").await;
    let mut stream = app.stream("/stream?mode=live&topic=t&lastEventId=").await;
    app.publish("t", "new").await;
    assert_eq!(message(&stream.next_event().await.unwrap()), "new");
}

#[tokio::test]
async fn at_the_topic_cap_the_least_recently_used_unwatched_topic_makes_room() {
    let app = spawn_app(|c| c.max_topics = 2).await;
    let first = app.publish("one", "1").await;
    app.publish("one", "1 again").await;
    app.publish("two", "2").await;
    let _watching = app.stream("/stream?mode=live&topic=two").await;
    // "one" is the least recently published and nobody watches it: it goes, history first.
    app.publish("three", "3").await;
    let topics = app.get_json("/api/topics").await;
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"one"), "{topics}");
    // A stream resuming "one" from its event is told events may be gone.
    let mut resumed = app
        .stream(&format!("/stream?mode=live&topic=one&lastEventId={first}"))
        .await;
    assert_eq!(resumed.next_event().await.unwrap().event, "gap");
    drop(resumed);
    // Every topic watched: a new topic is refused with 503 until a watcher leaves.
    let three = app.stream("/stream?mode=live&topic=three").await;
    let (status, body) = app
        .post_json(serde_json::json!({"message": "4", "topic": "four"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("too many topics"));
    drop(three);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, _) = app
            .post_json(serde_json::json!({"message": "4", "topic": "four"}))
            .await;
        if status == 201 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cap never freed up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.publish("two", "still fine").await;
}

/// A `*` subscriber (or a Mercure `{+path}` one) matches every topic: it must not freeze the
/// table at the cap. The oldest topic only it matches makes room; it still gets every live
/// event, and a resume from before the forgotten history is told of the gap.
#[tokio::test]
async fn a_wildcard_subscriber_does_not_freeze_the_topic_table() {
    let app = spawn_app(|c| c.max_topics = 3).await;
    let mut all = app.stream("/stream?mode=live&topic=*").await;
    let first = app.publish("a", "1").await;
    app.publish("a", "1b").await;
    app.publish("b", "2").await;
    app.publish("c", "3").await;
    app.publish("d", "4").await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(message(&all.next_event().await.unwrap()));
    }
    assert_eq!(seen, ["1", "1b", "2", "3", "4"]);
    let mut resumed = app
        .stream(&format!("/stream?mode=live&topic=*&lastEventId={first}"))
        .await;
    assert_eq!(resumed.next_event().await.unwrap().event, "gap");
    // Topics a stream names exactly go last: "b" is the oldest, but "c" goes.
    let _b = app.stream("/stream?mode=live&topic=b").await;
    app.publish("e", "5").await;
    let topics = app.get_json("/api/topics").await;
    let history = |name: &str| {
        topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic"] == name)
            .map_or(0, |t| t["history"].as_u64().unwrap())
    };
    assert_eq!((history("b"), history("c")), (1, 0), "{topics}");
}

#[tokio::test]
async fn subscribed_topics_count_against_the_cap() {
    let app = spawn_app(|c| c.max_topics = 3).await;
    let _first = app
        .stream("/stream?mode=live&topic=a&topic=b&topic=c")
        .await;
    let response = app
        .client
        .get(app.url("/stream?mode=live&topic=d"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("too many topics"));
    // Topics already subscribed are still open to more streams.
    let _second = app.stream("/stream?mode=live&topic=a").await;
}
