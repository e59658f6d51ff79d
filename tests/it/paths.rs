//! `GET /stream` is served by two paths: the direct HTTP/1 path (most streams) and the axum
//! route (HTTP/2, requests the direct path hands over, embedders). Both must say the same.

use crate::common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::{message, spawn_app};
use futures_util::StreamExt;
use ssehub::sse::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

#[tokio::test]
async fn the_axum_route_streams_in_process() {
    let app = spawn_app(|c| c.interval = Duration::from_millis(10)).await;
    let router = ssehub::build(app.state.clone());
    let response = router
        .oneshot(
            Request::get("/stream?mode=live&topic=r")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let mut body = response.into_body().into_data_stream();
    let mut parser = Parser::new();
    let first = body.next().await.unwrap().unwrap();
    assert_eq!(parser.feed(&first)[0].event, "keepalive");
    app.publish("r", "via axum").await;
    let mut events = Vec::new();
    while events.is_empty() {
        events = parser.feed(&body.next().await.unwrap().unwrap());
    }
    assert_eq!(message(&events[0]), "via axum");
}

/// Reads from a raw socket until `done` says the bytes so far are enough.
async fn read_until(stream: &mut tokio::net::TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(common::PATIENCE, async {
        while !done(&String::from_utf8_lossy(&seen)) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("timed out");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_stream_after_a_publish_on_one_keep_alive_connection() {
    let app = spawn_app(|c| c.interval = Duration::from_millis(10)).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"message": "first"}"#;
    socket
        .write_all(
            format!(
                "POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    read_until(&mut socket, |s| s.contains("\"accepted\"")).await;
    socket
        .write_all(b"GET /stream?mode=live&topic=k HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut socket, |s| s.contains("keepalive")).await;
    app.publish("k", "on the same connection").await;
    read_until(&mut socket, |s| s.contains("on the same connection")).await;
}

#[tokio::test]
async fn http_1_0_clients_get_a_plain_body_that_ends_with_the_connection() {
    let app = spawn_app(|c| c.interval = Duration::from_millis(10)).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /stream HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut socket, |s| s.contains("keepalive")).await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(!head.contains("chunked"));
    app.publish("default", "old client").await;
    let mut rest = Vec::new();
    tokio::time::timeout(common::PATIENCE, socket.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let events = Parser::new().feed(&rest);
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["message", "message", "message", "close"]);
}

#[tokio::test]
async fn chunked_stream_responses_end_with_the_terminating_chunk() {
    let app = spawn_app(|c| c.interval = Duration::from_millis(10)).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut socket, |s| s.contains("keepalive")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    app.publish("default", "x").await;
    let mut rest = Vec::new();
    tokio::time::timeout(common::PATIENCE, socket.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

#[tokio::test]
async fn stream_errors_have_the_same_json_on_the_direct_path() {
    let app = spawn_app(|c| c.max_streams = Some(1)).await;
    let _holder = app.stream("/stream?mode=live").await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = read_until(&mut socket, |s| s.contains("}")).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.to_ascii_lowercase().contains("retry-after: 1"));
    assert!(response.contains(r#"{"error":"too many open streams, retry later"}"#));
}

#[tokio::test]
async fn streams_and_publishes_work_over_http2() {
    let app = spawn_app(|_| {}).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut stream =
        common::SseStream::open(&client, &app.url("/stream?mode=live&topic=h2"), &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next().await.unwrap().event, "keepalive");
    let response = client
        .post(app.url("/api/messages"))
        .json(&serde_json::json!({"message": "over h2", "topic": "h2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 201);
    assert_eq!(message(&stream.next_event().await.unwrap()), "over h2");
}

/// The lower-cased header lines of a raw response head.
fn header_lines(head: &str) -> Vec<String> {
    let head = head.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).map(str::to_ascii_lowercase).collect()
}

#[tokio::test]
async fn mercure_subscriptions_say_the_same_on_both_paths() {
    let app = spawn_app(|_| {}).await;
    let id = common::mercure::publish(
        &app,
        &[("topic", "https://example.com/a"), ("data", "before")],
    )
    .await;
    let query = format!(
        "topic=https%3A%2F%2Fexample.com%2F%7Bx%7D&lastEventID={}",
        urlencode(&id)
    );
    // The direct path (a plain HTTP/1.1 GET).
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(
            format!("GET /.well-known/mercure?{query} HTTP/1.1\r\nHost: hub.test\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let head = read_until(&mut socket, |s| s.contains("\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let direct = header_lines(&head);
    // Served by the direct path, not handed to hyper (which keeps connections alive).
    assert!(
        direct.contains(&"connection: close".to_owned()),
        "{direct:?}"
    );
    // The axum route (in process).
    let response = ssehub::build(app.state.clone())
        .oneshot(
            Request::get(format!("/.well-known/mercure?{query}"))
                .header("host", "hub.test")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for name in [
        "content-type",
        "cache-control",
        "link",
        "mercure-last-event-id",
        "last-event-id",
    ] {
        let value = response.headers()[name]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        let line = format!("{name}: {value}");
        assert!(
            direct.contains(&line),
            "direct path lacks {line:?}: {direct:?}"
        );
    }
    assert_eq!(
        response.headers()["link"],
        "<http://hub.test/.well-known/mercure>; rel=\"mercure\""
    );
    assert_eq!(response.headers()["mercure-last-event-id"], id.as_str());
    // And the stream carries on past the cursor.
    common::mercure::publish(
        &app,
        &[("topic", "https://example.com/b"), ("data", "after")],
    )
    .await;
    read_until(&mut socket, |s| s.contains("data: after")).await;
}

#[tokio::test]
async fn a_cursor_cannot_add_header_lines_on_the_direct_path() {
    let app = spawn_app(|_| {}).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(
            b"GET /.well-known/mercure?topic=a&lastEventID=x%0D%0AX-Evil:%201 HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_until(&mut socket, |s| s.contains("\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("x-evil"), "{head}");
}

#[tokio::test]
async fn mercure_errors_have_the_same_json_on_the_direct_path() {
    let app = spawn_app(|_| {}).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /.well-known/mercure?match_regex=a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = read_until(&mut socket, |s| s.contains("}")).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains(r#"unsupported matcher parameter \"match_regex\""#),
        "{response}"
    );
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
