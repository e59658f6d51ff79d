//! Redis Sentinel: a primary killed or frozen mid-publish, with three ssehub nodes publishing
//! and streaming throughout.

use std::time::Duration;

use tokio::sync::watch;

use super::load::{self, Counts};
use crate::common::sentinel::{Sentinels, Tls};
use crate::common::{spawn_app, SseStream, TestApp};

const TOPICS: [&str; 2] = ["a", "b"];

async fn node(sentinels: &Sentinels) -> TestApp {
    let url = sentinels.url();
    let app = spawn_app(move |c| {
        c.broker = Some(url);
        c.broker_timeout = Duration::from_secs(1);
        // Enough for the resuming stream's absence: a gap would be right, and no test.
        c.history = 100_000;
    })
    .await;
    app.wait_ready().await;
    app
}

/// A node with a live stream on topic `w` that has received a first event: delivery works.
async fn streaming_node(sentinels: &Sentinels) -> (TestApp, SseStream) {
    let app = node(sentinels).await;
    let mut stream = app.stream("/stream?mode=live&topic=w").await;
    app.publish("w", "first").await;
    assert_eq!(
        crate::common::message(&stream.next_event().await.unwrap()),
        "first"
    );
    (app, stream)
}

/// How the primary fails.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `kill -9`, with one replica: it is promoted, and the killed primary is started again and
    /// rejoins as its replica (until then writes get 503). One replica, because with several
    /// the sentinels may promote one that lacks what another already had, and nodes that
    /// delivered from that other could have sent a refused event that is then lost (see the
    /// README's "window that remains").
    Kill,
    /// `kill -STOP` past the failover, then `-CONT`, with one replica: the promoted replica
    /// has none left to acknowledge writes until the old primary rejoins as one (Sentinel
    /// converts it ~8 s after it answers again, then it resynchronises).
    Freeze,
}

/// A node as its own process, to be killed: `(process, base URL)`.
async fn doomed_node(sentinels: &Sentinels) -> (tokio::process::Child, String) {
    let url = sentinels.url();
    let args = [
        "--broker",
        &url,
        "--broker-timeout",
        "1s",
        "--history",
        "100000",
    ];
    let (child, addr) = crate::common::spawn_binary(&args).await;
    (child, format!("http://{addr}"))
}

