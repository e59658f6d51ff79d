//! Where a stream without a cursor starts: a live stream's handshake carries it as its `id:`
//! and a Mercure subscription as `Mercure-Last-Event-ID`, so that a client which reconnects (or
//! hands the stream to another tab) before any event came resumes from there and misses
//! nothing published in between, and gets nothing from before it subscribed.

use crate::common;

use std::sync::Arc;

use common::mercure::{publish as mercure_publish, subscribe as mercure_subscribe};
use common::redis::RedisServer;
use common::{message, spawn_app, take, SseStream, TestApp};
use futures_util::future::join_all;
use ssehub::sse::EventId;

/// Opens a live stream on `topic`; returns it and the id its handshake carried.
async fn live(app: &TestApp, topic: &str, cursor: Option<&str>) -> (SseStream, String) {
    let path = format!("/stream?mode=live&topic={topic}");
    let headers: Vec<(&str, &str)> = cursor.map(|c| ("last-event-id", c)).into_iter().collect();
    let stream = app.stream_with(&path, &headers).await;
    let start = stream.parser.last_event_id().unwrap_or_default().to_owned();
    (stream, start)
}

#[tokio::test]
async fn a_live_stream_says_where_it_starts_and_resuming_there_misses_nothing() {
    let app = spawn_app(|_| {}).await;
    // Nothing issued yet: it starts at `earliest`.
    let (first, from_start) = live(&app, "a", None).await;
    assert_eq!(from_start, "earliest");
    let elsewhere = app.publish("b", "before, elsewhere").await;
    let before = app.publish("a", "before").await;
    let (second, start) = live(&app, "a", None).await;
    // The newest event issued before it, whatever its topic.
    assert_eq!(start, before.to_string());
    assert!(elsewhere < before);
    drop((first, second));
    app.publish("a", "while away").await;
    app.publish("c", "not subscribed").await;
    let (mut again, _) = live(&app, "a", Some(&start)).await;
    app.publish("a", "sentinel").await;
    let got = take(&mut again, 2).await;
    assert_eq!(
        got.iter().map(message).collect::<Vec<_>>(),
        ["while away", "sentinel"],
        "no gap, nothing from before"
    );
    // From `earliest`: everything the topic holds.
    let (mut all, _) = live(&app, "a", Some(&from_start)).await;
    let got = take(&mut all, 3).await;
    assert_eq!(
        got.iter().map(message).collect::<Vec<_>>(),
        ["before", "while away", "sentinel"]
    );
    // A stream with a cursor needs no start; a burst (the seed's contract) has none.
    assert_eq!(
        again
            .raw
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(b"id: "))
            .count(),
        2
    );
    let burst = app.stream("/stream").await;
    assert!(
        !String::from_utf8_lossy(&burst.raw).contains("id:"),
        "{:?}",
        burst.raw
    );
}

#[tokio::test]
async fn a_mercure_subscription_without_a_cursor_says_where_it_starts() {
    let app = spawn_app(|_| {}).await;
    let topic = [("topic", "https://example.com/r")];
    let fresh = mercure_subscribe(&app, &topic, &[]).await;
    assert_eq!(fresh.headers["mercure-last-event-id"], "earliest");
    // The legacy header answers a cursor only.
    assert!(fresh.headers.get("last-event-id").is_none());
    mercure_publish(&app, &[("topic", "https://example.com/r"), ("data", "one")]).await;
    let start = mercure_subscribe(&app, &topic, &[]).await.headers["mercure-last-event-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(start.starts_with("urn:ssehub:"), "{start}");
    mercure_publish(&app, &[("topic", "https://example.com/r"), ("data", "two")]).await;
    let mut resumed = mercure_subscribe(&app, &topic, &[("last-event-id", &start)]).await;
    assert_eq!(resumed.headers["mercure-last-event-id"], start.as_str());
    let event = resumed.next().await.unwrap();
    assert_eq!(event.data, "two");
}

/// Streams open while publishers race on their topic; each must then receive exactly the
/// topic's events after its start: none missed, none from before, none twice.
async fn race(app: Arc<TestApp>, publishers: usize, each: usize, streams: usize) {
    let published = Arc::new(std::sync::Mutex::new(Vec::<EventId>::new()));
    let publishing = (0..publishers).map(|p| {
        let (app, published) = (Arc::clone(&app), Arc::clone(&published));
        tokio::spawn(async move {
            for i in 0..each {
                let id = app.publish("race", &format!("{p}-{i}")).await;
                published.lock().unwrap().push(id);
            }
        })
    });
    let publishing: Vec<_> = publishing.collect();
    let mut opened = Vec::new();
    for _ in 0..streams {
        opened.push(live(&app, "race", None).await);
        tokio::task::yield_now().await;
    }
    for task in join_all(publishing).await {
        task.unwrap();
    }
    let sentinel = app.publish("race", "sentinel").await;
    let all = published.lock().unwrap().clone();
    for (n, (mut stream, start)) in opened.into_iter().enumerate() {
        let start: EventId = match start.as_str() {
            "earliest" => EventId::default(),
            id => id.parse().unwrap(),
        };
        let mut got = Vec::new();
        loop {
            let event = stream
                .next_event()
                .await
                .expect("ended before the sentinel");
            let id: EventId = event.id.as_deref().unwrap().parse().unwrap();
            if id == sentinel {
                break;
            }
            got.push(id);
        }
        let mut want: Vec<EventId> = all.iter().copied().filter(|id| *id > start).collect();
        want.sort();
        assert_eq!(got, want, "stream {n} (start {start:?})");
    }
}

#[tokio::test]
async fn streams_opened_during_a_publish_race_get_exactly_what_follows_their_start() {
    let app = Arc::new(spawn_app(|_| {}).await);
    race(app, 4, 100, 20).await;
}

#[tokio::test]
async fn on_redis_a_node_that_delivered_nothing_yet_starts_streams_where_the_broker_is() {
    let redis = RedisServer::start();
    let url = redis.url();
    let on = |url: String| spawn_app(move |c| c.broker = Some(url));
    let a = on(url.clone()).await;
    a.wait_ready().await;
    let before = a.publish("t", "before b started").await;
    let b = on(url).await;
    b.wait_ready().await;
    let (first, start) = live(&b, "t", None).await;
    drop(first);
    assert_eq!(start, before.to_string(), "the broker's newest id");
    a.publish("t", "while away").await;
    let (mut again, _) = live(&b, "t", Some(&start)).await;
    assert_eq!(message(&take(&mut again, 1).await[0]), "while away");
    // The exactness of the start under racing publishes, through Redis.
    race(Arc::new(b), 3, 60, 10).await;
}
