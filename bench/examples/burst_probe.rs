//! An independent check of the burst rhythm, sharing no code with the generator: plain
//! non-blocking sockets and `epoll` (no tokio, no SSE parser). It opens N `GET /stream`
//! connections, publishes one message, and timestamps every `data:` line of it as the bytes
//! come off each client's socket, then reports, per client, the gaps between copies.
//!
//! Start a server first, pinned to one core, and run this on the other:
//!   taskset -c 0 target/release/ssehub --bind 127.0.0.1:8000 --max-streams 19500 &
//!   taskset -c 1 cargo run --release -p ssehub-bench --example burst_probe -- 127.0.0.1:8000 19000
//! (`ulimit -n` must allow N + a few files.)

#![allow(unsafe_code)] // system calls tokio does not wrap; each block says why it is sound

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

struct Conn {
    stream: TcpStream,
    /// Unparsed bytes: the head, then the tail of an incomplete line.
    pending: Vec<u8>,
    headed: bool,
    copies: Vec<Instant>,
    closed: bool,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8000".into())
        .parse()
        .expect("address");
    let clients: usize = args.next().map_or(1000, |n| n.parse().expect("count"));

    // SAFETY: epoll_create1 takes no pointer; the result is checked.
    let epoll = unsafe { libc::epoll_create1(0) };
    assert!(epoll >= 0, "epoll_create1");
    let mut conns: HashMap<i32, Conn> = HashMap::with_capacity(clients);
    for i in 0..clients {
        let mut stream = connect(addr, i);
        stream
            .write_all(b"GET /stream HTTP/1.1\r\nHost: probe\r\nAccept: text/event-stream\r\n\r\n")
            .expect("request");
        stream.set_nonblocking(true).expect("nonblocking");
        let fd = stream.as_raw_fd();
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: `event` is a live, initialised epoll_event for the call; `fd` is an open socket.
        let rc = unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) };
        assert_eq!(rc, 0, "epoll_ctl");
        conns.insert(
            fd,
            Conn {
                stream,
                pending: Vec::new(),
                headed: false,
                copies: Vec::with_capacity(3),
                closed: false,
            },
        );
    }
    // Every response head must be in before the publish.
    let deadline = Instant::now() + Duration::from_secs(60);
    while conns.values().any(|c| !c.headed) && Instant::now() < deadline {
        pump(epoll, &mut conns, 100);
    }
    let headed = conns.values().filter(|c| c.headed).count();
    eprintln!("{headed} of {clients} streams open; publishing");

    // Published from another thread: this one keeps reading while the server fans out.
    let sent = Instant::now();
    if std::env::var_os("PROBE_DEBUG").is_some() {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a live timespec the call writes.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        eprintln!("publish at monotonic {}.{:09}", ts.tv_sec, ts.tv_nsec);
    }
    let publisher = std::thread::spawn(move || publish(addr));
    let deadline = Instant::now() + Duration::from_secs(20);
    while conns.values().any(|c| !c.closed) && Instant::now() < deadline {
        pump(epoll, &mut conns, 100);
    }

    publisher.join().expect("publisher");
    let mut gaps: Vec<f64> = Vec::new();
    let mut first: Vec<f64> = Vec::new();
    let mut complete = 0;
    for conn in conns.values() {
        if conn.copies.len() == 3 && conn.closed {
            complete += 1;
        }
        if let Some(t) = conn.copies.first() {
            first.push(ms(t.duration_since(sent)));
        }
        for pair in conn.copies.windows(2) {
            gaps.push(ms(pair[1].duration_since(pair[0])));
        }
    }
    if std::env::var_os("PROBE_DEBUG").is_some() {
        // Gap error by when the first copy came: shows whether late first copies get short gaps.
        let mut rows: Vec<(f64, f64, f64)> = conns
            .values()
            .filter(|c| c.copies.len() == 3)
            .map(|c| {
                let f = ms(c.copies[0].duration_since(sent));
                (
                    f,
                    ms(c.copies[1].duration_since(c.copies[0])),
                    ms(c.copies[2].duration_since(c.copies[1])),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        for chunk in rows.chunks(rows.len().div_ceil(10).max(1)) {
            let n = chunk.len() as f64;
            let (f, g1, g2) = chunk
                .iter()
                .fold((0.0, 0.0, 0.0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2));
            let worst = chunk
                .iter()
                .map(|r| (r.1 - 1000.0).abs().max((r.2 - 1000.0).abs()))
                .fold(0.0, f64::max);
            eprintln!(
                "first {:7.1} ms: gap1 {:7.1} gap2 {:7.1} worst err {:5.1}",
                f / n,
                g1 / n,
                g2 / n,
                worst
            );
        }
    }
    gaps.sort_by(f64::total_cmp);
    first.sort_by(f64::total_cmp);
    let errors = {
        let mut e: Vec<f64> = gaps.iter().map(|g| (g - 1000.0).abs()).collect();
        e.sort_by(f64::total_cmp);
        e
    };
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

/// Connects from one of 32 loopback source addresses, so 19,000 clients do not run short of
/// ephemeral ports.
fn connect(addr: SocketAddr, i: usize) -> TcpStream {
    let source = SocketAddr::from(([127, 0, 0, 1 + (i % 32) as u8], 0));
    // SAFETY: socket takes no pointer; the result is checked.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(socket >= 0, "socket");
    let bind = sockaddr(source);
    let target = sockaddr(addr);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `bind` and `target` are initialised sockaddr_in values of `len` bytes that outlive
    // the calls; `socket` is the descriptor just created.
    unsafe {
        assert_eq!(
            libc::bind(socket, (&bind as *const libc::sockaddr_in).cast(), len),
            0,
            "bind"
        );
        assert_eq!(
            libc::connect(socket, (&target as *const libc::sockaddr_in).cast(), len),
            0,
            "connect"
        );
        std::os::fd::FromRawFd::from_raw_fd(socket)
    }
}

fn sockaddr(addr: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Reads every ready socket once, timestamping each complete line as it arrives.
fn pump(epoll: i32, conns: &mut HashMap<i32, Conn>, timeout_ms: i32) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    // SAFETY: `events` has room for the 1,024 entries the call may write.
    let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), 1024, timeout_ms) };
    let mut buf = [0u8; 4096];
    for event in events.iter().take(n.max(0) as usize) {
        let fd = event.u64 as i32;
        let Some(conn) = conns.get_mut(&fd) else {
            continue;
        };
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    // SAFETY: deregistering takes no event pointer (null is allowed for EPOLL_CTL_DEL).
                    unsafe {
                        libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut())
                    };
                    conn.closed = true;
                    break;
                }
                Ok(n) => {
                    let now = Instant::now();
                    conn.pending.extend_from_slice(&buf[..n]);
                    lines(conn, now);
                }
                Err(_) => break,
            }
        }
    }
}

fn lines(conn: &mut Conn, now: Instant) {
    if !conn.headed {
        let Some(end) = find(&conn.pending, b"\r\n\r\n") else {
            return;
        };
        conn.headed = true;
        conn.pending.drain(..end + 4);
    }
    while let Some(end) = find(&conn.pending, b"\n") {
        let line = &conn.pending[..end];
        if line.starts_with(b"data:") && find(line, b"probe-message").is_some() {
            conn.copies.push(now);
        } else if line.starts_with(b"event: close") || line.starts_with(b"event:close") {
            conn.closed = true;
        }
        conn.pending.drain(..end + 1);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn publish(addr: SocketAddr) {
    let body = br#"{"message":"probe-message"}"#;
    let mut stream = TcpStream::connect(addr).expect("publish connect");
    write!(
        stream,
        "POST /api/messages HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("publish");
    stream.write_all(body).expect("publish body");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 20"),
        "publish answered {answer}"
    );
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
