//! The reference server: the smallest program that does ssehub's two jobs, with none of its
//! machinery, so a benchmark can tell the server's share of a figure from the machine's.
//!
//! - **Burst** (what `GET /stream` does): `POST /api/messages` broadcasts its body; each
//!   `GET /stream` waits for one message, writes it three times one second apart, then `close`.
//!   `bench/burst-check` runs `burst_probe` against it beside ssehub.
//! - **Live** (what a fan-out measures): `POST /pub?id=...` broadcasts its body, framed once as
//!   `data: ...` and shared by every subscriber; each `GET /sub/...` writes every message as it
//!   comes, the ones that arrived while it was writing in one write. One topic, whatever the
//!   path names. `bench/run` runs the fan-outs on it as the `minimal` server.
//!
//! One task per connection on a single-threaded tokio runtime, keep-alive publishes.
//!   taskset -c 0 target/release/min-broadcaster 127.0.0.1:8001

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Messages a live subscriber may fall behind by before it is cut off (a lost delivery the
/// benchmark then reports).
const LIVE_BACKLOG: usize = 4096;

#[derive(Clone)]
struct Channels {
    burst: broadcast::Sender<String>,
    live: broadcast::Sender<Arc<[u8]>>,
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8001".into());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    let channels = Channels {
        burst: broadcast::channel(16).0,
        live: broadcast::channel(LIVE_BACKLOG).0,
    };
    loop {
        let (socket, _) = listener.accept().await?;
        tokio::spawn(handle(socket, channels.clone()));
    }
}

/// One request's head and body.
struct Request {
    post: bool,
    path: String,
    close: bool,
    body: Vec<u8>,
}

/// Reads the next request, keeping what follows it in `buf[..*len]`; `None` at the end.
async fn next_request(socket: &mut TcpStream, buf: &mut [u8], len: &mut usize) -> Option<Request> {
    let head_end = loop {
        if let Some(at) = buf[..*len].windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if *len == buf.len() {
            return None;
        }
        match socket.read(&mut buf[*len..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => *len += n,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let mut words = head.split_whitespace();
    let post = words.next() == Some("post");
    let path = words.next().unwrap_or("/").to_owned();
    let header = |name: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let length: usize = header("content-length:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let close = header("connection:").is_some_and(|v| v == "close");
    let mut body = buf[head_end..(*len).min(head_end + length)].to_vec();
    while body.len() < length {
        let mut more = vec![0u8; length - body.len()];
        match socket.read(&mut more).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&more[..n]),
        }
    }
    let used = (head_end + length).min(*len);
    buf.copy_within(used..*len, 0);
    *len -= used;
    Some(Request {
        post,
        path,
        close,
        body,
    })
}

async fn handle(mut socket: TcpStream, channels: Channels) {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    while let Some(request) = next_request(&mut socket, &mut buf, &mut len).await {
        if !request.post {
            if request.path.starts_with("/sub/") {
                live(socket, channels.live.subscribe()).await;
            } else {
                burst(socket, channels.burst.subscribe()).await;
            }
            return;
        }
        if request.path.starts_with("/pub") {
            let mut frame = b"data: ".to_vec();
            frame.extend_from_slice(&request.body);
            frame.extend_from_slice(b"\n\n");
            let _ = channels.live.send(frame.into());
        } else {
            let _ = channels
                .burst
                .send(String::from_utf8_lossy(&request.body).into_owned());
        }
        let answer: &[u8] = if request.close {
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        } else {
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        };
        if socket.write_all(answer).await.is_err() || request.close {
            return;
        }
    }
}

const STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";

/// Every message as it comes; those that queued during a write go out in the next one.
async fn live(mut socket: TcpStream, mut rx: broadcast::Receiver<Arc<[u8]>>) {
    if socket.write_all(STREAM_HEAD).await.is_err() {
        return;
    }
    let mut out = Vec::with_capacity(4096);
    loop {
        match rx.recv().await {
            Ok(frame) => out.extend_from_slice(&frame),
            Err(RecvError::Lagged(_) | RecvError::Closed) => return,
        }
        loop {
            match rx.try_recv() {
                Ok(frame) => out.extend_from_slice(&frame),
                Err(TryRecvError::Empty) => break,
                Err(_) => return,
            }
        }
        if socket.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

/// The seed's `GET /stream`: one message, three copies a second apart, then `close`.
async fn burst(mut socket: TcpStream, mut rx: broadcast::Receiver<String>) {
    if socket.write_all(STREAM_HEAD).await.is_err() {
        return;
    }
    let Ok(message) = rx.recv().await else {
        return;
    };
    for copy in 0..3 {
        if copy > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let frame = format!("event: message\ndata: {message}\n\n");
        if socket.write_all(frame.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = socket.write_all(b"event: close\ndata: done\n\n").await;
    let mut rest = [0u8; 64];
    let _ = socket.read(&mut rest).await;
}
