//! Subscribe tickets over real sockets: `POST /api/tickets` for a subscriber token, a ticket
//! opening one stream (native and Mercure) with that token's private events, narrowed to some
//! topics, refused when used twice, expired, forged or asked without a token, ending with its
//! token, redeemed exactly once across the nodes of a cluster on Redis (and a Redis Cluster),
//! and never in a log line, a metric or another response.

use crate::common;

use std::time::Duration;

use common::auth::*;
use common::cluster::RedisCluster;
use common::redis::RedisServer;
use common::{
    assert_nothing_before_sentinel, data, logs, message, spawn_app, take, SseStream, TestApp,
};
use futures_util::future::join_all;
use serde_json::{json, Value};

fn subscriber(topics: &[&str]) -> String {
    hs256(
        SUB_SECRET,
        &json!({"exp": now() + 3600, "mercure": {"subscribe": topics}}),
    )
}

async fn keyed(broker: Option<String>) -> TestApp {
    let app = spawn_app(move |c| {
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.broker = broker;
        // Tickets need no replica (a Cluster without replicas here).
        c.redis_min_replicas = Some(0);
        c.broker_timeout = Duration::from_millis(500);
    })
    .await;
    app.wait_ready().await;
    app
}

/// `POST /api/tickets` as `token` (bearer) with `body`.
async fn ask(app: &TestApp, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut request = app.client.post(app.url("/api/tickets"));
    if let Some(token) = token {
        request = request.header("authorization", bearer(token));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Reply::read(request).await
}

/// A ticket for `token`, checked as the response should be.
async fn ticket(app: &TestApp, token: &str, topics: Option<&[&str]>) -> String {
    let reply = ask(app, Some(token), topics.map(|t| json!({ "topics": t }))).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["expires_in"], 30, "{body}");
    reply.assert_no_token(token);
    body["ticket"].as_str().unwrap().to_owned()
}

async fn private(app: &TestApp, topic: &str, text: &str) {
    let (status, body) = app
        .post_json(json!({"message": text, "topic": topic, "private": true}))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_ticket_opens_one_stream_with_its_tokens_private_events() {
    let app = keyed(None).await;
    let token = subscriber(&["news"]);
    let path = |t: &str| format!("/stream?mode=live&topic=news&ticket={t}");
    let first = ticket(&app, &token, None).await;
    let mut stream = app.stream(&path(&first)).await;
    private(&app, "news", "for ticket holders").await;
    assert_eq!(
        message(&take(&mut stream, 1).await[0]),
        "for ticket holders"
    );
    // Used once: refused like a refused token, without echoing it.
    refused_stream(&app, &path(&first), &[])
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &first);
    // Forged, or empty.
    let forged = "x".repeat(43);
    refused_stream(&app, &path(&forged), &[])
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &forged);
    // Over Mercure too, where the ticket wins over a query token.
    let second = ticket(&app, &token, None).await;
    let pairs = [
        ("topic", "news"),
        ("ticket", second.as_str()),
        ("authorization", "x"),
    ];
    let mut update = common::mercure::subscribe(&app, &pairs, &[]).await;
    private(&app, "news", "over mercure").await;
    let event = update.next().await.unwrap();
    assert_eq!(event.data, "over mercure", "{event:?}");
    let mercure = format!("/.well-known/mercure?{}", common::mercure::form(&pairs));
    refused_stream(&app, &mercure, &[]).await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &second,
    );
}

#[tokio::test]
async fn a_ticket_is_made_only_from_a_token_and_narrowed_to_what_it_grants() {
    let app = keyed(None).await;
    let token = subscriber(&["a", "b", "c/*"]);
    // No token, a bad token, a bad body.
    ask(&app, None, None)
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
    let forged = hs256(
        "another-secret-that-is-long-enough-for-hs256",
        &legacy(&[], &["a"]),
    );
    ask(&app, Some(&forged), None)
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &forged);
    // JSON `null` is no body (the document allows it); an empty list narrows to nothing: 400.
    assert_eq!(ask(&app, Some(&token), Some(Value::Null)).await.status, 201);
    let empty = ask(&app, Some(&token), Some(json!({"topics": []}))).await;
    assert_eq!(empty.status, 400, "{empty:?}");
    let bad = ask(&app, Some(&token), Some(json!({"topics": "a"}))).await;
    assert_eq!(bad.status, 400, "{bad:?}");
    let many: Vec<String> = (0..65).map(|i| format!("c/{i}")).collect();
    assert_eq!(
        ask(&app, Some(&token), Some(json!({ "topics": many })))
            .await
            .status,
        400
    );
    // Topics the token does not grant.
    ask(&app, Some(&token), Some(json!({"topics": ["a", "z"]})))
        .await
        .assert_refused(403, Some(INSUFFICIENT_SCOPE), FORBIDDEN, &token);
    // A cookie works as the header does.
    let cookie = Reply::read(
        app.client
            .post(app.url("/api/tickets"))
            .header("cookie", format!("mercureAuthorization={token}")),
    )
    .await;
    assert_eq!(cookie.status, 201, "{cookie:?}");
    // Narrowed to `a` and to `c/*` (its own selector): b's private events stay out.
    let narrow = ticket(&app, &token, Some(&["a", "c/*"])).await;
    let mut stream = app
        .stream(&format!(
            "/stream?mode=live&topic=a&topic=b&topic=c/*&ticket={narrow}"
        ))
        .await;
    private(&app, "b", "not for this ticket").await;
    private(&app, "c/1", "for c").await;
    private(&app, "a", "for a").await;
    let got: Vec<String> = take(&mut stream, 2).await.iter().map(message).collect();
    assert_eq!(got, ["for c", "for a"]);
    assert_nothing_before_sentinel(&app, &mut stream, "a").await;
}

