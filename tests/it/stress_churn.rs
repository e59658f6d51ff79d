//! Churn on one topic past 64 subscribers, where the fan-out's subscriber list becomes an index
//! (`hub::fanout::members`): 100 streams watch the topic throughout, while tasks keep opening
//! streams on it, reading a few events and vanishing mid-stream, and publishers publish to it.
//! Every steady stream must get every event once, in order; every vanishing stream an unbroken
//! run of them (nothing skipped between its first and last event). Both brokers.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::redis::RedisServer;
use common::{spawn_app, SseStream, TestApp, PATIENCE};
use futures_util::future::join_all;
use serde_json::json;
use ssehub::sse::EventId;
use ssehub::Config;
use tokio::sync::watch;

const TOPIC: &str = "churn/a";
/// Streams that stay for the whole test: more than the 64 of a plain subscriber list.
const STEADY: usize = 100;
/// Tasks opening and dropping streams, and how many streams each opens.
const CHURNERS: usize = 6;
const CYCLES: usize = 30;
const PUBLISHERS: usize = 4;
const PUBLISHES: usize = 400;

fn settings(config: &mut Config) {
    config.queue = 100_000;
    // No heartbeat during the test: any comment line is then a `: lagged` notice.
    config.heartbeat = Duration::from_secs(3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_churn_past_the_subscriber_index_loses_nothing() {
    let app = spawn_app(settings).await;
    churn("memory", &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_churn_past_the_subscriber_index_loses_nothing() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app(move |c| {
        settings(c);
        c.broker = Some(url);
    })
    .await;
    app.wait_ready().await;
    churn("redis", &app).await;
}

async fn churn(broker: &str, app: &TestApp) {
    let path = format!("/stream?mode=live&topic={TOPIC}");
    // The published count, once every publish is answered.
    let (total_tx, total_rx) = watch::channel(None::<usize>);
    let mut steady = Vec::with_capacity(STEADY);
    for _ in 0..STEADY {
        // `stream` returns once the `keepalive` arrived: the subscription exists.
        let stream = app.stream(&path).await;
        steady.push(tokio::spawn(read_all(stream, total_rx.clone())));
    }
    let churners: Vec<_> = (0..CHURNERS)
        .map(|c| {
            let client = app.client.clone();
            let url = app.url(&path);
            tokio::spawn(async move {
                let mut runs = Vec::new();
                for cycle in 0..CYCLES {
                    let mut stream = SseStream::open(&client, &url, &[]).await;
                    // 0 to 6 events, then gone without a word (the socket dropped).
                    let want = (c + cycle) % 7;
                    let mut run = Vec::new();
                    while run.len() < want {
                        match stream.next_within(Duration::from_millis(200)).await {
                            Ok(Some(event)) if event.event == "message" => {
                                run.push(id_of(event.id.as_deref()));
                            }
                            Ok(Some(_)) => {}
                            Ok(None) | Err(()) => break,
                        }
                    }
                    drop(stream);
                    runs.push(run);
                }
                runs
            })
        })
        .collect();
    let publishers = (0..PUBLISHERS).map(|p| {
        let client = app.client.clone();
        let url = app.url("/api/messages");
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(PUBLISHES);
            for i in 0..PUBLISHES {
                let response = client
                    .post(&url)
                    .json(&json!({"message": format!("p{p}-{i}"), "topic": TOPIC}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                let body: serde_json::Value = response.json().await.unwrap();
                ids.push(id_of(body["data"]["id"].as_str()));
            }
            ids
        })
    });
    let answered = tokio::time::timeout(PATIENCE * 2, join_all(publishers))
        .await
        .expect("publishers timed out");
    let mut published: Vec<EventId> = answered
        .into_iter()
        .flat_map(|ids| ids.expect("a publisher failed"))
        .collect();
    published.sort_unstable();
    total_tx.send_replace(Some(published.len()));

    let mut failures = Vec::new();
    for (s, reader) in steady.into_iter().enumerate() {
        let (ids, trouble) = reader.await.expect("a steady reader panicked");
        if ids != published || !trouble.is_empty() {
            failures.push(format!(
                "steady stream {s}: {} of {} events, {} in order, trouble {trouble:?}",
                ids.len(),
                published.len(),
                if ids.windows(2).all(|w| w[0] < w[1]) {
                    "all"
                } else {
                    "not all"
                }
            ));
        }
    }
    let position: HashMap<EventId, usize> = published
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let (mut vanished, mut seen_by_vanished) = (0, 0);
    for churner in churners {
        for run in churner.await.expect("a churner panicked") {
            vanished += 1;
            seen_by_vanished += run.len();
            let places: Vec<Option<usize>> =
                run.iter().map(|id| position.get(id).copied()).collect();
            let unbroken = places.windows(2).all(|w| match (w[0], w[1]) {
                (Some(a), Some(b)) => b == a + 1,
                _ => false,
            }) && places.iter().all(Option::is_some);
            if !unbroken {
                failures.push(format!("a vanishing stream got a broken run: {places:?}"));
            }
        }
    }
    eprintln!(
        "[{broker}] {STEADY} steady streams, {vanished} vanishing ones ({seen_by_vanished} events \
         between them), {} publishes: {} failures",
        published.len(),
        failures.len()
    );
    // The churn overlapped the publishing: most vanishing streams saw events before leaving.
    assert!(
        seen_by_vanished > vanished,
        "the churn missed the publishing"
    );
    assert!(failures.is_empty(), "[{broker}] {failures:#?}");
}

fn id_of(text: Option<&str>) -> EventId {
    text.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not an event id: {text:?}"))
}

/// Every event id of a stream until it has `total` (known once publishing ends), or nothing
/// more came for a while; with anything else it saw (`gap`, `: lagged`, an early end).
async fn read_all(
    mut stream: SseStream,
    mut total: watch::Receiver<Option<usize>>,
) -> (Vec<EventId>, Vec<String>) {
    let mut ids = Vec::new();
    let mut trouble = Vec::new();
    loop {
        let known = *total.borrow_and_update();
        if known.is_some_and(|n| ids.len() >= n) {
            break;
        }
        let wait = if known.is_some() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(100)
        };
        match stream.next_within(wait).await {
            Ok(Some(event)) if event.event == "message" => ids.push(id_of(event.id.as_deref())),
            Ok(Some(event)) if event.event == "keepalive" => {}
            Ok(Some(event)) => trouble.push(format!("`{}`: {}", event.event, event.data)),
            Ok(None) => {
                trouble.push("the response ended".into());
                break;
            }
            Err(()) if known.is_some() => break,
            Err(()) => {}
        }
        stream.raw.clear();
    }
    if stream.parser.comments > 0 {
        trouble.push(format!("{} comment line(s)", stream.parser.comments));
    }
    (ids, trouble)
}
