//! Redis Cluster: topics spread over partitions on three shards; a primary killed, a manual
//! failover, and a slot resharded mid-publish, with three ssehub nodes publishing and
//! streaming throughout, streams watching topics on several partitions.

use std::time::Duration;

use tokio::sync::watch;

use super::load::{self, Counts};
use crate::common::cluster::RedisCluster;
use crate::common::sentinel::cli;
use crate::common::{spawn_app, SseStream, TestApp};

/// Spread over the partitions (and so over the shards).
const TOPICS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

async fn node(cluster: &RedisCluster) -> TestApp {
    let url = cluster.url();
    let app = spawn_app(move |c| {
        c.broker = Some(url);
        c.broker_timeout = Duration::from_secs(1);
        c.history = 100_000;
    })
    .await;
    app.wait_ready().await;
    app
}

/// How a shard's primary goes away.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `kill -9`: its replica is promoted after the node timeout; the killed node is started
    /// again and rejoins as the new primary's replica (until then the promoted one has no
    /// replica to acknowledge writes: its partitions answer 503).
    Kill,
    /// `CLUSTER FAILOVER` on its replica: a planned switch.
    Failover,
    /// `redis-cli --cluster reshard`: the first 1,365 slots (partition 0's, with topic `b`, among
    /// them) move to another primary while publishes go on.
    Reshard,
}

/// The port of the primary holding `topic`'s stream.
async fn holder_of(cluster: &RedisCluster, topic: &str) -> u16 {
    match try_holder_of(cluster, topic).await {
        Some(port) => port,
        None => panic!("no primary holds topic {topic}"),
    }
}

/// The port of the primary holding `topic`'s stream, if one answers.
async fn try_holder_of(cluster: &RedisCluster, topic: &str) -> Option<u16> {
    for node in &cluster.nodes {
        let role = cli(node.port, &["ROLE"]).await;
        if !role.starts_with("master") {
            continue;
        }
        let pattern = format!("*:topic:{topic}");
        let keys = cli(node.port, &["--scan", "--pattern", &pattern]).await;
        if !keys.trim().is_empty() {
            return Some(node.port);
        }
    }
    None
}

async fn node_id(port: u16) -> String {
    cli(port, &["CLUSTER", "MYID"]).await.trim().to_owned()
}

