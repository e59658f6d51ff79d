//! A Redis primary killed under load, as clients see it: a publisher on node A sends one
//! message every 20 ms, round robin over [`TOPICS`] topics (on a Cluster they land on several
//! shards), a subscriber on node B reads them all (`topic=ha/*`), and `kill -9` hits a primary
//! 3 s in. Reported: for each topic, the time from the kill to the first delivery of an event
//! published after it (the worst over topics is the recovery the killed shard's topics saw);
//! publishes refused meanwhile (`503`, never a silent drop); acknowledged events never
//! delivered (must be 0).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::{Context, Result};

/// Topics published round robin.
const TOPICS: u64 = 16;
/// One publish every this long.
const EVERY: Duration = Duration::from_millis(20);
/// The kill comes this long after the first publish.
const KILL_AFTER: Duration = Duration::from_secs(3);
/// The longest the measurement waits for every topic to deliver again.
const GIVE_UP: Duration = Duration::from_secs(40);

/// What the clients saw.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// Worst over topics: kill to the first delivery of an event published after it, in ms
    /// (`None`: some topic never delivered again within the measurement).
    pub worst_ms: Option<f64>,
    /// Best over topics, in ms (a topic on a shard that kept its primary delivers at once).
    pub best_ms: Option<f64>,
    /// Publishes answered 2xx / refused (any other answer or none).
    pub accepted: u64,
    pub refused: u64,
    /// Acknowledged publishes the subscriber never received.
    pub lost: u64,
}

/// Runs the load, calls `kill` at [`KILL_AFTER`], and measures.
pub async fn measure(
    publish: SocketAddr,
    subscribe: SocketAddr,
    kill: impl FnOnce(),
) -> Result<Recovery> {
    let mut stream = TcpStream::connect(subscribe).await.context("subscribing")?;
    stream
        .write_all(b"GET /stream?mode=live&topic=ha/* HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .context("subscribing")?;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut pending = Vec::new();
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let now = Instant::now();
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Some(seq) = message_seq(&line) {
                    let _ = seen_tx.send((seq, now));
                }
            }
        }
    });
    let start = Instant::now();
    let mut kill = Some(kill);
    let mut killed_at = None;
    let mut published: HashMap<u64, (Instant, bool)> = HashMap::new();
    let mut delivered: HashMap<u64, Instant> = HashMap::new();
    let mut seq = 0u64;
    let mut next = start;
    loop {
        let now = Instant::now();
        if killed_at.is_none() && now >= start + KILL_AFTER {
            if let Some(kill) = kill.take() {
                kill();
            }
            killed_at = Some(Instant::now());
        }
        while let Ok((s, at)) = seen_rx.try_recv() {
            delivered.entry(s).or_insert(at);
        }
        if let Some(at) = killed_at {
            if recovered(at, &published, &delivered) || now > at + GIVE_UP {
                break;
            }
        }
        tokio::time::sleep_until(next).await;
        next += EVERY;
        seq += 1;
        let sent = Instant::now();
        let ok = post(publish, seq).await;
        published.insert(seq, (sent, ok));
        // A publish that hung during the failover does not make the next ones a burst.
        next = next.max(Instant::now());
    }
    // Late deliveries of what was accepted.
    let drain = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(drain);
    loop {
        tokio::select! {
            got = seen_rx.recv() => match got {
                Some((s, at)) => { delivered.entry(s).or_insert(at); }
                None => break,
            },
            () = &mut drain => break,
        }
    }
    reader.abort();
    let killed_at = killed_at.unwrap_or(start);
    let mut per_topic: Vec<Option<f64>> = Vec::new();
    for topic in 0..TOPICS {
        let first = published
            .iter()
            .filter(|(s, (sent, ok))| *s % TOPICS == topic && *ok && *sent >= killed_at)
            .filter_map(|(s, _)| delivered.get(s))
            .min();
        per_topic.push(first.map(|at| (*at - killed_at).as_secs_f64() * 1000.0));
    }
    let worst_ms = per_topic
        .iter()
        .try_fold(0.0f64, |worst, t| t.map(|t| worst.max(t)));
    let best_ms = per_topic.iter().flatten().copied().reduce(f64::min);
    let accepted = published.values().filter(|(_, ok)| *ok).count() as u64;
    let lost = published
        .iter()
        .filter(|(s, (_, ok))| *ok && !delivered.contains_key(s))
        .count() as u64;
    Ok(Recovery {
        worst_ms,
        best_ms,
        accepted,
        refused: published.len() as u64 - accepted,
        lost,
    })
}

/// Whether every topic delivered an event published after the kill.
fn recovered(
    killed_at: Instant,
    published: &HashMap<u64, (Instant, bool)>,
    delivered: &HashMap<u64, Instant>,
) -> bool {
    (0..TOPICS).all(|topic| {
        published.iter().any(|(s, (sent, ok))| {
            *s % TOPICS == topic && *ok && *sent >= killed_at && delivered.contains_key(s)
        })
    })
}

/// `m<seq>` from a `data:` line of the hub's JSON.
fn message_seq(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix("data: ")?;
    let at = rest.find("\"message\":\"m")? + "\"message\":\"m".len();
    let digits: String = rest[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Publishes `m<seq>` on `ha/<seq mod TOPICS>`; whether it was accepted (2xx within 2 s).
async fn post(addr: SocketAddr, seq: u64) -> bool {
    let body = format!(r#"{{"message":"m{seq}","topic":"ha/{}"}}"#, seq % TOPICS);
    let request = format!(
        "POST /api/messages HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let attempt = async {
        let mut socket = TcpStream::connect(addr).await.ok()?;
        socket.write_all(request.as_bytes()).await.ok()?;
        let mut answer = [0u8; 12];
        socket.read_exact(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1 2"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}