async fn run(fault: Fault) -> Counts {
    let replicas = match fault {
        Fault::Kill => 1,
        Fault::Freeze => 1,
    };
    let mut sentinels = Sentinels::start(replicas).await;
    let nodes = [
        node(&sentinels).await,
        node(&sentinels).await,
        node(&sentinels).await,
    ];
    // A fourth node, killed with the primary: its streams resume on node 0.
    let (mut doomed, doomed_url) = doomed_node(&sentinels).await;
    // Live streams on every node: each topic alone, and both.
    let mut readers = vec![];
    let mut bases: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    bases.push(doomed_url.clone());
    let client = reqwest::Client::new();
    for (i, base) in bases.iter().enumerate() {
        for topics in [&["a"][..], &["b"], &["a", "b"]] {
            let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
            let url = format!("{base}/stream?mode=live&{}", query.join("&"));
            let stream = SseStream::open(&client, &url, &[]).await;
            assert_eq!(stream.status, 200);
            let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
            let others = if i == 3 {
                vec![bases[0].clone()]
            } else {
                vec![]
            };
            readers.push((
                topics.clone(),
                load::reader(stream, topics, base.clone(), others),
            ));
        }
    }
    // A stream that leaves node 0 mid-run and resumes on node 1 with its last id.
    let resumer = SseStream::open(
        &nodes[0].client,
        &nodes[0].url("/stream?mode=live&topic=a&topic=b"),
        &[],
    )
    .await;

    let began = tokio::time::Instant::now();
    let (stop, stopped) = watch::channel(false);
    let (ledger, publishers) = load::publishers(&bases, &TOPICS, stopped, began);

    let until_acked = |n: usize| {
        let ledger = ledger.clone();
        async move {
            while ledger.acknowledged() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    until_acked(300).await;

    // The resumer reads a while, drops, and resumes on another node.
    let mut resumer = resumer;
    let mut resumed = load::Received::new();
    while resumed.len() < 100 {
        let event = resumer.next_event().await.expect("stream ended");
        resumed.push((crate::common::message(&event), event.id.clone().unwrap()));
    }
    drop(resumer);

    let old = sentinels.primary_port().await.unwrap();
    match fault {
        Fault::Kill => sentinels.primary().await.kill(),
        Fault::Freeze => sentinels.primary().await.pause(),
    }
    let faulted = began.elapsed();
    doomed.start_kill().unwrap();
    let acked_before = ledger.acknowledged();
    let new = sentinels.until_failover_from(old).await;
    let failed_over = began.elapsed();
    match fault {
        Fault::Freeze => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let old_node = sentinels.nodes.iter().find(|n| n.port == old).unwrap();
            old_node.resume();
        }
        Fault::Kill => {
            let old_node = sentinels.nodes.iter_mut().find(|n| n.port == old).unwrap();
            old_node.restart();
        }
    }
    sentinels.until_replicas(1).await;
    let last_id = resumed.last().unwrap().1.clone();
    // Opening a stream may be refused (503) while the node moves to the new primary: retry,
    // as a client library would.
    let mut resumer = loop {
        let stream = SseStream::open(
            &nodes[1].client,
            &nodes[1].url("/stream?mode=live&topic=a&topic=b"),
            &[("last-event-id", last_id.as_str())],
        )
        .await;
        if stream.status == 200 {
            break stream;
        }
        assert_eq!(stream.status, 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    until_acked(acked_before + 300).await;
    stop.send(true).unwrap();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    load::end(&nodes[2], &TOPICS).await;

    let topics_ab = vec!["a".to_owned(), "b".to_owned()];
    assert!(load::read_until_ends(&mut resumer, &topics_ab, &mut resumed).await);
    let mut streams = vec![(topics_ab, resumed)];
    for (topics, reader) in readers {
        streams.push((topics, reader.await.unwrap()));
    }
    let all = ledger.all();
    // Recovery: from the fault to the first acknowledgement of a publish sent after it.
    let recovered = all
        .iter()
        .filter(|p| p.id.is_some() && p.sent > faulted)
        .map(|p| p.at - faulted)
        .min()
        .unwrap();
    let counts = load::check(&all, &streams);
    eprintln!(
        "{fault:?}: primary {old} -> {new} (sentinels agreed {:?} after the fault); first \
         acknowledged publish {recovered:?} after it; {counts:?}",
        failed_over - faulted
    );
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_loses_no_acknowledged_event() {
    load::assert_acknowledged(&run(Fault::Kill).await, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_loses_no_acknowledged_event() {
    load::assert_acknowledged(&run(Fault::Freeze).await, 600);
}

/// The interleaving behind the promise: a publish is answered only once its replica holds it.
/// With the replica frozen, the publish is refused (503, JSON); it is on the primary, so once
/// the replica catches up it reaches the stream, which delivers from the replica, followed by
/// the next publish: all or nothing, in order.
#[tokio::test]
async fn a_publish_is_acknowledged_only_once_a_replica_holds_it() {
    let sentinels = Sentinels::start(1).await;
    let (app, mut stream) = streaming_node(&sentinels).await;
    sentinels.nodes[1].pause();
    let started = tokio::time::Instant::now();
    let (status, body) = app
        .post_json(serde_json::json!({"topic": "w", "message": "unacknowledged"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "WAIT waited"
    );
    sentinels.nodes[1].resume();
    let mut second = 0;
    while second == 0 {
        let (status, _) = app
            .post_json(serde_json::json!({"topic": "w", "message": "second"}))
            .await;
        second = usize::from(status == 201);
    }
    let mut got = vec![];
    while got.last().map(String::as_str) != Some("second") {
        got.push(crate::common::message(&stream.next_event().await.unwrap()));
    }
    // The refused publish reached the stream (its primary survived), once, before `second`.
    assert_eq!(got[0], "unacknowledged", "{got:?}");
    assert!(got[1..].iter().all(|m| m == "second"), "{got:?}");
}

/// The interleaving behind "every stream or none": the primary dies, its replica is promoted,
/// and the dead primary comes back, a primary in its own view, with an event the promoted one
/// never had, before the sentinels convert it (they are frozen from the promotion on, so the
/// node cannot learn of it either). A node that delivered from the replica must not follow the
/// dead primary and deliver that event (it would reach this node's streams and no other's).
#[tokio::test]
async fn a_dead_primary_back_before_its_conversion_is_never_delivered_from() {
    let mut sentinels = Sentinels::start(1).await;
    let (_node, mut stream) = streaming_node(&sentinels).await;
    let old = sentinels.primary_port().await.unwrap();
    sentinels.primary().await.kill();
    sentinels.until_failover_from(old).await;
    sentinels.pause();
    let primary = sentinels.nodes.iter_mut().find(|n| n.port == old).unwrap();
    primary.restart();
    // An event only the dead primary has, published there by a node of its own.
    let url = primary.url();
    let witness = crate::common::spawn_app(move |c| c.broker = Some(url)).await;
    let mut control = witness.stream("/stream?mode=live&topic=w").await;
    witness.publish("w", "only on the old primary").await;
    assert_eq!(
        crate::common::message(&control.next_event().await.unwrap()),
        "only on the old primary",
        "published on the old primary"
    );
    // The node retries a lost subscription with backoff up to 5 s; had it followed the dead
    // primary, it would have delivered the event within that.
    let got = tokio::time::timeout(Duration::from_secs(6), stream.next_event()).await;
    assert!(
        got.is_err(),
        "delivered from the dead primary: {:?}",
        got.ok().flatten().map(|e| crate::common::message(&e))
    );
    sentinels.resume();
}

/// `rediss+sentinel://`: the sentinels and the data nodes reached by TLS (a private CA; the
/// sentinels name the primary's and replicas' TLS ports): a node finds the primary, delivers
/// from a replica, and follows a failover; without the CA it does not start.
#[tokio::test]
async fn over_tls_a_node_follows_the_sentinels_through_a_failover() {
    let dir = std::env::temp_dir().join(format!("ssehub-tls-sentinel-{}", std::process::id()));
    let (ca, cert, key) = crate::common::redis::make_certificates(&dir);
    let tls = Tls { ca, cert, key };
    let mut sentinels = Sentinels::start_with(2, Some(&tls)).await;
    let (url, ca) = (sentinels.tls_url(), tls.ca.clone());
    let app = spawn_app(move |c| {
        c.broker = Some(url);
        c.redis_ca = Some(ca);
        c.broker_timeout = Duration::from_secs(1);
    })
    .await;
    app.wait_ready().await;
    let mut stream = app.stream("/stream?mode=live&topic=t").await;
    // Acknowledged only once a replica holds it (`--redis-min-replicas` is 1 on Sentinel).
    app.publish("t", "before").await;
    assert_eq!(
        crate::common::message(&stream.next_event().await.unwrap()),
        "before"
    );

    let primary = sentinels
        .nodes
        .iter_mut()
        .find(|n| n.cli(&["ROLE"]).starts_with("master"))
        .unwrap();
    primary.kill();
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE * 2;
    loop {
        let (status, body) = app
            .post_json(serde_json::json!({"topic": "t", "message": "after"}))
            .await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "never followed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Refused attempts may arrive too (every stream or none); "after" comes, once.
    let mut got = vec![];
    while got.last().map(String::as_str) != Some("after") {
        got.push(crate::common::message(&stream.next_event().await.unwrap()));
    }

    // Without the CA the certificates are not trusted: the node does not start.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = ssehub::Config::with_bind(listener.local_addr().unwrap());
    config.broker = Some(sentinels.tls_url());
    config.broker_timeout = Duration::from_secs(2);
    assert!(ssehub::app::connect(config).await.is_err());
    let _ = std::fs::remove_dir_all(dir);
}
