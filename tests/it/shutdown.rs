//! Graceful shutdown with streams open: each ends with its `close` event, and the server
//! returns within the grace period. Also for the real binary on SIGTERM.

use crate::common;

use std::time::{Duration, Instant};

use common::{data, spawn_app, SseStream};
use futures_util::future::join_all;

#[tokio::test]
async fn shutdown_closes_every_open_stream_with_close() {
    let mut app = spawn_app(|c| c.interval = Duration::from_secs(5)).await;
    let mut streams = Vec::new();
    for i in 0..50 {
        let path = if i % 2 == 0 {
            "/stream?mode=live"
        } else {
            "/stream"
        };
        streams.push(app.stream(path).await);
    }
    // Half of the burst streams are mid-burst when the signal comes.
    app.publish("default", "in flight").await;
    let started = Instant::now();
    let (result, endings) = tokio::join!(
        app.shutdown(),
        join_all(streams.iter_mut().map(|s| async move { s.rest().await }))
    );
    result.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    for events in endings {
        let close = events.last().expect("no close event");
        assert_eq!(close.event, "close", "{events:?}");
        assert_eq!(data(close)["data"]["status"], "shutdown");
    }
}

#[tokio::test]
async fn no_new_connections_after_shutdown() {
    let mut app = spawn_app(|_| {}).await;
    let addr = app.addr;
    app.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn the_binary_exits_zero_on_sigterm_after_closing_streams() {
    let (mut child, addr) = common::spawn_binary(&[]).await;
    let client = reqwest::Client::new();
    let mut stream =
        SseStream::open(&client, &format!("http://{addr}/stream?mode=live"), &[]).await;
    assert_eq!(stream.next().await.unwrap().event, "keepalive");

    let pid = child.id().unwrap() as i32;
    // SAFETY: sending a signal to our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM)
    };
    let close = stream.next().await.unwrap();
    assert_eq!(close.event, "close");
    assert!(stream.next().await.is_none());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("binary did not exit")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn idle_connections_do_not_hold_up_shutdown() {
    let mut app = spawn_app(|c| c.shutdown_grace = Duration::from_secs(10)).await;
    // Connected, but no request sent yet.
    let _idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Connections are accepted in order: once this answers, the idle one has been taken.
    let ping = app.client.get(app.url("/api/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    let started = Instant::now();
    app.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

/// A publisher's kept-alive connection, waiting between requests after several publishes (the
/// direct path's wait for shutdown is made once per connection and polled again each time).
#[tokio::test]
async fn a_kept_alive_publisher_between_requests_is_closed_on_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut app = spawn_app(|c| c.shutdown_grace = Duration::from_secs(10)).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"message":"hi"}"#;
    let request = format!(
        "POST /api/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut answers = String::new();
    for _ in 0..3 {
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = socket.read(&mut buf).await.unwrap();
        answers.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(answers.matches("HTTP/1.1 201").count(), 3, "{answers}");
    let started = Instant::now();
    app.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?} {rest:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_drain_spread_out_and_bursts_finish() {
    let mut app = spawn_app(|c| {
        c.interval = Duration::from_millis(300);
        c.drain_spread = Duration::from_secs(1);
        c.shutdown_grace = Duration::from_secs(3);
    })
    .await;
    let mut live = Vec::new();
    for _ in 0..60 {
        live.push(app.stream("/stream?mode=live").await);
    }
    let mut bursts = Vec::new();
    for _ in 0..20 {
        bursts.push(app.stream("/stream").await);
    }
    app.publish("default", "in flight").await;
    // Every burst has its first copy: they are mid-burst when the signal comes.
    for burst in &mut bursts {
        assert_eq!(burst.next_event().await.unwrap().event, "message");
    }
    let started = Instant::now();
    let (result, live_ends, burst_ends) = tokio::join!(
        app.shutdown(),
        join_all(live.iter_mut().map(|s| read_all(s, started))),
        join_all(bursts.iter_mut().map(|s| read_all(s, started))),
    );
    result.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let mut times = Vec::new();
    for (at, events) in live_ends {
        let close = events.last().expect("no close event");
        assert_eq!(
            (close.event.as_str(), &data(close)["data"]["status"]),
            ("close", &serde_json::json!("shutdown"))
        );
        // The retry hint came before the close, spread beyond the configured 2 s.
        let retry = close.retry.expect("no retry hint");
        assert!((2000..3000).contains(&retry), "{retry}");
        times.push(at);
    }
    times.sort();
    let spread = times[times.len() - 1] - times[0];
    assert!(
        spread > Duration::from_millis(300),
        "closes not spread: {times:?}"
    );
    assert!(
        times[times.len() - 1] < Duration::from_millis(1500),
        "{times:?}"
    );
    for (_, events) in burst_ends {
        let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["message", "message", "close"], "{events:?}");
        assert_eq!(data(events.last().unwrap())["data"]["status"], "complete");
    }
}

/// Every event to the end of the response, and when the response ended.
async fn read_all(
    stream: &mut SseStream,
    started: Instant,
) -> (Duration, Vec<ssehub::sse::SseEvent>) {
    let events = stream.rest().await;
    (started.elapsed(), events)
}
