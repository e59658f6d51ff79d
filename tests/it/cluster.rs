//! Several nodes on one real Redis behave as one hub: cross-node delivery in both modes, one
//! order everywhere, resume on another node, Redis killed and restarted, nodes killed.

use crate::common;

use std::time::Duration;

use common::cluster::RedisCluster;
use common::redis::RedisServer;
use common::{
    assert_nothing_before_sentinel, data, ids, message, spawn_app, take, SseStream, TestApp,
    PATIENCE,
};
use futures_util::future::join_all;
use serde_json::{json, Value};

async fn node(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    spawn_app(move |c| {
        c.broker = Some(url);
        c.interval = Duration::from_millis(100);
        c.broker_timeout = Duration::from_millis(500);
    })
    .await
}

#[tokio::test]
async fn a_publish_on_one_node_reaches_streams_on_every_node() {
    let redis = RedisServer::start();
    let (a, b, c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    let mut live_b = b.stream("/stream?mode=live&topic=room").await;
    let mut live_c = c.stream("/stream?mode=live&topic=room/*&topic=room").await;
    let mut burst_b = b.stream("/stream?topic=room").await;
    let id = a.publish("room", "hello cluster").await;
    for stream in [&mut live_b, &mut live_c] {
        let event = stream.next_event().await.unwrap();
        assert_eq!(message(&event), "hello cluster");
        assert_eq!(event.id.as_deref(), Some(id.to_string().as_str()));
    }
    let burst = burst_b.rest().await;
    let kinds: Vec<&str> = burst.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["message", "message", "message", "close"]);
    assert_nothing_before_sentinel(&a, &mut live_b, "room").await;
    // The same sentinel reached the third node: nothing came before it there either.
    assert_eq!(message(&live_c.next_event().await.unwrap()), "sentinel");
    // History and topics look the same from every node.
    for app in [&a, &b, &c] {
        let page: serde_json::Value = app.get_json("/api/topics/room/events").await;
        assert_eq!(page["events"][0]["id"], id.to_string());
    }
}

#[tokio::test]
async fn every_node_sees_one_order_under_concurrent_publishers() {
    let redis = RedisServer::start();
    let nodes = [node(&redis).await, node(&redis).await];
    let mut streams = Vec::new();
    for app in &nodes {
        streams.push(app.stream("/stream?mode=live&topic=t").await);
    }
    let publishers = (0..4).map(|p| {
        let app = &nodes[p % 2];
        async move {
            for i in 0..40 {
                app.publish("t", &format!("{p}:{i}")).await;
            }
        }
    });
    join_all(publishers).await;
    let mut orders = Vec::new();
    for stream in &mut streams {
        let events = take(stream, 160).await;
        let ids = ids(&events);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of order");
        orders.push(events.iter().map(message).collect::<Vec<_>>());
    }
    assert_eq!(orders[0], orders[1], "both nodes deliver the same order");
}

#[tokio::test]
async fn resume_on_another_node_gets_exactly_the_missed_events() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut on_a = a.stream("/stream?mode=live&topic=x&topic=y").await;
    a.publish("x", "1").await;
    let seen = take(&mut on_a, 1).await;
    let last = seen[0].id.clone().unwrap();
    drop(on_a);
    b.publish("y", "2").await;
    a.publish("x", "3").await;
    let mut on_b = b
        .stream_with(
            "/stream?mode=live&topic=x&topic=y",
            &[("last-event-id", &last)],
        )
        .await;
    let replayed = take(&mut on_b, 2).await;
    assert_eq!(replayed.iter().map(message).collect::<Vec<_>>(), ["2", "3"]);
    assert!(replayed.iter().all(|e| data(e)["data"]["replayed"] == true));
    a.publish("y", "4").await;
    assert_eq!(message(&on_b.next_event().await.unwrap()), "4");
    assert_nothing_before_sentinel(&a, &mut on_b, "y").await;

    // Burst mode resumes across nodes too.
    let mut burst = b
        .stream_with("/stream?topic=x", &[("last-event-id", &last)])
        .await;
    let events = burst.rest().await;
    assert_eq!(message(&events[0]), "3");
}

