//! The load a failover test runs and what it checks: publishers on every node, live streams
//! on every node (one topic and several), a stream that resumes on another node, and the
//! counts: every acknowledged event reaches every matching stream exactly once in its topic's
//! order; an event whose publish failed reaches all of them or none.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::{message, SseStream, TestApp};

/// What the message of the last event of a run starts with.
pub const END: &str = "end/";

/// One publish and how it ended.
#[derive(Debug, Clone)]
pub struct Publish {
    pub topic: String,
    pub message: String,
    /// 201 with this id; `None` when refused (503) or unanswered in time.
    pub id: Option<String>,
    /// When it was sent and answered, since the run began.
    pub sent: Duration,
    pub at: Duration,
}

/// The publishes so far.
#[derive(Default, Clone)]
pub struct Ledger(Arc<Mutex<Vec<Publish>>>);

impl Ledger {
    /// Publishes to `topic` sent after `since` and acknowledged.
    pub fn acknowledged_since(&self, topic: &str, since: Duration) -> usize {
        self.lock()
            .iter()
            .filter(|p| p.id.is_some() && p.topic == topic && p.sent > since)
            .count()
    }

    pub fn acknowledged(&self) -> usize {
        self.lock().iter().filter(|p| p.id.is_some()).count()
    }

    pub fn all(&self) -> Vec<Publish> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Publish>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Pause between two publishes of one publisher.
const PACE: Duration = Duration::from_millis(5);

/// Starts a publisher per node and topic; each publishes `TOPIC/NODE/I` in turn until `stop`.
pub fn publishers(
    nodes: &[String],
    topics: &[&str],
    stop: watch::Receiver<bool>,
    began: tokio::time::Instant,
) -> (Ledger, Vec<JoinHandle<()>>) {
    let ledger = Ledger::default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut tasks = vec![];
    for (n, base) in nodes.iter().enumerate() {
        for topic in topics {
            let (ledger, client, stop) = (ledger.clone(), client.clone(), stop.clone());
            let (url, topic) = (format!("{base}/api/messages"), topic.to_string());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    if *stop.borrow() {
                        break;
                    }
                    let message = format!("{topic}/{n}/{i}");
                    let sent = began.elapsed();
                    let answer = client
                        .post(&url)
                        .json(&json!({"topic": topic, "message": message}))
                        .send()
                        .await;
                    let id = match answer {
                        Ok(r) if r.status() == 201 => r
                            .json::<serde_json::Value>()
                            .await
                            .ok()
                            .and_then(|body| body["data"]["id"].as_str().map(str::to_owned)),
                        Ok(_) | Err(_) => {
                            // Refused or cut off: back off while the hub recovers, as a client
                            // would. (A refused publish may still be stored and delivered: at
                            // full speed through an 18 s outage they would outgrow what one
                            // resume may replay, 10,000 events, and the resumer would rightly
                            // be told of a gap.)
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            None
                        }
                    };
                    ledger.lock().push(Publish {
                        topic: topic.clone(),
                        message,
                        id,
                        sent,
                        at: began.elapsed(),
                    });
                    // Paced: a stream resuming after a few seconds away must find what it
                    // missed within what one resume may replay (10,000 events), or it is
                    // rightly told of a gap.
                    tokio::time::sleep(PACE).await;
                }
            }));
        }
    }
    (ledger, tasks)
}

/// Every event (message, id) a stream received, in order.
pub type Received = Vec<(String, String)>;

/// Reads a live stream until it has the end marker of every topic it watches. When its node
/// goes away, it resumes on the next of `others` (base URLs) with its last id, as an
/// `EventSource` would; when its node ends it (a stream that fell `--queue` events behind, as
/// after a burst of caught-up events, is told so and ended), it resumes on the same node.
pub fn reader(
    stream: SseStream,
    topics: Vec<String>,
    home: String,
    others: Vec<String>,
) -> JoinHandle<Received> {
    tokio::spawn(async move {
        let mut seen = Received::new();
        let mut stream = stream;
        let mut others = others.into_iter();
        let mut current = home;
        let mut resumes = 0;
        while !read_until_ends(&mut stream, &topics, &mut seen).await {
            resumes += 1;
            assert!(resumes <= 20, "a stream kept ending: {topics:?}");
            if let Some(next) = others.next() {
                current = next;
            }
            let base = current.clone();
            let last = seen.last().map(|(_, id)| id.clone()).unwrap_or_default();
            let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
            let client = reqwest::Client::new();
            let url = format!("{base}/stream?mode=live&{}", query.join("&"));
            stream = SseStream::open(&client, &url, &[("last-event-id", last.as_str())]).await;
            // Refused (503) while the node moves to a new primary: retry.
            while stream.status == 503 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                stream = SseStream::open(&client, &url, &[("last-event-id", last.as_str())]).await;
            }
            assert_eq!(stream.status, 200);
        }
        seen
    })
}