#[tokio::test]
async fn a_stream_opened_with_a_ticket_ends_when_its_token_expires() {
    let app = keyed(None).await;
    let exp = now() + 3;
    let token = hs256(
        SUB_SECRET,
        &json!({"exp": exp, "mercure": {"subscribe": ["x"]}}),
    );
    let reply = ask(&app, Some(&token), None).await;
    assert_eq!(reply.status, 201);
    // The ticket lives no longer than its token.
    assert!(
        reply.json()["expires_in"].as_u64().unwrap() <= 3,
        "{}",
        reply.text
    );
    let ticket = reply.json()["ticket"].as_str().unwrap().to_owned();
    let mut stream = app
        .stream(&format!("/stream?mode=live&topic=x&ticket={ticket}"))
        .await;
    let close = loop {
        let event = stream.next_event().await.expect("ended without close");
        if event.event == "close" {
            break event;
        }
    };
    assert_eq!(data(&close)["data"]["status"], "expired", "{close:?}");
    assert!(now_f64() <= exp as f64 + 3.0);
}

#[tokio::test]
async fn tickets_never_reach_the_logs_or_the_metrics() {
    let token = subscriber(&["x"]);
    let (_child, mut lines) = logs::run(
        &[
            "--access-log",
            "--subscriber-jwt-key",
            SUB_SECRET,
            "--log",
            "debug",
        ],
        &[],
    )
    .await;
    let seen = logs::line_with(&mut lines, "listening").await;
    let addr = logs::addr_of(seen.last().unwrap());
    let client = reqwest::Client::new();
    let issue = || async {
        let reply = Reply::read(
            client
                .post(format!("http://{addr}/api/tickets"))
                .header("authorization", bearer(&token)),
        )
        .await;
        reply.json()["ticket"].as_str().unwrap().to_owned()
    };
    let (used, unused) = (issue().await, issue().await);
    let url = format!("http://{addr}/stream?mode=live&topic=x&ticket={used}");
    let stream = SseStream::open(&client, &url, &[]).await;
    drop(stream);
    let again = Reply::read(client.get(&url)).await;
    assert_eq!(again.status, 401);
    let metrics = Reply::read(client.get(format!("http://{addr}/metrics"))).await;
    // The second refusal's access-log line is the last thing to wait for.
    let mut logged = logs::line_with(&mut lines, "status=401").await;
    while let Ok(line) = lines.try_recv() {
        logged.push(line);
    }
    for secret in [&used, &unused, &token] {
        assert!(!metrics.text.contains(secret.as_str()));
        assert!(
            logged.iter().all(|line| !line.contains(secret.as_str())),
            "{logged:#?}"
        );
    }
    assert!(
        logged
            .iter()
            .any(|l| l.contains("path=/api/tickets status=201")),
        "{logged:#?}"
    );
}

/// One ticket, redeemed by many clients at once across `nodes`: exactly one stream opens.
async fn redeemed_exactly_once(nodes: &[&TestApp]) {
    let token = subscriber(&["t"]);
    for round in 0..5 {
        let ticket = ticket(nodes[round % nodes.len()], &token, None).await;
        let path = format!("/stream?mode=live&topic=t&ticket={ticket}");
        let tries = (0..12).map(|i| {
            let node = nodes[i % nodes.len()];
            let request = node.client.get(node.url(&path));
            async move {
                let response = request.send().await.unwrap();
                response.status().as_u16()
            }
        });
        let mut statuses = join_all(tries).await;
        statuses.sort_unstable();
        let mut expected = vec![200];
        expected.extend([401; 11]);
        assert_eq!(statuses, expected, "round {round}");
    }
}

#[tokio::test]
async fn a_ticket_made_on_one_node_is_redeemed_once_on_any_node_of_a_redis_cluster() {
    let redis = RedisServer::start();
    let (a, b) = (
        keyed(Some(redis.url())).await,
        keyed(Some(redis.url())).await,
    );
    let token = subscriber(&["room"]);
    let made_on_a = ticket(&a, &token, None).await;
    let mut on_b = b
        .stream(&format!("/stream?mode=live&topic=room&ticket={made_on_a}"))
        .await;
    private(&a, "room", "across nodes").await;
    assert_eq!(message(&take(&mut on_b, 1).await[0]), "across nodes");
    refused_stream(&a, &format!("/stream?topic=room&ticket={made_on_a}"), &[])
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &made_on_a);
    redeemed_exactly_once(&[&a, &b]).await;
}

#[tokio::test]
async fn on_a_redis_cluster_a_ticket_is_redeemed_once_whatever_the_node() {
    let cluster = RedisCluster::start(3, 0).await;
    let url = cluster.url();
    let (a, b) = (keyed(Some(url.clone())).await, keyed(Some(url)).await);
    redeemed_exactly_once(&[&a, &b]).await;
}

/// A stream refused by the stream cap (`503`) or the per-client cap (`429`) does not spend its
/// ticket: the caps that need no grants are taken before the redemption, and the retry opens.
#[tokio::test]
async fn a_stream_refused_by_a_cap_leaves_its_ticket_for_the_retry() {
    let app = spawn_app(|c| {
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
        c.max_streams = Some(1);
    })
    .await;
    let token = subscriber(&["news"]);
    let one = ticket(&app, &token, None).await;
    let path = format!("/stream?mode=live&topic=news&ticket={one}");
    let holder = app
        .stream_with(
            "/stream?mode=live&topic=news",
            &[("authorization", &bearer(&token))],
        )
        .await;
    let refused = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    drop(holder);
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while app.state.open_streams() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut stream = app.stream(&path).await;
    private(&app, "news", "after the retry").await;
    assert_eq!(message(&take(&mut stream, 1).await[0]), "after the retry");
}
