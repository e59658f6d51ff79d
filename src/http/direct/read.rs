//! Reading request heads off a connection: the first within `--header-timeout`, the next ones
//! on a kept-alive connection after up to `--idle-timeout` of silence, each then classified by
//! [`parse_head`].

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

    /// Waits until the socket is readable (`true`) or has been idle for the limit (`false`).
    async fn readable(&mut self, socket: &TcpStream) -> io::Result<bool> {
        loop {
            tokio::select! {
                ready = socket.readable() => return ready.map(|()| true),
                () = self.sleep.as_mut() => {
                    let due = self.since + self.limit;
                    if tokio::time::Instant::now() >= due {
                        return Ok(false);
                    }
                    self.sleep.as_mut().reset(due);
                }
            }
        }
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
    let mut idle = idle.filter(|_| buf.is_empty());
    // What is there already is read without a timer (most heads arrive in one piece); once
    // some bytes of a head arrived, the rest is under the header deadline.
    loop {
        if let Some(idle) = idle.as_deref_mut() {
            if !idle.readable(socket).await? {
                return Ok(None);
            }
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(buf.len().clamp(512, MAX_HEAD));
        }
        match socket.try_read_buf(buf) {
            Ok(0) => return Ok(None),
            Ok(_) => match parse_head(buf) {
                Head::Partial => break,
                head => return Ok(Some(head)),
            },
            // Readiness can be stale (the last read took everything there was): between
            // requests, wait again under the idle timer; else under the header deadline.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && idle.is_some() => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err),
        }
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
    use crate::http::direct::head::{Route, StreamRequest};
    use crate::http::request::RequestMeta;

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
