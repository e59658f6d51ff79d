//! `GET /metrics`: the series move by the right amounts as streams open, deliver and end and
//! publishes succeed or fail; labels never hold a topic or a raw path; `--metrics-bind` moves
//! the endpoint to its own listener; `--log-format json` writes one JSON object per line.

use crate::common;

use std::time::Duration;

use common::logs::{addr_of, line_with, run};
use common::metrics::{samples, scrape_at, settle};
use common::{spawn_app, SseStream};
use serde_json::{json, Value};

const OPEN_BURST: &str = r#"ssehub_streams_open{mode="burst",http_version="1.1"}"#;
const OPEN_LIVE: &str = r#"ssehub_streams_open{mode="live",http_version="1.1"}"#;
const OPEN_LIVE_H2: &str = r#"ssehub_streams_open{mode="live",http_version="2"}"#;
const OPEN_MERCURE: &str = r#"ssehub_streams_open{mode="mercure",http_version="1.1"}"#;
const DELIVERED: &str = "ssehub_events_delivered_total";

#[tokio::test]
async fn series_follow_streams_and_publishes() {
    let app = spawn_app(|_| {}).await;
    let before = settle(&app, &[(OPEN_BURST, 0.0), (DELIVERED, 0.0)]).await;
    assert_eq!(before[r#"ssehub_broker_ready{broker="memory"}"#], 1.0);
    assert_eq!(before["mercure_subscribers_connected"], 0.0);

    // A burst and a live stream on the direct HTTP/1 path, a live one over h2c, a Mercure one.
    let mut burst = app.stream("/stream?topic=m").await;
    let mut live = app.stream("/stream?mode=live&topic=m").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut live_h2 = SseStream::open(&h2, &app.url("/stream?mode=live&topic=m"), &[]).await;
    assert_eq!(live_h2.next().await.unwrap().event, "keepalive");
    let mut mercure =
        SseStream::open(&app.client, &app.url("/.well-known/mercure?topic=m"), &[]).await;
    mercure.read_raw_until(b":\n\n").await;
    settle(
        &app,
        &[
            (OPEN_BURST, 1.0),
            (OPEN_LIVE, 1.0),
            (OPEN_LIVE_H2, 1.0),
            (OPEN_MERCURE, 1.0),
            ("mercure_subscribers_connected", 1.0),
            ("mercure_subscribers_total", 1.0),
            (r#"ssehub_streams_opened_total{mode="live"}"#, 2.0),
        ],
    )
    .await;

    // One publish: three copies to the burst, one to each other stream.
    app.publish("m", "hello").await;
    assert_eq!(burst.rest().await.len(), 4, "three copies and close");
    for stream in [&mut live, &mut live_h2] {
        assert_eq!(
            common::message(&stream.next_event().await.unwrap()),
            "hello"
        );
    }
    assert_eq!(mercure.next().await.unwrap().data, "hello");
    settle(
        &app,
        &[
            (DELIVERED, 6.0),
            (OPEN_BURST, 0.0),
            (
                r#"ssehub_streams_ended_total{mode="burst",reason="complete"}"#,
                1.0,
            ),
        ],
    )
    .await;

    // Clients that leave.
    drop((live, live_h2, mercure));
    let got = settle(
        &app,
        &[
            (OPEN_LIVE, 0.0),
            (OPEN_LIVE_H2, 0.0),
            (
                r#"ssehub_streams_ended_total{mode="live",reason="client_gone"}"#,
                2.0,
            ),
            (
                r#"ssehub_streams_ended_total{mode="mercure",reason="client_gone"}"#,
                1.0,
            ),
            ("mercure_subscribers_connected", 0.0),
            ("mercure_subscribers_total", 1.0),
        ],
    )
    .await;
    let route = |route: &str, method: &str, status: u16| {
        format!(
            r#"ssehub_http_request_duration_seconds_count{{route="{route}",method="{method}",status="{status}"}}"#
        )
    };
    // Two streams answered by the direct path, one by hyper (h2c).
    assert_eq!(got[&route("/stream", "GET", 200)], 3.0);
    assert_eq!(got[&route("/.well-known/mercure", "GET", 200)], 1.0);

    // Publishes by endpoint and status, a refused one included.
    let (status, _) = app.post_json(json!({"message": ""})).await;
    assert_eq!(status, 400);
    let text = app
        .client
        .post(app.url("/publish?topic=m"))
        .header("content-type", "text/plain")
        .body("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 202);
    let form = app
        .client
        .post(app.url("/.well-known/mercure"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=m&data=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let got = settle(
        &app,
        &[
            (
                r#"ssehub_publishes_total{endpoint="/api/messages",status="201"}"#,
                1.0,
            ),
            (
                r#"ssehub_publishes_total{endpoint="/api/messages",status="400"}"#,
                1.0,
            ),
            (
                r#"ssehub_publishes_total{endpoint="/publish",status="202"}"#,
                1.0,
            ),
            (
                r#"ssehub_publishes_total{endpoint="/.well-known/mercure",status="200"}"#,
                1.0,
            ),
            ("mercure_updates_total", 3.0),
            ("ssehub_history_events", 3.0),
            (DELIVERED, 6.0),
        ],
    )
    .await;
    assert!(got["ssehub_history_bytes"] > 0.0);
    assert_eq!(got[&route("/api/messages", "POST", 400)], 1.0);
    assert!(!got.contains_key("ssehub_store_bytes"), "no --data-dir");
}

#[tokio::test]
async fn refusals_and_shutdowns_are_counted_once() {
    let mut app = spawn_app(|c| {
        c.max_streams = Some(1);
        c.drain_spread = Duration::from_millis(50);
    })
    .await;
    let _live = app.stream("/stream?mode=live").await;
    // The direct path hands a refused stream to hyper, which answers it: one refusal.
    let refused = app.client.get(app.url("/stream")).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    let refused = app
        .client
        .get(app.url("/.well-known/mercure?topic=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    settle(
        &app,
        &[
            (r#"ssehub_streams_refused_total{reason="stream_cap"}"#, 2.0),
            (OPEN_LIVE, 1.0),
        ],
    )
    .await;
    let state = app.state.clone();
    app.shutdown().await.unwrap();
    let text = state.metrics().render(&Default::default());
    let ended = samples(&text);
    assert_eq!(
        ended[r#"ssehub_streams_ended_total{mode="live",reason="shutdown"}"#], 1.0,
        "{text}"
    );
    assert_eq!(ended[OPEN_LIVE], 0.0);
}

#[tokio::test]
async fn no_topic_or_raw_path_becomes_a_label() {
    let app = spawn_app(|_| {}).await;
    for i in 0..200 {
        app.publish(&format!("cardinality-topic-{i}"), "x").await;
    }
    let mut live = app
        .stream("/stream?mode=live&topic=cardinality-topic-7&topic=odd-stream-topic")
        .await;
    let odd = [
        "/nowhere-odd-path-1",
        "/api/topics/cardinality-topic-3/events",
        "/api/topics/cardinality-topic-3/events?limit=oops-odd-query",
        "/stream/odd-suffix",
        "//odd-double-slash",
        "/.well-known/mercure/subscriptions/odd-sub-path",
        "/app.js?odd-asset-query",
    ];
    for path in odd {
        app.client.get(app.url(path)).send().await.unwrap();
    }
    app.client
        .request(
            reqwest::Method::from_bytes(b"ODDMETHOD").unwrap(),
            app.url("/api/ping"),
        )
        .send()
        .await
        .unwrap();
    app.publish("cardinality-topic-7", "y").await;
    live.next_event().await.unwrap();
    let text = scrape_at(&app.client, &app.url("/metrics")).await;
    for needle in ["cardinality-topic", "odd-", "oops", "ODDMETHOD", "//"] {
        assert!(!text.contains(needle), "{needle:?} in:\n{text}");
    }
    let got = samples(&text);
    assert!(got.contains_key(
        r#"ssehub_http_request_duration_seconds_count{route="unmatched",method="GET",status="404"}"#
    ));
    assert!(got.contains_key(
        r#"ssehub_http_request_duration_seconds_count{route="/api/topics/{*topic_events}",method="GET",status="200"}"#
    ));
    assert!(got.contains_key(
        r#"ssehub_http_request_duration_seconds_count{route="/api/ping",method="other",status="405"}"#
    ));
    // A bounded number of series, whatever the traffic.
    assert!(got.len() < 400, "{} samples", got.len());
}

#[tokio::test]
async fn a_redis_node_reports_its_broker_and_round_trips() {
    let redis = common::redis::RedisServer::start();
    let app = spawn_app(|c| c.broker = Some(redis.url())).await;
    app.publish("r", "x").await;
    let got = settle(&app, &[(r#"ssehub_broker_ready{broker="redis"}"#, 1.0)]).await;
    assert!(got["ssehub_redis_command_duration_seconds_count"] >= 1.0);
    assert!(got[r#"ssehub_redis_command_duration_seconds_bucket{le="+Inf"}"#] >= 1.0);
    // Redis holds history: this process reports none of its own.
    assert!(!got.contains_key("ssehub_history_bytes"));
    assert_eq!(got["mercure_updates_total"], 1.0);
}

#[tokio::test]
async fn metrics_bind_serves_metrics_on_its_own_listener_only() {
    let (_child, mut lines) = run(&["--metrics-bind", "127.0.0.1:0"], &[]).await;
    let main = addr_of(line_with(&mut lines, "listening").await.last().unwrap());
    let metrics = addr_of(
        line_with(&mut lines, "serving metrics")
            .await
            .last()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let on_main = client
        .get(format!("http://{main}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_main.status(), 404);
    let text = scrape_at(&client, &format!("http://{metrics}/metrics")).await;
    assert!(text.contains("ssehub_streams_open{"), "{text}");
    // The metrics listener serves nothing else.
    for path in ["/api/ping", "/stream"] {
        let other = client
            .get(format!("http://{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404, "{path}");
    }
    // What the main port served is what the metrics port counts.
    let text = scrape_at(&client, &format!("http://{metrics}/metrics")).await;
    let got = samples(&text);
    assert_eq!(
        got[r#"ssehub_http_request_duration_seconds_count{route="unmatched",method="GET",status="404"}"#],
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_without_tokens() {
    let secret = "not-a-token-but-secret-0123456789";
    let (_child, mut lines) = run(
        &[
            "--access-log",
            "--jwt-key",
            "some-key-of-at-least-32-bytes-long!!",
        ],
        &[("SSEHUB_LOG_FORMAT", "json")],
    )
    .await;
    let first = line_with(&mut lines, "listening").await;
    let listening: Value = serde_json::from_str(first.last().unwrap()).unwrap();
    let main = listening["fields"]["addr"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let bearer = format!("Bearer {secret}");
    let refused = client
        .post(format!("http://{main}/api/messages?authorization={secret}"))
        .header("authorization", &bearer)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let stream = client
        .get(format!("http://{main}/stream?authorization={secret}"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 401);
    client
        .get(format!("http://{main}/api/ping"))
        .send()
        .await
        .unwrap();
    let mut all = first;
    all.extend(line_with(&mut lines, "/api/ping").await);
    for line in &all {
        let object: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            object["level"].is_string() && object["fields"].is_object(),
            "{line}"
        );
        assert!(!line.contains(secret), "a token was logged: {line}");
    }
    let requests: Vec<Value> = all
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["fields"]["message"] == "request")
        .collect();
    assert!(requests.len() >= 3, "{all:#?}");
    assert!(requests
        .iter()
        .any(|r| r["fields"]["path"] == "/api/messages" && r["fields"]["status"] == 401));
}
