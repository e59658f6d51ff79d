//! Graceful shutdown with streams open: each ends with its `close` event, and the server
//! returns within the grace period. Also for the real binary on SIGTERM.

mod common;

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
