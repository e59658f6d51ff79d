//! The burst rhythm as an ordinary async client sees it: one current-thread tokio runtime, one
//! task per connection, each `read`ing into its own buffer and timestamping every `data:` line
//! of the message as it comes off the socket. No code shared with the generator or with
//! `burst_probe.rs` (the epoll client): how a client reads changes what a loopback server pays
//! per write, and the rhythm must hold for both.
//!
//!   taskset -c 0 target/release/ssehub --bind 127.0.0.1:8000 &
//!   taskset -c 1 target/release/examples/burst_probe_tokio 127.0.0.1:8000 19000
//! (`ulimit -n` must allow N + a few files.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Barrier};

/// What one connection saw: when each copy's `data:` line arrived, and whether `close` came.
/// The connection is kept until the report, as the epoll client keeps its sockets: closing
/// 19,000 of them during the last round would charge the client's core with their teardown
/// while it is still timestamping other streams' copies.
struct Seen {
    copies: Vec<Instant>,
    closed: bool,
    _stream: Option<TcpStream>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8000".into())
        .parse()
        .expect("address");
    let clients: usize = args.next().map_or(1000, |n| n.parse().expect("count"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(addr, clients));
}

async fn run(addr: SocketAddr, clients: usize) {
    let headed = std::sync::Arc::new(Barrier::new(clients + 1));
    let settled = std::sync::Arc::new(AtomicUsize::new(0));
    let (done, mut results) = mpsc::unbounded_channel::<Seen>();
    for i in 0..clients {
        let stream = connect(addr, i).await;
        let (headed, settled, done) = (headed.clone(), settled.clone(), done.clone());
        tokio::spawn(async move {
            let seen = client(stream, headed, settled).await;
            let _ = done.send(seen);
        });
    }
    drop(done);
    if tokio::time::timeout(Duration::from_secs(60), headed.wait())
        .await
        .is_err()
    {
        eprintln!("not every stream opened in 60 s; publishing anyway");
    }
    // The barrier wakes every task: let each go back to waiting in `read` before publishing,
    // or the first copies would be timestamped behind that wake-up storm (tens of ms at
    // 19,000), an artefact of the probe, not of the server.
    while settled.load(Ordering::Relaxed) < clients {
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;
    eprintln!("{clients} streams open; publishing");
    let sent = Instant::now();
    publish(addr).await;
    let mut all = Vec::with_capacity(clients);
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    while all.len() < clients {
        tokio::select! {
            seen = results.recv() => match seen {
                Some(seen) => all.push(seen),
                None => break,
            },
            () = &mut deadline => break,
        }
    }
    let (mut gaps, mut first, mut complete) = (Vec::new(), Vec::new(), 0);
    for seen in &all {
        complete += usize::from(seen.copies.len() == 3 && seen.closed);
        if let Some(t) = seen.copies.first() {
            first.push(ms(t.duration_since(sent)));
        }
        for pair in seen.copies.windows(2) {
            gaps.push(ms(pair[1].duration_since(pair[0])));
        }
    }
    if std::env::var_os("PROBE_DEBUG").is_some() {
        // Mean gaps by when the first copy came: a round slower or faster than the first.
        let mut rows: Vec<(f64, f64, f64)> = all
            .iter()
            .filter(|s| s.copies.len() == 3)
            .map(|s| {
                let c = &s.copies;
                let f = ms(c[0].duration_since(sent));
                (
                    f,
                    ms(c[1].duration_since(c[0])),
                    ms(c[2].duration_since(c[1])),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        for chunk in rows.chunks(rows.len().div_ceil(10).max(1)) {
            let n = chunk.len() as f64;
            let (f, g1, g2) = chunk
                .iter()
                .fold((0.0, 0.0, 0.0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2));
            eprintln!(
                "first {:7.1} ms: gap1 {:7.1} gap2 {:7.1}",
                f / n,
                g1 / n,
                g2 / n
            );
        }
    }
    gaps.sort_by(f64::total_cmp);
    first.sort_by(f64::total_cmp);
    let mut errors: Vec<f64> = gaps.iter().map(|g| (g - 1000.0).abs()).collect();
    errors.sort_by(f64::total_cmp);
    println!(
        "{complete} of {clients} complete; gaps min {:.1} p50 {:.1} max {:.1} ms; interval error p99 {:.1} worst {:.1} ms; first copy p50 {:.1} p99 {:.1} max {:.1} ms",
        pct(&gaps, 0.0),
        pct(&gaps, 0.5),
        pct(&gaps, 1.0),
        pct(&errors, 0.99),
        pct(&errors, 1.0),
        pct(&first, 0.5),
        pct(&first, 0.99),
        pct(&first, 1.0),
    );
}

/// Connects from one of 32 loopback source addresses (19,000 clients would run short of
/// ephemeral ports from one).
async fn connect(addr: SocketAddr, i: usize) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let source = SocketAddr::from(([127, 0, 0, 1 + (i % 32) as u8], 0));
    socket.bind(source).expect("bind");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: probe\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .expect("request");
    stream
}

/// Reads one stream to its end, timestamping each `data:` line of the message.
async fn client(
    mut stream: TcpStream,
    headed: std::sync::Arc<Barrier>,
    settled: std::sync::Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen {
        copies: Vec::with_capacity(3),
        closed: false,
        _stream: None,
    };
    let mut buf = vec![0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let mut head_done = false;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        pending.extend_from_slice(&buf[..n]);
        if !head_done {
            let Some(end) = find(&pending, b"\r\n\r\n") else {
                continue;
            };
            pending.drain(..end + 4);
            head_done = true;
            headed.wait().await;
            settled.fetch_add(1, Ordering::Relaxed);
        }
        while let Some(end) = find(&pending, b"\n") {
            let line = &pending[..end];
            if line.starts_with(b"data:") && find(line, b"probe-message").is_some() {
                seen.copies.push(now);
            } else if line.starts_with(b"event: close") || line.starts_with(b"event:close") {
                seen.closed = true;
            }
            pending.drain(..end + 1);
        }
        if seen.closed {
            break;
        }
    }
    seen._stream = Some(stream);
    seen
}

async fn publish(addr: SocketAddr) {
    let body = br#"{"message":"probe-message"}"#;
    let mut stream = TcpStream::connect(addr).await.expect("publish connect");
    let head = format!(
        "POST /api/messages HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("publish");
    stream.write_all(body).await.expect("publish body");
    // The answer is read by a task of its own: this one goes back to reading the streams.
    tokio::spawn(async move {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        assert!(answer.starts_with(b"HTTP/1.1 20"), "publish answered");
    });
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