#[tokio::test]
async fn redis_killed_and_restarted_loses_nothing_accepted() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut live = b.stream("/stream?mode=live&topic=k").await;
    let mut accepted = Vec::new();
    for i in 0..5 {
        accepted.push(a.publish("k", &format!("before {i}")).await);
    }
    let got = take(&mut live, 5).await;
    assert_eq!(ids(&got), accepted);

    redis.kill();
    // During the outage a publish fails fast with a 503 and a JSON error.
    let started = std::time::Instant::now();
    let (status, body) = a.post_json(json!({"message": "lost?", "topic": "k"})).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string());
    assert!(started.elapsed() < Duration::from_secs(5));
    let ready = a.client.get(a.url("/api/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    redis.restart();
    a.wait_ready().await;
    b.wait_ready().await;
    // Everything accepted before the kill is still in history (append-only file, fsync always).
    let page: serde_json::Value = a.get_json("/api/topics/k/events").await;
    let held: Vec<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        held,
        accepted.iter().map(|id| id.to_string()).collect::<Vec<_>>()
    );
    // Live subscribers get every event accepted after recovery, once, in order.
    let mut after = Vec::new();
    for i in 0..5 {
        after.push(a.publish("k", &format!("after {i}")).await);
    }
    let got = take(&mut live, 5).await;
    assert_eq!(ids(&got), after);
    assert_nothing_before_sentinel(&a, &mut live, "k").await;
}

#[tokio::test]
async fn a_subscriber_catches_up_on_events_its_node_missed() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut live = b.stream("/stream?mode=live&topic=m").await;
    a.publish("m", "0").await;
    take(&mut live, 1).await;
    // Cut every node's subscription (as a network blip would); publishes on a still succeed
    // because its command connection is separate.
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let mut sent = Vec::new();
    for i in 1..=5 {
        sent.push(a.publish("m", &i.to_string()).await);
    }
    let got = take(&mut live, 5).await;
    assert_eq!(
        ids(&got),
        sent,
        "no gap, no duplicate after the node re-subscribed"
    );
}

