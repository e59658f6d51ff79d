//! Memory a client controls, measured on the real binary: streams that each name 16 topics
//! nobody publishes to, and resumes of a large history. The README's limits section gives the
//! formula these bounds come from.

use crate::common;

use std::time::Duration;

use common::{spawn_binary, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Opens a raw live stream and waits for its handshake (the signal that it is subscribed).
async fn open(addr: &str, path: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(PATIENCE, async {
        while !seen.windows(9).any(|w| w == b"keepalive") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no handshake");
    assert!(seen.starts_with(b"HTTP/1.1 200"));
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_naming_fresh_topics_stay_within_the_budget() {
    const STREAMS: usize = 1000;
    const TOPICS: usize = 16;
    let (child, addr) = spawn_binary(&["--max-topics", "100000"]).await;
    let pid = child.id().unwrap();
    // Warm up allocator arenas and the runtime with a few streams first.
    let warm: Vec<TcpStream> = futures_util::future::join_all((0..20).map(|i| {
        let (addr, path) = (addr.clone(), format!("/stream?mode=live&topic=warm{i}"));
        async move { open(&addr, &path).await }
    }))
    .await;
    let before = rss(pid);
    let mut sockets = Vec::with_capacity(STREAMS);
    for chunk in (0..STREAMS).collect::<Vec<_>>().chunks(100) {
        let opened = futures_util::future::join_all(chunk.iter().map(|i| {
            let topics: String = (0..TOPICS)
                .map(|k| format!("&topic=fresh-{i}-{k}"))
                .collect();
            let addr = addr.clone();
            async move { open(&addr, &format!("/stream?mode=live{topics}")).await }
        }))
        .await;
        sockets.extend(opened);
    }
    let after = rss(pid);
    let per_stream = after.saturating_sub(before) / STREAMS;
    eprintln!(
        "{STREAMS} streams x {TOPICS} fresh topics: RSS {} -> {} KiB, {per_stream} B per stream",
        before / 1024,
        after / 1024
    );
    // The README's bound: about 3 KiB per direct-path stream plus 200 B per subscribed topic.
    assert!(
        per_stream < 3 * 1024 + TOPICS * 200 + 2048,
        "{per_stream} B per stream"
    );
    // Gone with their streams: the topics no longer count against the cap.
    drop(sockets);
    drop(warm);
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let topics: serde_json::Value = client
            .get(format!("http://{addr}/api/topics"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if topics["topics"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "topics remained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_bounded_in_bytes_and_resumes_do_not_keep_frames() {
    // Messages of control characters: each escapes to 6 bytes, the worst case per byte.
    let (child, addr) = spawn_binary(&["--history-bytes", "8MiB", "--max-topics", "100000"]).await;
    let pid = child.id().unwrap();
    let client = reqwest::Client::new();
    let message: String = std::iter::repeat_n('\u{1}', 10 * 1024).collect();
    let base = rss(pid);
    for round in 0..4 {
        let publishes = (0..200).map(|i| {
            let client = client.clone();
            let url = format!("http://{addr}/api/messages");
            let body = serde_json::json!({"message": message, "topic": format!("t{round}-{i}")});
            async move {
                let response = client.post(url).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 201);
            }
        });
        futures_util::future::join_all(publishes).await;
    }
    let ready: serde_json::Value = client
        .get(format!("http://{addr}/api/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held = ready["history_bytes"].as_u64().unwrap();
    assert!(held <= 8 << 20, "{ready}");
    // A resume of everything from the start, read whole, then closed.
    let mut resume = open(&addr, "/stream?mode=live&topic=*&lastEventId=0-0").await;
    let mut total = 0usize;
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(500), resume.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        total += n;
    }
    drop(resume);
    let grown = rss(pid).saturating_sub(base);
    eprintln!(
        "history held {held} B; resume sent {total} B; RSS grew {} KiB",
        grown / 1024
    );
    assert!(total > 1 << 20, "the resume replayed history ({total} B)");
    // History (8 MiB of weight, burst frames never built here) plus allocator slack: far from
    // the 600 MiB the same load took when history and replay frames were unbounded.
    assert!(grown < 64 << 20, "RSS grew {grown} B");
}
