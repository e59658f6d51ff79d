//! Graceful shutdown with streams open: each ends with its `close` event, and the server
//! returns within the grace period. Also for the real binary on SIGTERM.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{data, spawn_app, SseStream, PATIENCE};
use futures_util::future::join_all;
use tokio::io::{AsyncBufReadExt, BufReader};

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
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ssehub"))
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("addr=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("server exited before listening");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = reqwest::Client::new();
    let mut stream =
        SseStream::open(&client, &format!("http://{addr}/stream?mode=live"), &[]).await;
    assert_eq!(stream.next().await.unwrap().event, "keepalive");

    let pid = child.id().unwrap() as i32;
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let close = stream.next().await.unwrap();
    assert_eq!(close.event, "close");
    assert!(stream.next().await.is_none());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("binary did not exit")
        .unwrap();
    assert!(status.success(), "{status}");
}
