//! Stress over real sockets: many live streams of several topics each, while publishers pipeline
//! thousands of `POST /api/messages` (every other publisher: Mercure `POST /.well-known/mercure`
//! forms) on keep-alive connections, rotating topics. Every stream
//! must receive exactly the ids published to its topics: none missing, none twice, in id order,
//! with no `: lagged` notice and no `gap` (the queue is far larger than the load). Both brokers.

use crate::common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::redis::RedisServer;
use common::{spawn_app, SseStream, TestApp, PATIENCE};
use futures_util::future::join_all;
use serde_json::{json, Value};
use ssehub::sse::EventId;
use ssehub::Config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Topics published to: `race/t0` to `race/t9`.
const TOPICS: usize = 10;
const STREAMS: usize = 60;
const PUBLISHERS: usize = 8;
/// Publishes per publisher (Redis stores each with `appendfsync always`: fewer there).
const MEMORY_PUBLISHES: usize = 3_000;
const REDIS_PUBLISHES: usize = 2_000;
/// Once every publish is answered, a stream that gets nothing for this long gets no more.
const QUIET: Duration = Duration::from_secs(5);
/// Once a stream has its count, how long it keeps reading to catch extra events.
const EXTRA: Duration = Duration::from_millis(200);

fn topic(n: usize) -> String {
    format!("race/t{}", n % TOPICS)
}

/// Stream `s` watches 8 consecutive topics of the 10 (a different set per stream).
fn exact_topics(s: usize) -> Vec<String> {
    (s..s + 8).map(topic).collect()
}

/// A third of the streams watch exact topics only; the others mix wildcards with exact topics
/// they already cover, so many events match two or three patterns of one stream (and arrive once).
fn mixed_topics(s: usize) -> Vec<String> {
    match s % 3 {
        0 => exact_topics(s),
        1 => vec!["race/*".into(), topic(s), topic(s + 3)],
        _ => vec![topic(s), "*".into(), "race/*".into(), topic(s + 5)],
    }
}

/// Whether a pattern (`name`, `prefix/*` or `*`) matches a topic, as the README defines it.
fn matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.len() > prefix.len() && topic.starts_with(prefix),
        None => pattern == topic,
    }
}

