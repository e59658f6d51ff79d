//! Test harness: the real server on 127.0.0.1:0, an HTTP client, and an SSE client that parses
//! with the WHATWG rules (the library's own parser, itself tested against the spec's examples).

#![allow(dead_code)]

pub mod cli;
pub mod cluster;
pub mod logs;
pub mod mercure;
pub mod metrics;
pub mod raw;
pub mod redis;
pub mod sentinel;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use ssehub::sse::{EventId, Parser, SseEvent};
use ssehub::{AppState, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest any single wait in a test may take before the test fails (never hangs).
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts the server with the defaults, adjusted by `adjust`.
pub async fn spawn_app(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::with_bind(addr);
    adjust(&mut config);
    config.validate().unwrap();
    let state = ssehub::app::connect(config).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(ssehub::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(8)
            .build()
            .unwrap(),
        state,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// Waits until the node is ready (`/api/ready` answers 200: its broker is connected and
    /// subscribed), failing after [`PATIENCE`].
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self
            .client
            .get(self.url("/api/ready"))
            .send()
            .await
            .unwrap()
            .status()
            != 200
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "node never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `POST /api/messages` with JSON; returns status and body.
    pub async fn post_json(&self, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/api/messages"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes and asserts it was accepted; returns the event id.
    pub async fn publish(&self, topic: &str, message: &str) -> EventId {
        let (status, body) = self
            .post_json(serde_json::json!({"message": message, "topic": topic}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["id"].as_str().unwrap().parse().unwrap()
    }

    /// Opens `GET path` as an SSE stream and waits for its handshake.
    pub async fn stream(&self, path: &str) -> SseStream {
        self.stream_with(path, &[]).await
    }

    pub async fn stream_with(&self, path: &str, headers: &[(&str, &str)]) -> SseStream {
        let mut stream = SseStream::open(&self.client, &self.url(path), headers).await;
        assert_eq!(stream.status, 200);
        let hello = stream.next().await.expect("handshake");
        assert_eq!(hello.event, "keepalive", "{hello:?}");
        stream
    }

    /// Fires the shutdown signal and waits for `serve` to return.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take().expect("shut down twice");
        tokio::time::timeout(PATIENCE, server)
            .await
            .expect("shutdown hung")
            .expect("server panicked")
    }
}

/// An SSE response read with the WHATWG parser.
pub struct SseStream {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub parser: Parser,
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pending: VecDeque<SseEvent>,
    ended: bool,
    /// Raw bytes seen (for byte-level assertions).
    pub raw: Vec<u8>,
}

impl SseStream {
    pub async fn open(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = client.get(url).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .expect("stream open timed out")
            .unwrap();
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            parser: Parser::new(),
            body: Box::pin(response.bytes_stream()),
            pending: VecDeque::new(),
            ended: false,
            raw: Vec::new(),
        }
    }

    /// The next event, or `None` when the response ended. Fails the test after [`PATIENCE`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(PATIENCE).await.expect("no event in time")
    }

    /// The next event within `wait`: `Err` on timeout, `Ok(None)` at the end of the response.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<SseEvent>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err(()),
                Ok(Some(Ok(chunk))) => {
                    self.raw.extend_from_slice(&chunk);
                    let events = self.parser.feed(&chunk);
                    self.pending.extend(events);
                }
                Ok(Some(Err(_)) | None) => self.ended = true,
            }
        }
    }

    /// The next event that is not a `keepalive`.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let event = self.next().await?;
            if event.event != "keepalive" {
                return Some(event);
            }
        }
    }

    /// Reads to the end of the response, returning every event.
    pub async fn rest(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// The JSON in an event's data.
pub fn data(event: &SseEvent) -> Value {
    serde_json::from_str(&event.data).unwrap_or_else(|e| panic!("bad JSON {e}: {:?}", event.data))
}

/// The message text of an event.
pub fn message(event: &SseEvent) -> String {
    data(event)["data"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

impl TestApp {
    /// `GET path`, parsed as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Reads `n` events that are not keepalives.
pub async fn take(stream: &mut SseStream, n: usize) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        events.push(stream.next_event().await.expect("stream ended early"));
    }
    events
}

/// The ids of events, parsed.
pub fn ids(events: &[SseEvent]) -> Vec<EventId> {
    events
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect()
}

/// The real `ssehub` binary as a child process on 127.0.0.1:0, with `args` added; returns it
/// and its address (read from its `listening` log line).
pub async fn spawn_binary(args: &[&str]) -> (tokio::process::Child, String) {
    spawn_binary_env(args, &[]).await
}

/// "Nothing else arrives", checked by a signal rather than a wait: publishes a sentinel on
/// `topic` (which the stream receives) and asserts it is the very next event, so any late
/// duplicate or stray event, which would be ordered before it, fails the test.
pub async fn assert_nothing_before_sentinel(app: &TestApp, stream: &mut SseStream, topic: &str) {
    let id = app.publish(topic, "sentinel").await;
    let next = stream.next_event().await.expect("stream ended");
    assert_eq!(message(&next), "sentinel", "unexpected event {next:?}");
    assert_eq!(next.id, Some(id.to_string()));
}

/// Reads a raw socket until the server closes it (end of file, or a reset: a server that closes
/// with unread input resets); returns the bytes it sent and when it closed. Fails after
/// [`PATIENCE`].
pub async fn read_until_closed(
    socket: &mut tokio::net::TcpStream,
) -> (Vec<u8>, std::time::Instant) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while let Ok(n @ 1..) = socket.read(&mut buf).await {
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the server never closed the connection");
    (seen, std::time::Instant::now())
}

/// Reads a raw socket until the bytes so far contain `needle`; fails after [`PATIENCE`] or if
/// the server closes first.
pub async fn read_until_contains(socket: &mut tokio::net::TcpStream, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in time"));
    String::from_utf8_lossy(&seen).into_owned()
}

/// Helpers of the authorization tests (`tests/auth*.rs`).
pub mod auth;

/// [`spawn_binary`] with these environment variables set on the child.
pub async fn spawn_binary_env(
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let (child, mut lines) = logs::run(args, env).await;
    let seen = logs::line_with(&mut lines, "addr=").await;
    // The rest of its output is still read (and dropped), so it never blocks on a full pipe.
    (
        child,
        logs::addr_of(seen.last().expect("the listening line")),
    )
}

impl SseStream {
    /// Reads until the raw bytes received hold `needle` (events parsed on the way stay queued
    /// for [`SseStream::next`]); fails after [`PATIENCE`] or if the response ends first.
    pub async fn read_raw_until(&mut self, needle: &[u8]) {
        let found = |raw: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        tokio::time::timeout(PATIENCE, async {
            while !found(&self.raw) {
                let Some(Ok(chunk)) = self.body.next().await else {
                    panic!(
                        "the response ended: {:?}",
                        String::from_utf8_lossy(&self.raw)
                    );
                };
                self.raw.extend_from_slice(&chunk);
                let events = self.parser.feed(&chunk);
                self.pending.extend(events);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {:?} in time", String::from_utf8_lossy(needle)));
    }
}
