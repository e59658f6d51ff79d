//! A client that stops reading must not grow the server's memory or delay anyone else: its
//! connection is dropped once the socket stays full past the write timeout.

use crate::common;

use std::time::{Duration, Instant};

use common::{message, spawn_app, PATIENCE};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_are_dropped_and_do_not_slow_others() {
    let app = spawn_app(|c| {
        c.queue = 256;
        c.write_timeout = Duration::from_millis(300);
    })
    .await;
    // Twenty clients that send a request and never read a byte.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /stream?mode=live&topic=big HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    let mut healthy = app.stream("/stream?mode=live&topic=big").await;
    let deadline = Instant::now() + PATIENCE;
    while app.state.open_streams() < 21 {
        assert!(
            Instant::now() < deadline,
            "stalled clients never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = rss_bytes();

    const COUNT: usize = 1000;
    let reader = tokio::spawn(async move {
        let mut received = Vec::with_capacity(COUNT);
        while received.len() < COUNT {
            let event = healthy.next_event().await.expect("healthy stream ended");
            received.push((message(&event), Instant::now()));
        }
        received
    });
    let payload = "x".repeat(8 * 1024);
    let mut published = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        app.publish("big", &format!("{i:04}{payload}")).await;
        published.push(Instant::now());
    }
    let received = tokio::time::timeout(PATIENCE, reader)
        .await
        .unwrap()
        .unwrap();
    // Every event, in order, each soon after it was published (20 stalled peers hold ~160 MB
    // of undelivered events between them, none of which may be buffered or waited for).
    let mut worst = Duration::ZERO;
    for (i, ((text, at), sent)) in received.iter().zip(&published).enumerate() {
        assert!(
            text.starts_with(&format!("{i:04}")),
            "event {i} out of order"
        );
        worst = worst.max(at.saturating_duration_since(*sent));
    }
    assert!(
        worst < Duration::from_secs(2),
        "a healthy subscriber waited {worst:?}"
    );

    // The stalled connections are dropped by the write timeout.
    let deadline = Instant::now() + PATIENCE;
    while app.state.open_streams() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} streams still open",
            app.state.open_streams()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "server grew by {} MiB", grown >> 20);
    drop(stalled);
}