fn settings(config: &mut Config) {
    config.queue = 100_000;
    // No heartbeat during the test: any comment line is then a `: lagged` notice.
    config.heartbeat = Duration::from_secs(3600);
    config.broker_timeout = Duration::from_secs(10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_multi_topic_streams_lose_nothing() {
    let app = spawn_app(settings).await;
    stress("memory", &[app], exact_topics, MEMORY_PUBLISHES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_wildcard_and_exact_streams_get_each_event_once() {
    let app = spawn_app(settings).await;
    stress("memory, wildcards", &[app], mixed_topics, MEMORY_PUBLISHES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_multi_topic_streams_lose_nothing() {
    let redis = RedisServer::start();
    // Two nodes: each publisher and each stream on either, so delivery crosses Redis.
    let nodes = [redis_node(&redis).await, redis_node(&redis).await];
    stress("redis", &nodes, exact_topics, REDIS_PUBLISHES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wildcard_and_exact_streams_get_each_event_once() {
    let redis = RedisServer::start();
    let node = redis_node(&redis).await;
    stress("redis, wildcards", &[node], mixed_topics, REDIS_PUBLISHES).await;
}

async fn redis_node(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    let app = spawn_app(move |c| {
        settings(c);
        c.broker = Some(url);
    })
    .await;
    app.wait_ready().await;
    app
}

/// Opens the streams, publishes, and checks what each stream received.
async fn stress(
    broker: &str,
    nodes: &[TestApp],
    patterns: fn(usize) -> Vec<String>,
    publishes: usize,
) {
    let mut subscriptions = Vec::with_capacity(STREAMS);
    let mut targets = Vec::with_capacity(STREAMS);
    let mut readers = Vec::with_capacity(STREAMS);
    for s in 0..STREAMS {
        let topics = patterns(s);
        let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
        // `stream` returns once the `keepalive` arrived: the subscription exists.
        let stream = nodes[s % nodes.len()]
            .stream(&format!("/stream?mode=live&{}", query.join("&")))
            .await;
        let (target, count) = oneshot::channel();
        readers.push(tokio::spawn(read_stream(stream, count)));
        targets.push(target);
        subscriptions.push(topics);
    }

    let started = Instant::now();
    let publishers =
        (0..PUBLISHERS).map(|p| tokio::spawn(publish(nodes[p % nodes.len()].addr, p, publishes)));
    let answered = tokio::time::timeout(PATIENCE * 2, join_all(publishers))
        .await
        .expect("publishers timed out");
    let mut published: Vec<(usize, EventId)> = Vec::with_capacity(PUBLISHERS * publishes);
    for one in answered {
        published.extend(one.expect("a publisher failed"));
    }
    let elapsed = started.elapsed();
    published.sort_unstable_by_key(|&(_, id)| id);
    assert!(
        published.windows(2).all(|w| w[0].1 < w[1].1),
        "two publishes got the same id"
    );

    let expected: Vec<Vec<EventId>> = subscriptions
        .iter()
        .map(|topics| {
            published
                .iter()
                .filter(|(t, _)| topics.iter().any(|p| matches(p, &topic(*t))))
                .map(|&(_, id)| id)
                .collect()
        })
        .collect();
    for (target, ids) in targets.into_iter().zip(&expected) {
        let _ = target.send(ids.len());
    }

    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for (s, (reader, expected)) in readers.into_iter().zip(&expected).enumerate() {
        let got = reader.await.expect("a stream reader panicked");
        let want: HashSet<EventId> = expected.iter().copied().collect();
        let seen: HashSet<EventId> = got.ids.iter().copied().collect();
        let mut missing: Vec<EventId> = want.difference(&seen).copied().collect();
        missing.sort_unstable();
        let unexpected = seen.difference(&want).count();
        let duplicated = got.ids.len() - seen.len();
        let out_of_order = got.ids.windows(2).filter(|w| w[0] > w[1]).count();
        tally.expected += expected.len();
        tally.received += got.ids.len();
        tally.missing += missing.len();
        tally.duplicated += duplicated;
        tally.out_of_order += out_of_order;
        tally.unexpected += unexpected;
        if missing.len() + duplicated + out_of_order + unexpected > 0 || !got.trouble.is_empty() {
            let first_missing: Vec<String> =
                missing.iter().take(5).map(ToString::to_string).collect();
            failures.push(format!(
                "stream {s} {:?}: expected {}, received {}, missing {} (first {first_missing:?}), \
                 duplicated {duplicated}, out of order {out_of_order}, unexpected {unexpected}, \
                 {:?}",
                subscriptions[s],
                expected.len(),
                got.ids.len(),
                missing.len(),
                got.trouble,
            ));
        }
    }
    eprintln!(
        "[{broker}] {STREAMS} streams, {} publishes in {elapsed:.2?} ({:.0}/s): expected {} \
         deliveries, received {}, missing {}, duplicated {}, out of order {}, unexpected {}; \
         failed streams {}",
        published.len(),
        published.len() as f64 / elapsed.as_secs_f64(),
        tally.expected,
        tally.received,
        tally.missing,
        tally.duplicated,
        tally.out_of_order,
        tally.unexpected,
        failures.len(),
    );
    for failure in failures.iter().take(10) {
        eprintln!("[{broker}]   {failure}");
    }
    assert!(
        failures.is_empty(),
        "[{broker}] {} of {STREAMS} streams did not get exactly their events: {} missing, {} \
         duplicated, {} out of order, {} unexpected (of {} expected)",
        failures.len(),
        tally.missing,
        tally.duplicated,
        tally.out_of_order,
        tally.unexpected,
        tally.expected,
    );
}

#[derive(Default)]
struct Tally {
    expected: usize,
    received: usize,
    missing: usize,
    duplicated: usize,
    out_of_order: usize,
    unexpected: usize,
}

#[derive(Default)]
struct Received {
    ids: Vec<EventId>,
    /// `gap` or other events, comments (`: lagged`), an early end.
    trouble: Vec<String>,
}

/// Reads a stream until it has `count` events (sent once every publish is answered), then for
/// [`EXTRA`] more; or until it is [`QUIET`] that long, or [`PATIENCE`] after the count came.
async fn read_stream(mut stream: SseStream, mut count: oneshot::Receiver<usize>) -> Received {
    let mut got = Received::default();
    let mut target: Option<(usize, Instant)> = None;
    loop {
        if target.is_none() {
            if let Ok(n) = count.try_recv() {
                target = Some((n, Instant::now() + PATIENCE));
            }
        }
        let wait = match target {
            None => Duration::from_millis(50),
            Some((_, deadline)) if Instant::now() >= deadline => break,
            Some((n, _)) if got.ids.len() >= n => EXTRA,
            Some(_) => QUIET,
        };
        let next = stream.next_within(wait).await;
        // The raw copy is not needed; keep memory flat.
        stream.raw.clear();
        match next {
            Ok(Some(event)) if event.event == "message" => {
                match event.id.as_deref().and_then(|id| id.parse().ok()) {
                    Some(id) => got.ids.push(id),
                    None => got
                        .trouble
                        .push(format!("message without a valid id: {event:?}")),
                }
            }
            Ok(Some(event)) if event.event == "keepalive" => {}
            Ok(Some(event)) => got
                .trouble
                .push(format!("`{}` event: {}", event.event, event.data)),
            Ok(None) => {
                got.trouble.push("the response ended".into());
                break;
            }
            Err(()) if target.is_some() => break,
            Err(()) => {}
        }
    }
    if stream.parser.comments > 0 {
        got.trouble.push(format!(
            "{} comment line(s): `: lagged` (heartbeats are off)",
            stream.parser.comments
        ));
    }
    got
}

/// One keep-alive connection pipelining `publishes` publishes as fast as the socket takes
/// them, topics rotating; returns each publish's topic number and id, read from the responses
/// in order. Odd-numbered publishers publish Mercure updates (a form; the answer is the id).
async fn publish(addr: SocketAddr, p: usize, publishes: usize) -> Vec<(usize, EventId)> {
    let mercure = p % 2 == 1;
    let socket = TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let (read, write) = socket.into_split();
    let writer = tokio::spawn(async move {
        let mut write = BufWriter::new(write);
        for i in 0..publishes {
            let (path, kind, body) = if mercure {
                let form = format!("topic={}&data=p{p}-{i}", topic(p + i));
                (
                    "/.well-known/mercure",
                    "application/x-www-form-urlencoded",
                    form,
                )
            } else {
                let json = json!({"message": format!("p{p}-{i}"), "topic": topic(p + i)});
                ("/api/messages", "application/json", json.to_string())
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nhost: stress\r\ncontent-type: {kind}\r\n\
                 content-length: {}\r\n\r\n",
                body.len()
            );
            write.write_all(head.as_bytes()).await.unwrap();
            write.write_all(body.as_bytes()).await.unwrap();
        }
        write.flush().await.unwrap();
        // Kept open (not half-closed) until every response is read.
        write
    });
    let mut read = BufReader::new(read);
    let mut ids = Vec::with_capacity(publishes);
    for i in 0..publishes {
        let (status, body) = read_response(&mut read).await;
        if mercure {
            assert_eq!(status, 200, "publisher {p}, request {i}: {body}");
            ids.push(((p + i) % TOPICS, body.parse().unwrap()));
            continue;
        }
        assert_eq!(status, 201, "publisher {p}, request {i}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        // The response of request `i` names request `i`'s message and topic.
        assert_eq!(body["data"]["message"], format!("p{p}-{i}"), "{body}");
        assert_eq!(body["data"]["topic"], topic(p + i), "{body}");
        let id = body["data"]["id"].as_str().unwrap().parse().unwrap();
        ids.push(((p + i) % TOPICS, id));
    }
    drop(writer.await.unwrap());
    ids
}

/// Reads one HTTP/1.1 response with a `content-length` body: status and body.
async fn read_response(read: &mut BufReader<OwnedReadHalf>) -> (u16, String) {
    let mut line = String::new();
    read.read_line(&mut line).await.unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut length = None;
    loop {
        line.clear();
        read.read_line(&mut line).await.unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header line");
        assert!(
            !name.eq_ignore_ascii_case("transfer-encoding"),
            "chunked response: {header}"
        );
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse().unwrap());
        }
    }
    let mut body = vec![0; length.expect("no content-length")];
    read.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}
