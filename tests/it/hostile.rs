//! Hostile HTTP/1 clients over real sockets: each holds a connection slot in some way, and each
//! must get its slot taken back within the deadline meant for it, without locking anyone else
//! out. (HTTP/2 clients: `hostile_h2.rs`.)

use crate::common;
#[path = "hostile/headers.rs"]
mod headers;
#[path = "hostile/ids.rs"]
mod ids;
#[path = "hostile/logs.rs"]
mod logs;
#[path = "hostile/patterns.rs"]
mod patterns;

use std::time::{Duration, Instant};

use common::{read_until_closed, read_until_contains, spawn_app, PATIENCE};
use futures_util::future::join_all;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The header deadline of these tests.
const HEADER: Duration = Duration::from_millis(600);
/// How late past its deadline a close may come on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_secs(1);

async fn connect(app: &common::TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.unwrap()
}

/// Asserts `took` is `deadline` give or take scheduling: not early, and at most [`SLACK`] late.
fn assert_at_deadline(took: Duration, deadline: Duration, what: &str) {
    assert!(
        took >= deadline.mul_f32(0.9) && took <= deadline + SLACK,
        "{what} after {took:?}, deadline {deadline:?}"
    );
}

/// The status line and JSON body of a raw response.
fn parse_response(bytes: &[u8]) -> (String, String, Value) {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {text:?}"));
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: body {body:?}"));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, head.to_ascii_lowercase(), json)
}

#[tokio::test]
async fn one_byte_clients_are_closed_at_the_header_deadline_and_free_the_connection_cap() {
    let app = spawn_app(|c| {
        c.max_connections = Some(4);
        c.header_timeout = HEADER;
    })
    .await;
    let started = Instant::now();
    let mut hostile = Vec::new();
    for _ in 0..4 {
        let mut socket = connect(&app).await;
        socket.write_all(b"P").await.unwrap();
        hostile.push(socket);
    }
    // The 5th waits in the listen backlog until a slot comes back. No wait is needed for the
    // four to be taken first: their handshakes completed before it connects, and the kernel
    // hands connections to `accept` in the order they completed.
    let mut fifth = connect(&app).await;
    fifth
        .write_all(b"GET /api/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (closes, (response, served_at)) = tokio::join!(
        join_all(hostile.iter_mut().map(read_until_closed)),
        read_until_closed(&mut fifth)
    );
    for (bytes, closed_at) in closes {
        assert!(bytes.is_empty(), "{}", String::from_utf8_lossy(&bytes));
        assert_at_deadline(closed_at - started, HEADER, "a one-byte client closed");
    }
    let (status, _, body) = parse_response(&response);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body["message"], "pong");
    assert_at_deadline(served_at - started, HEADER, "the 5th client served");
}

