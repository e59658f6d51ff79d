//! `GET /stream` in its default burst mode: the seed's contract, over real TCP.

use crate::common;

use std::time::{Duration, Instant};

use common::{data, message, spawn_app, SseStream};
use futures_util::future::join_all;

#[tokio::test]
async fn burst_sends_three_copies_one_second_apart_then_close_then_ends() {
    let app = spawn_app(|_| {}).await;
    let mut stream = app.stream("/stream").await;
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    let handshake = common::data(&ssehub::sse::Parser::new().feed(&stream.raw)[0]);
    assert_eq!(handshake["data"]["status"], "connected");
    assert!(handshake["timestamp"].is_f64());

    let id = app.publish("default", "Hello from curl").await;
    let mut arrivals = Vec::new();
    for sequence in 1..=3u64 {
        let event = stream.next().await.expect("message");
        arrivals.push(Instant::now());
        assert_eq!(event.event, "message");
        assert_eq!(event.id.as_deref(), Some(id.to_string().as_str()));
        let json = data(&event);
        assert_eq!(json["data"]["message"], "Hello from curl");
        assert_eq!(json["data"]["sequence"], sequence);
        assert_eq!(json["data"]["total"], 3);
        assert_eq!(json["data"]["remaining"], 3 - sequence);
        assert!(json["timestamp"].is_f64());
    }
    // The copies come a second apart, not back to back nor late by rounds. How close to a
    // second is the benchmark's to measure (`bench/burst-check`: within 10 ms at 19,000
    // streams); here, on a CI machine running other tests on both cores, one copy may reach
    // the client a few hundred milliseconds late, so the window is wide.
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(700) && gap < Duration::from_millis(1600),
            "repeats {gap:?} apart"
        );
    }
    let close = stream.next().await.expect("close");
    assert_eq!(close.event, "close");
    assert_eq!(data(&close)["data"]["status"], "complete");
    assert!(
        stream.next().await.is_none(),
        "response must end after close"
    );
}

#[tokio::test]
async fn every_stream_gets_every_message_and_only_the_next_one() {
    let app = spawn_app(|c| c.interval = Duration::from_millis(50)).await;
    app.publish("default", "before anyone listened").await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(app.stream("/stream").await);
    }
    app.publish("default", "first").await;
    app.publish("default", "second").await;
    for mut stream in streams {
        let events = stream.rest().await;
        let messages: Vec<String> = events
            .iter()
            .filter(|e| e.event == "message")
            .map(message)
            .collect();
        assert_eq!(messages, ["first", "first", "first"]);
        assert_eq!(events.last().unwrap().event, "close");
    }
}

#[tokio::test]
async fn repeats_and_interval_come_from_the_config() {
    let app = spawn_app(|c| {
        c.repeats = 5;
        c.interval = Duration::from_millis(20);
    })
    .await;
    let mut stream = app.stream("/stream").await;
    app.publish("default", "x").await;
    let events = stream.rest().await;
    assert_eq!(events.len(), 6);
    assert_eq!(data(&events[4])["data"]["total"], 5);
    assert_eq!(data(&events[4])["data"]["remaining"], 0);
}

#[tokio::test]
async fn a_thousand_concurrent_streams_all_get_the_burst() {
    let app = spawn_app(|c| c.interval = Duration::from_millis(200)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = app.url("/stream");
    let opened = join_all((0..1000).map(|_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let mut stream = SseStream::open(&client, &url, &[]).await;
            assert_eq!(stream.next().await.unwrap().event, "keepalive");
            stream
        }
    }))
    .await;
    assert_eq!(app.state.open_streams(), 1000);
    app.publish("default", "to everyone").await;
    let results = join_all(
        opened
            .into_iter()
            .map(|mut stream| async move { stream.rest().await }),
    )
    .await;
    for events in results {
        let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["message", "message", "message", "close"]);
        assert!(events[..3].iter().all(|e| message(e) == "to everyone"));
    }
}

#[tokio::test]
async fn payloads_cannot_forge_fields_or_events() {
    let app = spawn_app(|c| c.interval = Duration::from_millis(10)).await;
    for evil in [
        "line one\nline two",
        "x\n\nevent: close\ndata: forged\n\n",
        "x\r\nid: 999\r\nretry: 1\r\n\r\n",
        "x\revent: close\r\rdata: y",
        "data: {\"a\": 1}\nevent: message",
        "\u{0}nul and \u{2028} separators \u{85}",
    ] {
        let mut stream = app.stream("/stream").await;
        let id = app.publish("default", evil).await;
        let events = stream.rest().await;
        assert_eq!(events.len(), 4, "{evil:?}: {events:?}");
        for event in &events[..3] {
            assert_eq!(event.event, "message");
            assert_eq!(event.id.as_deref(), Some(id.to_string().as_str()));
            assert_eq!(event.retry, None);
            assert_eq!(message(event), evil);
        }
        assert_eq!(events[3].event, "close");
        assert_eq!(data(&events[3])["data"]["status"], "complete");
    }
    // Through the text/plain form too: JSON escaping keeps it on one data line.
    let mut stream = app.stream("/stream").await;
    let response = app
        .client
        .post(app.url("/publish"))
        .header("content-type", "text/plain")
        .body("a\n\nevent: close\n\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let events = stream.rest().await;
    assert_eq!(events.len(), 4);
    assert_eq!(message(&events[0]), "a\n\nevent: close\n\n");
}

#[tokio::test]
async fn resume_picks_the_first_event_after_the_last_id() {
    let app = spawn_app(|c| c.interval = Duration::from_millis(10)).await;
    let mut stream = app.stream("/stream").await;
    let first = app.publish("default", "one").await;
    stream.rest().await;
    // Published while the page had no stream open: a reconnect with Last-Event-ID gets it.
    app.publish("default", "two").await;
    app.publish("default", "three").await;
    let mut again = app
        .stream_with("/stream", &[("last-event-id", &first.to_string())])
        .await;
    let events = again.rest().await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event == "message")
            .map(message)
            .collect::<Vec<_>>(),
        ["two"; 3]
    );
    let last = events[0].id.clone().unwrap();
    let mut third = app.stream(&format!("/stream?lastEventId={last}")).await;
    assert_eq!(message(&third.next().await.unwrap()), "three");
}