#[tokio::test]
async fn a_node_killed_leaves_the_others_serving() {
    let redis = RedisServer::start();
    let (mut child, addr) = common::spawn_binary(&["--broker", &redis.url()]).await;
    let survivor = node(&redis).await;
    let client = reqwest::Client::new();
    let mut on_doomed = SseStream::open(
        &client,
        &format!("http://{addr}/stream?mode=live&topic=z"),
        &[],
    )
    .await;
    assert_eq!(on_doomed.next().await.unwrap().event, "keepalive");
    let mut on_survivor = survivor.stream("/stream?mode=live&topic=z").await;
    let response = client
        .post(format!("http://{addr}/api/messages"))
        .json(&json!({"message": "from the doomed node", "topic": "z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        message(&on_survivor.next_event().await.unwrap()),
        "from the doomed node"
    );
    assert_eq!(
        message(&on_doomed.next_event().await.unwrap()),
        "from the doomed node"
    );

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(
        on_doomed.next_within(PATIENCE).await.unwrap().is_none(),
        "its clients are cut off"
    );
    survivor.publish("z", "still here").await;
    assert_eq!(
        message(&on_survivor.next_event().await.unwrap()),
        "still here"
    );
    let ready = survivor
        .client
        .get(survivor.url("/api/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn keys_stay_under_the_prefix() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app(move |c| {
        c.broker = Some(url);
        c.redis_prefix = "myhub:".into();
        c.history = 2;
    })
    .await;
    for i in 0..5 {
        app.publish("p/q", &i.to_string()).await;
    }
    let mut keys: Vec<String> = redis
        .cli(&["KEYS", "*"])
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    assert_eq!(keys, ["myhub:meta", "myhub:topic:p/q", "myhub:topics"]);
    // Redis trims approximately (whole stream nodes); history still holds exactly 2.
    let held: Value = app
        .client
        .get(app.url("/api/topics/p/q/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages: Vec<&str> = held["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["3", "4"], "history bounded by the count: {held}");
}

#[tokio::test]
async fn a_password_in_the_url_is_used() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/0", redis.port);
    let app = spawn_app(move |c| c.broker = Some(url)).await;
    let mut stream = app.stream("/stream?mode=live&topic=pw").await;
    app.publish("pw", "authenticated").await;
    assert_eq!(
        message(&stream.next_event().await.unwrap()),
        "authenticated"
    );

    // A wrong password fails at start, with the broker's error.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = ssehub::Config::with_bind(listener.local_addr().unwrap());
    config.broker = Some(format!("redis://:wrong@127.0.0.1:{}/0", redis.port));
    let err = ssehub::app::connect(config).await.unwrap_err();
    assert!(
        matches!(
            err,
            ssehub::app::StartError::Broker(ssehub::broker::BrokerError::Unavailable(_))
        ),
        "{err}"
    );
}

#[tokio::test]
async fn rediss_with_a_private_ca() {
    let dir = std::env::temp_dir().join(format!("ssehub-tls-{}", std::process::id()));
    let (ca, cert, key) = common::redis::make_certificates(&dir);
    let tls_port = common::redis::free_port().to_string();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-ca-cert-file",
        ca.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let (tls_url, ca_path) = (url.clone(), ca.clone());
    let a = spawn_app(move |c| {
        c.broker = Some(tls_url);
        c.redis_ca = Some(ca_path);
    })
    .await;
    let mut stream = a.stream("/stream?mode=live&topic=tls").await;
    a.publish("tls", "over TLS").await;
    assert_eq!(message(&stream.next_event().await.unwrap()), "over TLS");
    assert_eq!(redis.cli(&["XLEN", "ssehub:topic:tls"]).trim(), "1");

    // Without the CA the server's certificate is not trusted: the node does not start.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = ssehub::Config::with_bind(listener.local_addr().unwrap());
    config.broker = Some(url);
    config.broker_timeout = Duration::from_secs(2);
    assert!(ssehub::app::connect(config).await.is_err());
    let _ = std::fs::remove_dir_all(dir);
}

/// `rediss+cluster://`: every node reached by TLS at the port it announces as its `tls-port`
/// (each also has a cleartext port, which a node must not use: a TLS handshake there fails).
#[tokio::test]
async fn a_redis_cluster_over_tls_with_a_private_ca() {
    let dir = std::env::temp_dir().join(format!("ssehub-tls-cluster-{}", std::process::id()));
    let (ca, cert, key) = common::redis::make_certificates(&dir);
    let tls_ports: Vec<u16> = (0..3).map(|_| common::redis::free_port()).collect();
    let files = [&cert, &key, &ca].map(|p| p.to_str().unwrap().to_owned());
    let cluster = RedisCluster::start_with(3, 0, |i| {
        let mut args = vec!["--tls-port".to_owned(), tls_ports[i].to_string()];
        for (flag, file) in ["--tls-cert-file", "--tls-key-file", "--tls-ca-cert-file"]
            .iter()
            .zip(&files)
        {
            args.extend([flag.to_string(), file.clone()]);
        }
        args.extend(["--tls-cluster", "yes", "--tls-auth-clients", "no"].map(String::from));
        args
    })
    .await;
    // One seed, by TLS: the other nodes are found through `CLUSTER SHARDS`.
    let url = format!("rediss+cluster://127.0.0.1:{}", tls_ports[0]);
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let (url, ca) = (url.clone(), ca.clone());
        nodes.push(
            spawn_app(move |c| {
                c.broker = Some(url);
                c.redis_ca = Some(ca);
                c.redis_min_replicas = Some(0);
                c.broker_timeout = Duration::from_secs(2);
            })
            .await,
        );
    }
    // Topics on every shard (12 partitions over 3 primaries), read on the other node.
    let topics: Vec<String> = (0..12).map(|i| format!("tls/{i}")).collect();
    let mut stream = nodes[1].stream("/stream?mode=live&topic=tls/*").await;
    for topic in &topics {
        nodes[0].publish(topic, topic).await;
    }
    let got = take(&mut stream, topics.len()).await;
    let mut seen: Vec<String> = got.iter().map(message).collect();
    seen.sort();
    let mut want = topics.clone();
    want.sort();
    assert_eq!(seen, want);
    let mut total = 0;
    for node in &cluster.nodes {
        let keys = node.cli(&["KEYS", "ssehub*topic:tls/*"]);
        total += keys.lines().filter(|l| !l.is_empty()).count();
    }
    assert_eq!(total, topics.len(), "each topic's stream on some shard");

    // Without the CA the nodes' certificate is not trusted: the node does not start.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = ssehub::Config::with_bind(listener.local_addr().unwrap());
    config.broker = Some(url);
    config.broker_timeout = Duration::from_secs(2);
    assert!(ssehub::app::connect(config).await.is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn shutdown_stops_the_redis_subscription() {
    let redis = RedisServer::start();
    let mut a = node(&redis).await;
    let subscribers = |redis: &RedisServer| {
        redis
            .cli(&["CLIENT", "LIST"])
            .lines()
            .filter(|line| line.contains(" sub=1") || line.contains(" psub=1"))
            .count()
    };
    assert_eq!(subscribers(&redis), 1, "the node holds one subscription");
    a.shutdown().await.unwrap();
    // The subscription task stops with the server, not with the process.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while subscribers(&redis) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription outlived shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