#[tokio::test]
async fn a_post_without_its_body_gets_408_and_a_close() {
    let body_timeout = Duration::from_millis(600);
    let app = spawn_app(|c| c.body_timeout = body_timeout).await;
    let mut socket = connect(&app).await;
    socket
        .write_all(
            b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    let sent = Instant::now();
    let (response, closed_at) = read_until_closed(&mut socket).await;
    let (status, _, body) = parse_response(&response);
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(body["error"].is_string(), "{body}");
    assert_at_deadline(closed_at - sent, body_timeout, "the bodiless POST closed");
}

#[tokio::test]
async fn a_head_without_its_blank_line_is_closed_at_the_header_deadline() {
    let app = spawn_app(|c| c.header_timeout = HEADER).await;
    let mut socket = connect(&app).await;
    let connected = Instant::now();
    socket
        .write_all(b"GET /api/ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (bytes, closed_at) = read_until_closed(&mut socket).await;
    assert!(bytes.is_empty(), "{}", String::from_utf8_lossy(&bytes));
    assert_at_deadline(closed_at - connected, HEADER, "the half head closed");
}

#[tokio::test]
async fn a_head_over_16_kib_gets_431_and_a_close() {
    let app = spawn_app(|_| {}).await;
    let mut socket = connect(&app).await;
    let head = format!(
        "GET /api/ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    // The server may close before it has read it all: a failed write is expected.
    let _ = socket.write_all(head.as_bytes()).await;
    let sent = Instant::now();
    let (response, closed_at) = read_until_closed(&mut socket).await;
    let (status, head, body) = parse_response(&response);
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(body["error"].is_string(), "{body}");
    let took = closed_at - sent;
    assert!(took < SLACK, "closed after {took:?}");
}

#[tokio::test]
async fn a_client_over_its_connection_cap_gets_429_until_one_closes() {
    let app = spawn_app(|c| c.max_connections_per_client = Some(3)).await;
    let mut holders = Vec::new();
    for _ in 0..3 {
        let mut socket = connect(&app).await;
        socket
            .write_all(b"GET /stream?mode=live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_until_contains(&mut socket, "keepalive").await;
        holders.push(socket);
    }
    let ping = b"GET /api/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut fourth = connect(&app).await;
    fourth.write_all(ping).await.unwrap();
    let (response, _) = read_until_closed(&mut fourth).await;
    let (status, head, body) = parse_response(&response);
    assert!(status.starts_with("HTTP/1.1 429"), "{status}");
    assert!(head.contains("retry-after: "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(body["error"].is_string(), "{body}");

    drop(holders.pop());
    // The server sees the close on its next read: allow it a moment, never a refusal after.
    let closed = Instant::now();
    loop {
        let mut socket = connect(&app).await;
        socket.write_all(ping).await.unwrap();
        let (response, _) = read_until_closed(&mut socket).await;
        let (status, _, _) = parse_response(&response);
        if status.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(status.starts_with("HTTP/1.1 429"), "{status}");
        assert!(
            closed.elapsed() < SLACK,
            "still refused {:?} after a close",
            closed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_slow_then_big_head_is_closed_at_the_first_deadline() {
    let header = Duration::from_secs(1);
    let app = spawn_app(|c| c.header_timeout = header).await;
    let socket = connect(&app).await;
    let connected = Instant::now();
    let (mut reader, mut writer) = socket.into_split();
    // One byte every 200 ms, then a big (not oversized) piece just before the deadline, then
    // a byte every 200 ms again, well past the deadline.
    let dripper = tokio::spawn(async move {
        let start = b"GET /stream?mode=live HTTP/1.1\r\nHost: x\r\nX-Pad: ";
        for tick in 0..20 {
            let piece = match tick {
                0..4 => start[tick..=tick].to_vec(),
                4 => [&start[4..], "a".repeat(8 * 1024).as_bytes()].concat(),
                _ => b"a".to_vec(),
            };
            if writer.write_all(&piece).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let closed_at = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 1024];
        while let Ok(1..) = tokio::io::AsyncReadExt::read(&mut reader, &mut buf).await {}
        Instant::now()
    })
    .await
    .expect("the slow head was never closed");
    assert_at_deadline(closed_at - connected, header, "the slow head closed");
    dripper.abort();
}

#[tokio::test]
async fn bytes_after_a_direct_stream_request_end_the_stream() {
    let app = spawn_app(|_| {}).await;
    let mut socket = connect(&app).await;
    socket
        .write_all(b"GET /stream?mode=live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until_contains(&mut socket, "keepalive").await;
    assert_eq!(app.state.open_streams(), 1);
    socket
        .write_all(b"GET /api/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let sent = Instant::now();
    // The server ends the response (the last chunk) at once, then waits for the client to
    // close first, so the close is clean rather than a reset.
    let rest = read_until_contains(&mut socket, "0\r\n\r\n").await;
    let took = sent.elapsed();
    assert!(took < SLACK, "ended after {took:?}");
    assert!(
        !rest.contains("pong"),
        "the pipelined request was served: {rest}"
    );
    let (more, _) = read_until_closed(&mut socket).await;
    assert!(more.is_empty(), "bytes after the end: {more:?}");
    let deadline = Instant::now() + SLACK;
    while app.state.open_streams() > 0 {
        assert!(Instant::now() < deadline, "the stream slot never came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
