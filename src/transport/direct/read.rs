//! Reading request heads off a connection: the first within `--header-timeout`, the next ones
//! on a kept-alive connection after up to `--idle-timeout` of silence, each then classified by
//! [`parse_head`].

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::head::{parse_head, Head, MAX_HEAD};

/// The `--idle-timeout` of a kept-alive connection between requests, as one timer for the
/// connection's life: a request only notes the time, and the timer, when it fires, checks
/// whether the connection has really been idle that long (else it waits the rest). A timer
/// per request cost ~2,000 instructions of a ~20,000-instruction publish (callgrind).
pub(super) struct IdleTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    since: tokio::time::Instant,
}

impl IdleTimer {
    pub(super) fn new(limit: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            sleep: Box::pin(tokio::time::sleep_until(now + limit)),
            limit,
            since: now,
        }
    }

    /// A request was answered now: the idle time starts again.
    pub(super) fn touch(&mut self) {
        self.since = tokio::time::Instant::now();
    }

    /// Reads what the socket has into `buf`, waiting for it until the connection has been idle
    /// for the limit (`None`).
    async fn read(
        &mut self,
        socket: &mut TcpStream,
        buf: &mut Vec<u8>,
    ) -> io::Result<Option<usize>> {
        loop {
            tokio::select! {
                biased;
                read = socket.read_buf(buf) => return read.map(Some),
                () = self.sleep.as_mut() => {
                    let due = self.since + self.limit;
                    if tokio::time::Instant::now() >= due {
                        return Ok(None);
                    }
                    self.sleep.as_mut().reset(due);
                }
            }
        }
    }
}

/// Reads what the socket has into `buf` now, or `None` if it has nothing yet.
///
/// Through tokio's `poll_read`, not `try_read`: a read that fills less than the buffer shows
/// the socket's queue drained, and `poll_read` then forgets the readiness (nginx's `recv` does
/// the same). With `try_read` the next request's wait began with a `recv` that could only fail
/// with `EAGAIN`: half a wasted syscall per publish (`strace -c` under `wrk`).
fn read_now(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let read = std::pin::pin!(socket.read_buf(buf));
    match read.poll(&mut cx) {
        std::task::Poll::Ready(read) => Some(read),
        std::task::Poll::Pending => None,
    }
}

/// Reads until `buf` holds a complete head, which it may already (a pipelined request). `None`
/// when the peer left, or was too slow, before. With `idle`, the first byte may take until the
/// connection has been idle that long (a kept-alive connection between requests); the rest of
/// the head gets `header_timeout`.
pub(super) async fn read_head(
    socket: &mut TcpStream,
    buf: &mut Vec<u8>,
    header_timeout: Duration,
    idle: Option<&mut IdleTimer>,
) -> io::Result<Option<Head>> {
    if !buf.is_empty() {
        match parse_head(buf) {
            Head::Partial => {}
            head => return Ok(Some(head)),
        }
    }
    let idle = idle.filter(|_| buf.is_empty());
    // What is there already is read without a timer (most heads arrive in one piece); once
    // some bytes of a head arrived, the rest is under the header deadline.
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(buf.len().clamp(512, MAX_HEAD));
    }
    let read = match idle {
        // Idle for the limit: the connection is done.
        Some(idle) => match idle.read(socket, buf).await? {
            Some(read) => Some(read),
            None => return Ok(None),
        },
        // Nothing yet: wait under the header deadline.
        None => read_now(socket, buf).transpose()?,
    };
    match read {
        Some(0) => return Ok(None),
        Some(_) => match parse_head(buf) {
            Head::Partial => {}
            head => return Ok(Some(head)),
        },
        None => {}
    }
    let deadline = tokio::time::Instant::now() + header_timeout;
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().clamp(512, MAX_HEAD));
        }
        let read = tokio::time::timeout_at(deadline, socket.read_buf(buf)).await;
        match read {
            Err(_) | Ok(Ok(0)) => return Ok(None),
            Ok(Err(err)) => return Err(err),
            Ok(Ok(_)) => {}
        }
        match parse_head(buf) {
            Head::Partial => {}
            head => return Ok(Some(head)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::meta::RequestMeta;
    use crate::transport::direct::head::{Route, StreamRequest};

    #[tokio::test]
    async fn a_head_in_pieces_is_read_whole_within_the_deadline() {
        let (mut client, mut server) = crate::io::socket_pair().await;
        let reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            let head = read_head(&mut server, &mut buf, Duration::from_secs(5), None).await;
            head.map(|head| head.map(|head| (buf, head)))
        });
        for piece in [
            &b"GET /stream?topic=a HT"[..],
            b"TP/1.1\r\nHost: x\r",
            b"\n\r\n",
        ] {
            tokio::io::AsyncWriteExt::write_all(&mut client, piece)
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        let (buf, head) = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(buf.len(), 41);
        let Head::Stream(request) = &head else {
            panic!("{head:?}")
        };
        assert_eq!(request.meta.host.as_deref(), Some("x"));
        let expected = Head::Stream(StreamRequest {
            route: Route::Native,
            query: Some("topic=a".into()),
            meta: RequestMeta {
                host: Some("x".into()),
                ..RequestMeta::default()
            },
            http10: false,
        });
        assert_eq!(head, expected);
    }

    /// A read that drains the socket forgets its readiness; each next head, sent only after
    /// the one before was read, must still wake the reader at once (not at the idle limit).
    #[tokio::test]
    async fn heads_after_a_drained_read_are_read_at_once() {
        const HEAD: &[u8] = b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
        let (mut client, mut server) = crate::io::socket_pair().await;
        let (read_tx, mut read_rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut idle = IdleTimer::new(Duration::from_secs(30));
            for _ in 0..4 {
                let mut buf = Vec::new();
                let timeout = Duration::from_secs(30);
                let head = read_head(&mut server, &mut buf, timeout, Some(&mut idle)).await;
                let head = head.unwrap().expect("the peer sent a head");
                assert!(matches!(head, Head::Stream(_)), "{head:?}");
                read_tx.send(()).unwrap();
            }
        });
        for _ in 0..4 {
            tokio::io::AsyncWriteExt::write_all(&mut client, HEAD)
                .await
                .unwrap();
            let read = tokio::time::timeout(Duration::from_secs(5), read_rx.recv()).await;
            read.expect("the head was read at once").unwrap();
        }
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn a_slow_head_is_dropped_at_the_deadline() {
        let (mut client, mut server) = crate::io::socket_pair().await;
        tokio::io::AsyncWriteExt::write_all(&mut client, b"P")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let read = read_head(
            &mut server,
            &mut Vec::new(),
            Duration::from_millis(200),
            None,
        )
        .await;
        assert!(read.unwrap().is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
