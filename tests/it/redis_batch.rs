//! The Redis broker's group commit, on a real Redis: publishes that queue while a batch is on
//! its way go as one script, each keeps its own answer, and one refused event neither takes
//! the others down nor reaches a stream.
//!
//! The broker is driven directly (no HTTP) on a current-thread runtime, so the interleaving is
//! fixed: every publish of a `join_all` is queued before the lane first runs, so they make one
//! batch.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::redis::RedisServer;
use futures_util::future::join_all;
use ssehub::broker::redis::{RedisBroker, RedisSettings};
use ssehub::broker::{Broker, Delivery};
use ssehub::event::{Draft, Event};
use ssehub::hub::{Pattern, TopicName};
use ssehub::sse::{EventId, EventName};
use tokio::sync::Notify;

/// Records what the broker delivers, in order, and says when it did.
#[derive(Default)]
struct Recorder(Mutex<Vec<Arc<Event>>>, Notify);

impl Recorder {
    async fn wait_for(&self, count: usize) -> Vec<EventId> {
        loop {
            let delivered = self.1.notified();
            {
                let events = self.0.lock().unwrap();
                if events.len() >= count {
                    return events.iter().map(|e| e.id).collect();
                }
            }
            delivered.await;
        }
    }
}

impl Delivery for Recorder {
    fn deliver(&self, event: &Arc<Event>) -> usize {
        self.0.lock().unwrap().push(Arc::clone(event));
        self.1.notify_waiters();
        1
    }
    fn subscribed_patterns(&self) -> Vec<Pattern> {
        Vec::new()
    }
    fn is_subscribed(&self, _: &TopicName) -> bool {
        false
    }
    fn is_named(&self, _: &TopicName) -> bool {
        false
    }
}

async fn broker(
    redis: &RedisServer,
    delivery: Arc<Recorder>,
    timeout: Duration,
) -> Arc<RedisBroker> {
    let settings = RedisSettings {
        url: redis.url(),
        partitions: 1,
        min_replicas: 0,
        prefix: "ssehub:".into(),
        history: 100,
        max_age: Duration::from_secs(3600),
        timeout,
        ca: None,
        round_trip: ssehub::metrics::Metrics::new().redis_round_trip(),
    };
    RedisBroker::connect(settings, delivery).await.unwrap()
}

fn draft(topic: &str, message: &str) -> Draft {
    Draft::new(
        TopicName::new(topic).unwrap(),
        EventName::new("message").unwrap(),
        message.into(),
    )
}

/// Publish scripts Redis ran since the last reset: `evalsha` calls, but for those refused with
/// `NOSCRIPT` (the first on a fresh Redis, which is then loaded and sent again).
fn scripts_run(redis: &RedisServer) -> usize {
    let count = |section: &str, prefix: &str| -> usize {
        redis
            .cli(&["info", section])
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split([',', '\r']).next())
            .map_or(0, |n| n.parse().unwrap())
    };
    count("commandstats", "cmdstat_evalsha:calls=")
        - count("errorstats", "errorstat_NOSCRIPT:count=")
}

#[tokio::test]
async fn queued_publishes_go_as_one_script_and_a_refused_one_spares_the_rest() {
    let redis = RedisServer::start();
    let recorder = Arc::new(Recorder::default());
    let broker = broker(&redis, Arc::clone(&recorder), Duration::from_secs(5)).await;
    // Someone else's string where topic `bad`'s stream would be: its XADD fails (WRONGTYPE).
    redis.cli(&["set", "ssehub:topic:bad", "not a stream"]);
    redis.cli(&["config", "resetstat"]);

    let topics = ["a", "b", "bad", "a", "c", "b", "a"];
    let drafts: Vec<Draft> = topics
        .iter()
        .enumerate()
        .map(|(i, t)| draft(t, &format!("m{i}")))
        .collect();
    let answers = join_all(drafts.into_iter().map(|d| broker.publish(d))).await;

    assert_eq!(scripts_run(&redis), 1, "the seven publishes made one batch");
    let mut ids = Vec::new();
    for (topic, answer) in topics.iter().zip(&answers) {
        match (*topic, answer) {
            ("bad", Err(err)) => assert!(err.to_string().contains("WRONGTYPE"), "{err}"),
            ("bad", Ok(event)) => panic!("the refused event was accepted: {:?}", event.id),
            (_, Ok(event)) => ids.push(event.id),
            (_, Err(err)) => panic!("{topic}: {err}"),
        }
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids follow the order the publishes queued in: {ids:?}"
    );

    // Delivery: exactly the six accepted events, in id order; the refused one never.
    let delivered = tokio::time::timeout(Duration::from_secs(10), recorder.wait_for(ids.len()))
        .await
        .expect("the accepted events were delivered");
    assert_eq!(delivered, ids);
    assert_eq!(redis.cli(&["xlen", "ssehub:topic:a"]).trim(), "3");

    // History has each accepted event, as published.
    let history = broker
        .history(&TopicName::new("b").unwrap(), Default::default(), 10)
        .await
        .unwrap();
    let texts: Vec<&str> = history.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(texts, ["m1", "m5"]);

    // Alone, a publish still goes at once, in a batch of its own.
    redis.cli(&["config", "resetstat"]);
    let alone = broker.publish(draft("a", "alone")).await.unwrap();
    assert_eq!(scripts_run(&redis), 1);
    // Channel messages arrive in order: had the refused event gone out, it would be here.
    let all = tokio::time::timeout(Duration::from_secs(10), recorder.wait_for(ids.len() + 1))
        .await
        .expect("delivered");
    assert_eq!(all[..ids.len()], ids[..]);
    assert_eq!(all[ids.len()..], [alone.id]);
    broker.close();
}

#[tokio::test]
async fn with_redis_frozen_every_queued_publish_is_refused_within_about_the_timeout() {
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let broker = broker(&redis, Arc::default(), timeout).await;
    broker.publish(draft("a", "warm")).await.unwrap();
    redis.pause();
    // 200 publishes: four batches' worth. The first batch waits out the timeout; the rest
    // waited as long in the queue, and are refused without being sent.
    let started = std::time::Instant::now();
    let answers = join_all((0..200).map(|i| broker.publish(draft("a", &format!("m{i}"))))).await;
    let took = started.elapsed();
    redis.resume();
    assert!(answers.iter().all(Result::is_err));
    // One timeout, not one per batch (4 × 500 ms); the rest is slack for a loaded machine.
    assert!(took < timeout * 3, "answered after {took:?}");
    broker.close();
}
