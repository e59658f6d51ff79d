//! Hostile HTTP/2 clients over real sockets: a stalled preface, an idle connection, a stream
//! whose client never reads. Each must give its slot back within the deadline meant for it.

use crate::common;

use std::time::{Duration, Instant};

use axum::http::Request;
use bytes::Bytes;
use common::{read_until_closed, spawn_app, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How late past its deadline a close may come on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_secs(1);

/// An h2c (prior knowledge) client whose first ping has been answered: the server has the
/// preface and its connection is up. Returns the request handle and the connection's task.
async fn h2_client(
    app: &common::TestApp,
    window: u32,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (client, mut connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let mut pings = connection.ping_pong().unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    tokio::time::timeout(PATIENCE, pings.ping(h2::Ping::opaque()))
        .await
        .expect("no pong")
        .unwrap();
    (client, driver)
}

async fn get(
    client: h2::client::SendRequest<Bytes>,
    app: &common::TestApp,
    path: &str,
) -> (
    h2::client::SendRequest<Bytes>,
    axum::http::Response<h2::RecvStream>,
) {
    let mut client = client.ready().await.unwrap();
    let request = Request::get(app.url(path)).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(PATIENCE, response)
        .await
        .expect("no response")
        .unwrap();
    (client, response)
}

#[tokio::test]
async fn a_partial_preface_is_closed_at_the_header_deadline() {
    let header = Duration::from_millis(600);
    let app = spawn_app(|c| c.header_timeout = header).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let connected = Instant::now();
    socket.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let (bytes, closed_at) = read_until_closed(&mut socket).await;
    assert!(bytes.is_empty(), "{}", String::from_utf8_lossy(&bytes));
    let took = closed_at - connected;
    assert!(
        took >= header.mul_f32(0.9) && took <= header + SLACK,
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_at_the_idle_deadline() {
    let idle = Duration::from_secs(1);
    let app = spawn_app(|c| c.idle_timeout = idle).await;
    let started = Instant::now();
    let (_client, driver) = h2_client(&app, 65_535).await;
    tokio::time::timeout(PATIENCE, driver)
        .await
        .expect("the idle connection was never closed")
        .unwrap();
    // The watchdog looks every max(min(idle, write) / 4, 250 ms).
    let took = started.elapsed();
    let period = (idle / 4).max(Duration::from_millis(250));
    assert!(
        took >= idle.mul_f32(0.9) && took <= idle + period + SLACK,
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn a_silent_h2_connection_is_closed_at_the_idle_deadline() {
    // The handshake by hand (preface, empty SETTINGS, then the ACK of the server's SETTINGS),
    // then nothing at all: not even the answers to the server's pings.
    let idle = Duration::from_secs(1);
    let app = spawn_app(|c| c.idle_timeout = idle).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    socket
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    // The server's first frame is its SETTINGS: a 9-byte header, then the payload.
    let mut header = [0u8; 9];
    socket.read_exact(&mut header).await.unwrap();
    assert_eq!(header[3], 4, "not SETTINGS: {header:?}");
    let len = usize::from(header[1]) * 256 + usize::from(header[2]);
    socket.read_exact(&mut vec![0; len]).await.unwrap();
    socket.write_all(b"\0\0\0\x04\x01\0\0\0\0").await.unwrap();
    let (_, closed_at) = read_until_closed(&mut socket).await;
    let took = closed_at - started;
    let period = (idle / 4).max(Duration::from_millis(250));
    assert!(
        took >= idle.mul_f32(0.9) && took <= idle + period + SLACK,
        "closed after {took:?} (idle timeout {idle:?}, watchdog period {period:?})"
    );
}

/// A live stream whose client never reads: the server has frames to send it but no flow-control
/// window. Its stream slot must come back by the write deadline, while the connection (whose
/// socket is fine) stays up and serves.
async fn an_unread_h2_stream_gives_its_slot_back(window: u32) {
    let write = Duration::from_secs(1);
    let app = spawn_app(|c| {
        c.write_timeout = write;
        c.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let (client, driver) = h2_client(&app, window).await;
    let (client, unread) = get(client, &app, "/stream?mode=live&topic=stall").await;
    let opened = Instant::now();
    assert_eq!(unread.status(), 200);
    assert_eq!(app.state.open_streams(), 1);
    for n in 0..5 {
        app.publish("stall", &format!("event {n} {}", "x".repeat(1000)))
            .await;
    }
    let period = (write / 4).max(Duration::from_millis(250));
    let limit = write + period + SLACK;
    while app.state.open_streams() > 0 {
        assert!(
            opened.elapsed() < limit,
            "the unread stream still holds its slot after {:?}",
            opened.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!driver.is_finished(), "the connection was closed");
    let (_client, ping) = get(client, &app, "/api/ping").await;
    assert_eq!(ping.status(), 200);
    drop(unread);
}

#[tokio::test]
async fn an_h2_stream_with_a_one_byte_window_gives_its_slot_back() {
    an_unread_h2_stream_gives_its_slot_back(1).await;
}

#[tokio::test]
async fn an_h2_stream_with_a_zero_window_gives_its_slot_back() {
    an_unread_h2_stream_gives_its_slot_back(0).await;
}