/// Reads `stream` until the end markers of `topics`, appending to `seen`; `false` if the
/// stream ended first.
pub async fn read_until_ends(
    stream: &mut SseStream,
    topics: &[String],
    seen: &mut Received,
) -> bool {
    let mut ends: HashSet<String> = seen
        .iter()
        .filter_map(|(m, _)| m.strip_prefix(END).map(str::to_owned))
        .collect();
    while ends.len() < topics.len() {
        let Ok(Some(event)) = stream.next_within(Duration::from_secs(60)).await else {
            return false;
        };
        if event.event != "message" {
            assert_ne!(
                event.event,
                "gap",
                "a stream was told it missed events: {event:?} after {:?}",
                seen.last()
            );
            continue;
        }
        let text = message(&event);
        if let Some(topic) = text.strip_prefix(END) {
            ends.insert(topic.to_owned());
        }
        seen.push((text, event.id.clone().unwrap_or_default()));
    }
    true
}

/// Publishes the end marker of each topic through `node`, retrying until accepted.
pub async fn end(node: &TestApp, topics: &[&str]) {
    for topic in topics {
        loop {
            let (status, _) = node
                .post_json(json!({"topic": topic, "message": format!("{END}{topic}")}))
                .await;
            if status == 201 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The counts of a run.
#[derive(Debug, Default)]
pub struct Counts {
    pub acknowledged: usize,
    pub refused: usize,
    /// Deliveries of acknowledged events to the streams that should get them.
    pub expected: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub out_of_order: usize,
    /// Refused events that reached some matching streams but not all.
    pub partial: usize,
}

/// Checks every stream (its topics, what it received) against the ledger.
pub fn check(ledger: &[Publish], streams: &[(Vec<String>, Received)]) -> Counts {
    let mut counts = Counts::default();
    let topic_of: HashMap<&str, &str> = ledger
        .iter()
        .map(|p| (p.message.as_str(), p.topic.as_str()))
        .collect();
    let mut refused_reach: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    // Which streams (by index) a refused event reached: printed for a partial one.
    let mut reached_by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    // How many acknowledged events each stream missed: printed when any did.
    let mut lost_by: BTreeMap<usize, usize> = BTreeMap::new();
    for (index, (topics, received)) in streams.iter().enumerate() {
        let mut counted: HashMap<&str, usize> = HashMap::new();
        for (message, _) in received {
            *counted.entry(message.as_str()).or_default() += 1;
        }
        counts.duplicated += counted.values().map(|n| n - 1).sum::<usize>();
        // Ids only go up, across all the stream's topics (one order, whatever partitions they
        // live on); so does each publisher's sequence.
        let mut last_id: Option<crate::EventKey> = None;
        let mut last_seq: HashMap<String, u64> = HashMap::new();
        for (message, id) in received {
            if !topic_of.contains_key(message.as_str()) {
                continue;
            }
            let key = crate::EventKey::parse(id);
            if last_id.is_some_and(|prev| prev >= key) {
                counts.out_of_order += 1;
            }
            last_id = Some(key);
            if let Some((publisher, seq)) = message.rsplit_once('/') {
                let seq: u64 = seq.parse().unwrap_or(0);
                if last_seq.get(publisher).is_some_and(|prev| *prev >= seq) {
                    counts.out_of_order += 1;
                }
                last_seq.insert(publisher.to_owned(), seq);
            }
        }
        for publish in ledger.iter().filter(|p| topics.contains(&p.topic)) {
            let got = counted.contains_key(publish.message.as_str());
            if publish.id.is_some() {
                counts.expected += 1;
                if got {
                    counts.delivered += 1;
                } else {
                    counts.lost += 1;
                    *lost_by.entry(index).or_default() += 1;
                }
            } else {
                let reach = refused_reach.entry(&publish.message).or_default();
                reach.0 += 1;
                reach.1 += usize::from(got);
                if got {
                    reached_by.entry(&publish.message).or_default().push(index);
                }
            }
        }
    }
    counts.acknowledged = ledger.iter().filter(|p| p.id.is_some()).count();
    counts.refused = ledger.len() - counts.acknowledged;
    if !lost_by.is_empty() {
        let received: Vec<usize> = streams.iter().map(|(_, r)| r.len()).collect();
        eprintln!(
            "acknowledged events missed, by stream: {lost_by:?}; received by stream: {received:?}"
        );
    }
    for (message, (of, got)) in &refused_reach {
        if *got != 0 && got != of {
            counts.partial += 1;
            let by = reached_by.get(message).cloned().unwrap_or_default();
            eprintln!("refused {message}: reached {got} of {of} streams, streams {by:?}");
        }
    }
    counts
}

/// Every acknowledged event reached every matching stream once, in order, after at least
/// `acknowledged` of them; no refused one reached some streams only.
pub fn assert_exact(counts: &Counts, acknowledged: usize) {
    assert_acknowledged(counts, acknowledged);
    assert_eq!(counts.partial, 0, "{counts:?}");
}

/// Every acknowledged event reached every matching stream once, in order, after at least
/// `acknowledged` of them. (Refused events are not checked: on Sentinel, one may reach some
/// streams only during a failover; see docs/cluster.md.)
pub fn assert_acknowledged(counts: &Counts, acknowledged: usize) {
    assert!(counts.acknowledged >= acknowledged, "{counts:?}");
    assert_eq!(counts.lost, 0, "{counts:?}");
    assert_eq!(counts.duplicated, 0, "{counts:?}");
    assert_eq!(counts.out_of_order, 0, "{counts:?}");
    assert_eq!(counts.delivered, counts.expected, "{counts:?}");
}