async fn run(fault: Fault) -> Counts {
    let mut cluster = RedisCluster::start(3, 1).await;
    let nodes = [
        node(&cluster).await,
        node(&cluster).await,
        node(&cluster).await,
    ];
    let url = cluster.url();
    let args = [
        "--broker",
        &url,
        "--broker-timeout",
        "1s",
        "--history",
        "100000",
    ];
    let (mut doomed, doomed_addr) = crate::common::spawn_binary(&args).await;
    let mut bases: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    bases.push(format!("http://{doomed_addr}"));
    let client = reqwest::Client::new();
    let mut readers = vec![];
    for (i, base) in bases.iter().enumerate() {
        let mut sets: Vec<Vec<&str>> = TOPICS.iter().map(|t| vec![*t]).collect();
        sets.push(TOPICS.to_vec());
        sets.push(vec!["a", "d"]);
        for topics in sets {
            let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
            let url = format!("{base}/stream?mode=live&{}", query.join("&"));
            let stream = SseStream::open(&client, &url, &[]).await;
            assert_eq!(stream.status, 200);
            let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
            let others = if i == 3 {
                vec![bases[(i + 1) % 3].clone()]
            } else {
                vec![]
            };
            readers.push((
                topics.clone(),
                load::reader(stream, topics, base.clone(), others),
            ));
        }
    }

    let began = tokio::time::Instant::now();
    let (stop, stopped) = watch::channel(false);
    let (ledger, publishers) = load::publishers(&bases, &TOPICS, stopped, began);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ledger.acknowledged() < 600 {
        assert!(tokio::time::Instant::now() < deadline, "publishes stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The topic whose partition the fault moves (`b` is on partition 0, `a` on 3: fixed by
    // CRC16).
    let topic = match fault {
        Fault::Reshard => "b",
        Fault::Kill | Fault::Failover => "a",
    };
    let old = holder_of(&cluster, topic).await;
    let faulted = began.elapsed();
    match fault {
        Fault::Kill => cluster.node(old).kill(),
        Fault::Failover => {
            let id = node_id(old).await;
            let replica = cluster
                .nodes
                .iter()
                .find(|n| {
                    n.port != old
                        && n.cli(&["CLUSTER", "NODES"])
                            .lines()
                            .any(|l| l.contains("myself") && l.contains(&id))
                })
                .map(|n| n.port)
                .expect("a replica of the primary");
            let out = cli(replica, &["CLUSTER", "FAILOVER"]).await;
            assert!(out.contains("OK"), "{out}");
        }
        Fault::Reshard => {
            let from = node_id(old).await;
            let mut to = None;
            for n in &cluster.nodes {
                if n.port != old && cli(n.port, &["ROLE"]).await.starts_with("master") {
                    to = Some(node_id(n.port).await);
                    break;
                }
            }
            let out = tokio::process::Command::new("redis-cli")
                .args(["--cluster", "reshard", &format!("127.0.0.1:{old}")])
                .args(["--cluster-from", &from, "--cluster-to", &to.unwrap()])
                .args(["--cluster-slots", "1365", "--cluster-yes"])
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    }
    doomed.start_kill().unwrap();
    if let Fault::Kill = fault {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while try_holder_of(&cluster, topic)
            .await
            .is_none_or(|p| p == old)
        {
            assert!(tokio::time::Instant::now() < deadline, "no failover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cluster.node(old).restart();
    }
    // Until the moved partition takes publishes again, and a while after.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ledger.acknowledged_since("a", faulted) < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "topic a never recovered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    load::end(&nodes[2], &TOPICS).await;
    let mut streams = vec![];
    for (topics, reader) in readers {
        streams.push((topics, reader.await.unwrap()));
    }
    let all = ledger.all();
    let recovered = all
        .iter()
        .filter(|p| p.id.is_some() && p.sent > faulted && p.topic == topic)
        .map(|p| p.at - faulted)
        .min()
        .unwrap();
    let counts = load::check(&all, &streams);
    eprintln!(
        "{fault:?} of primary {old}: first acknowledged publish to its topic {topic} \
         {recovered:?} after it; {counts:?}"
    );
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_killed_primary_loses_no_acknowledged_event() {
    load::assert_exact(&run(Fault::Kill).await, 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_manual_failover_loses_no_acknowledged_event() {
    load::assert_exact(&run(Fault::Failover).await, 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_resharded_slot_loses_no_acknowledged_event() {
    load::assert_exact(&run(Fault::Reshard).await, 1200);
}

/// A stream over topics on several partitions, resumed on another node from an id in the
/// middle, gets exactly the events after it, in one id order.
#[tokio::test]
async fn cluster_a_stream_over_partitions_resumes_exactly_on_another_node() {
    let cluster = RedisCluster::start(3, 1).await;
    // Ordering and resume are under test, not durability: no WAIT, and time for a loaded
    // machine, so that no publish is refused (a refused one may still be delivered).
    let calm = |url: String| {
        spawn_app(move |c| {
            c.broker = Some(url);
            c.redis_min_replicas = Some(0);
            c.broker_timeout = Duration::from_secs(10);
        })
    };
    let (one, two) = (calm(cluster.url()).await, calm(cluster.url()).await);
    one.wait_ready().await;
    two.wait_ready().await;
    let query = "/stream?mode=live&topic=a&topic=b&topic=c&topic=d&topic=e&topic=f";
    let mut stream = one.stream(query).await;
    let mut sent = vec![];
    for i in 0..60 {
        let topic = TOPICS[i % TOPICS.len()];
        let by = if i % 2 == 0 { &one } else { &two };
        by.publish(topic, &format!("m{i}")).await;
        sent.push(format!("m{i}"));
    }
    let mut got = vec![];
    while got.len() < sent.len() {
        let event = stream.next_event().await.unwrap();
        got.push((crate::common::message(&event), event.id.unwrap()));
    }
    // Each topic's events in the order they were published; all of them in id order (two
    // partitions may order events of one millisecond otherwise than they were published).
    for topic in 0..TOPICS.len() {
        let of_topic = |m: &&str| m[1..].parse::<usize>().unwrap() % TOPICS.len() == topic;
        let published: Vec<&str> = sent.iter().map(String::as_str).filter(of_topic).collect();
        let delivered: Vec<&str> = got
            .iter()
            .map(|(m, _)| m.as_str())
            .filter(of_topic)
            .collect();
        assert_eq!(delivered, published);
    }
    let keys: Vec<crate::EventKey> = got
        .iter()
        .map(|(_, id)| crate::EventKey::parse(id))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    let middle = got[29].1.clone();
    let mut resumed = SseStream::open(
        &two.client,
        &two.url(query),
        &[("last-event-id", middle.as_str())],
    )
    .await;
    assert_eq!(resumed.status, 200);
    for (message, id) in &got[30..] {
        let event = resumed.next_event().await.unwrap();
        assert_eq!(event.event, "message", "{event:?}");
        assert_eq!(&crate::common::message(&event), message);
        assert_eq!(event.id.as_ref(), Some(id));
    }
    // And what comes next arrives live, once.
    one.publish("d", "after").await;
    let event = resumed.next_event().await.unwrap();
    assert_eq!(crate::common::message(&event), "after");
}

/// The topic channels a cluster's nodes subscribe to, over every node of `cluster`.
fn topic_channels(cluster: &RedisCluster) -> usize {
    cluster
        .nodes
        .iter()
        .map(|node| {
            node.cli(&["PUBSUB", "SHARDCHANNELS", "*:ch:*"])
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        })
        .sum()
}

/// Streams on many topics, then closed: the node unsubscribes from those topics' channels (a
/// client cycling through topic names cannot grow its subscriptions), and a stream naming one
/// of them again gets its events.
#[tokio::test]
async fn cluster_a_node_drops_the_channels_of_topics_no_stream_names() {
    let cluster = RedisCluster::start(3, 0).await;
    let url = cluster.url();
    let app = spawn_app(move |c| {
        c.broker = Some(url);
        c.redis_min_replicas = Some(0);
        c.broker_timeout = Duration::from_secs(10);
    })
    .await;
    app.wait_ready().await;
    let topics: Vec<String> = (0..40).map(|i| format!("cycled-{i}")).collect();
    let mut streams = Vec::new();
    for topic in &topics {
        streams.push(
            app.stream(&format!("/stream?mode=live&topic={topic}"))
                .await,
        );
    }
    // Each topic's channel in its own partition, and in partition 0 (alternates) unless that
    // is its own.
    let subscribed = topic_channels(&cluster);
    assert!((40..=80).contains(&subscribed), "{subscribed}");
    let kept = streams.remove(0);
    drop(streams);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let left = loop {
        let left = topic_channels(&cluster);
        if left <= 2 || tokio::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Only the kept stream's topic remains (its one or two channels).
    assert!(
        (1..=2).contains(&left),
        "{left} channels left of {subscribed}"
    );
    drop(kept);

    // Named again: subscribed again, and live.
    let mut again = app.stream("/stream?mode=live&topic=cycled-7").await;
    app.publish("cycled-7", "back").await;
    let event = again.next_event().await.unwrap();
    assert_eq!(crate::common::message(&event), "back");
}
