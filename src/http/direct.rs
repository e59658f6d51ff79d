//! `GET /stream` over HTTP/1.x without hyper: the hot path of idle memory.
//!
//! A stream spends its life waiting, so what it holds while it waits is what a server with
//! tens of thousands of streams pays for. Through hyper and axum an idle stream holds about
//! 20 KiB (read and write buffers, the connection state, the boxed body); served here it holds
//! its [`Session`] and a socket (measured with `bench/run --only idle`; see BENCHMARKS.md).
//!
//! The connection task reads the request head itself. When it is an HTTP/1.x `GET /stream`
//! whose session opens, this module answers it: the head, then each frame as one chunk, several
//! pending frames in one write, until the session ends or the peer leaves. Anything else (other
//! paths, other methods, HTTP/2, a request with a body, pipelined requests, a stream request
//! that fails) goes to hyper with the bytes already read, and gets the ordinary route.

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use super::stream::{open_session, STREAM_HEADERS};
use super::AppState;
use crate::error::ApiError;
use crate::session::Session;

/// Largest request head accepted; a longer one gets 431 and the connection is closed.
const MAX_HEAD: usize = 16 * 1024;
/// What an HTTP/2 client sends first (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frames written in one go when several are pending.
const BATCH: usize = 8;
/// How long a finished response waits for the client to close first.
const LINGER: Duration = Duration::from_secs(2);

/// What happened to a connection.
pub(crate) enum Outcome {
    /// Served (or refused) here; the connection is done.
    Served,
    /// Not ours: hand it to hyper, replaying these bytes first.
    Fallback(Vec<u8>),
}

/// Serves the connection if it is a stream request; else returns what it read. Either way the
/// first request head (or the HTTP/2 preface) must arrive within `header_timeout`.
///
/// # Errors
/// I/O errors of the socket (the connection is then dropped).
pub(crate) async fn serve(
    socket: &mut TcpStream,
    app: &AppState,
    header_timeout: Duration,
    write_timeout: Duration,
) -> io::Result<Outcome> {
    let stop = app.shutdown_token();
    // A connection that has not sent its request yet is simply closed on shutdown.
    let read = tokio::select! {
        read = read_head(socket, header_timeout) => read?,
        () = stop.cancelled() => None,
    };
    let Some((buf, head)) = read else {
        return Ok(Outcome::Served);
    };
    let stream = match head {
        Head::Other => return Ok(Outcome::Fallback(buf)),
        Head::TooLarge => {
            let _ = socket.try_write(&ApiError::HeadTooLarge.http1_bytes());
            return Ok(Outcome::Served);
        }
        Head::Partial => return Ok(Outcome::Served),
        Head::Stream(stream) => stream,
    };
    let started = std::time::Instant::now();
    let session = match open_session(
        app,
        stream.query.as_deref(),
        stream.last_event_id.as_deref(),
    )
    .await
    {
        Ok(session) => session,
        // The ordinary route gives the same error its JSON response.
        Err(_) => return Ok(Outcome::Fallback(buf)),
    };
    drop(buf);
    super::log_request(app, "GET", "/stream", 200, started.elapsed());
    let result = write_stream(socket, session, !stream.http10, write_timeout).await;
    tracing::debug!(?result, "stream ended");
    result.map(|()| Outcome::Served)
}

/// A `GET /stream` request this path serves.
#[derive(Debug, PartialEq, Eq)]
struct StreamRequest {
    query: Option<String>,
    last_event_id: Option<Vec<u8>>,
    http10: bool,
}

/// What the bytes read so far are.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Not complete yet.
    Partial,
    /// A plain `GET /stream` with nothing after its head: served here.
    Stream(StreamRequest),
    /// A complete head (or HTTP/2 preface, or bytes that are not HTTP) for hyper.
    Other,
    /// Longer than [`MAX_HEAD`] without ending.
    TooLarge,
}

/// Classifies the bytes a connection sent first.
fn parse_head(buf: &[u8]) -> Head {
    let preface = buf.len().min(H2_PREFACE.len());
    if buf[..preface] == H2_PREFACE[..preface] {
        return if preface == H2_PREFACE.len() {
            Head::Other
        } else {
            Head::Partial
        };
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        Ok(httparse::Status::Partial) => return Head::TooLarge,
        // hyper answers malformed requests (and heads with more headers than we look at).
        Err(_) => return Head::Other,
    };
    if len > MAX_HEAD {
        return Head::TooLarge;
    }
    let (path, query) = match request.path.unwrap_or("").split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (request.path.unwrap_or(""), None),
    };
    let plain = len == buf.len()
        && request.method == Some("GET")
        && path == "/stream"
        && request.headers.iter().all(|h| {
            !h.name.eq_ignore_ascii_case("content-length")
                && !h.name.eq_ignore_ascii_case("transfer-encoding")
                && !h.name.eq_ignore_ascii_case("upgrade")
        });
    if !plain {
        return Head::Other;
    }
    let last_event_id = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("last-event-id"))
        .map(|h| h.value.to_vec());
    Head::Stream(StreamRequest {
        query,
        last_event_id,
        http10: request.version == Some(0),
    })
}

/// Reads until the head is complete. `None` when the peer left, or was too slow, before.
async fn read_head(
    socket: &mut TcpStream,
    header_timeout: Duration,
) -> io::Result<Option<(Vec<u8>, Head)>> {
    let mut buf = Vec::with_capacity(512);
    let deadline = tokio::time::Instant::now() + header_timeout;
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().min(MAX_HEAD));
        }
        let read = tokio::time::timeout_at(deadline, socket.read_buf(&mut buf)).await;
        match read {
            Err(_) | Ok(Ok(0)) => return Ok(None),
            Ok(Err(err)) => return Err(err),
            Ok(Ok(_)) => {}
        }
        match parse_head(&buf) {
            Head::Partial => {}
            head => return Ok(Some((buf, head))),
        }
    }
}

/// Writes the response: the head, then the session's frames, then the end.
///
/// Writes are first tried without waiting (`try_write_vectored`): a healthy client's socket
/// has room, so the frames go out straight from the shared event bytes, and nothing is held
/// across an `.await` but the session. Only a client whose socket is full makes the rest wait,
/// copied into one buffer, for at most `write_timeout`.
async fn write_stream(
    socket: &TcpStream,
    mut session: Session,
    chunked: bool,
    write_timeout: Duration,
) -> io::Result<()> {
    let head = response_head(chunked);
    write(socket, &[Bytes::from(head)], false, write_timeout).await?;
    let mut scratch = [0u8; 16];
    loop {
        let frame = tokio::select! {
            biased;
            frame = session.next_chunk() => frame,
            // A stream request has no body: anything readable here is the peer closing, or
            // bytes it had no business sending (a pipelined request), which end the stream.
            ready = socket.readable() => {
                ready?;
                match socket.try_read(&mut scratch) {
                    Ok(_) => return Ok(()),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(err) => return Err(err),
                }
            }
        };
        let Some(first) = frame else { break };
        let last;
        let rest = {
            let mut batch: [Bytes; BATCH] = Default::default();
            batch[0] = first;
            let mut count = 1;
            while count < BATCH {
                match session.ready_frame() {
                    Some(frame) => {
                        batch[count] = frame;
                        count += 1;
                    }
                    None => break,
                }
            }
            // The end of the response goes in the same write as the last frames (the last
            // copy of a burst, `close` and the terminating chunk: one syscall, not three).
            last = session.is_finished();
            try_write(socket, &batch[..count], chunked, last)?
        };
        if let Some(rest) = rest {
            Box::pin(write_rest(socket, rest, write_timeout)).await?;
        }
        if last {
            return linger(socket, chunked).await;
        }
    }
    if let Some(rest) = try_write(socket, &[], chunked, true)? {
        Box::pin(write_rest(socket, rest, write_timeout)).await?;
    }
    linger(socket, chunked).await
}

/// After the response: give the client a moment to close first (it knows the response ended),
/// so the close costs this server nothing on the path of other streams' frames and the
/// TIME_WAIT state stays with the client. An HTTP/1.0 body ends with our close, at once.
async fn linger(socket: &TcpStream, chunked: bool) -> io::Result<()> {
    if !chunked {
        return Ok(());
    }
    let mut scratch = [0u8; 16];
    let wait_for_eof = async {
        loop {
            socket.readable().await?;
            match socket.try_read(&mut scratch) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
    };
    // A client that keeps the connection open anyway is closed after a short while.
    let _ = tokio::time::timeout(LINGER, wait_for_eof).await;
    Ok(())
}

fn response_head(chunked: bool) -> String {
    let mut head = String::with_capacity(192);
    head.push_str(if chunked {
        "HTTP/1.1 200 OK\r\n"
    } else {
        "HTTP/1.0 200 OK\r\n"
    });
    for (name, value) in STREAM_HEADERS {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("date: ");
    head.push_str(&httpdate::fmt_http_date(std::time::SystemTime::now()));
    head.push_str(if chunked {
        "\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
    } else {
        "\r\nconnection: close\r\n\r\n"
    });
    head
}

/// Writes frames as one chunk (or raw), waiting (up to `limit`) only if the socket is full.
async fn write(
    socket: &TcpStream,
    frames: &[Bytes],
    chunked: bool,
    limit: Duration,
) -> io::Result<()> {
    match try_write(socket, frames, chunked, false)? {
        None => Ok(()),
        // Boxed: only a client that does not keep up pays for this future.
        Some(rest) => Box::pin(write_rest(socket, rest, limit)).await,
    }
}

/// Writes what the socket takes now; returns the rest, copied, if it did not take it all.
fn try_write(
    socket: &TcpStream,
    frames: &[Bytes],
    chunked: bool,
    last: bool,
) -> io::Result<Option<Vec<u8>>> {
    let total: usize = frames.iter().map(Bytes::len).sum();
    let size = format!("{total:x}\r\n");
    let (head, tail): (&[u8], &[u8]) = match (chunked, total > 0, last) {
        (false, _, _) => (b"", b""),
        (true, true, false) => (size.as_bytes(), b"\r\n"),
        (true, true, true) => (size.as_bytes(), b"\r\n0\r\n\r\n"),
        (true, false, true) => (b"", b"0\r\n\r\n"),
        (true, false, false) => (b"", b""),
    };
    let mut pieces: [&[u8]; BATCH + 2] = [&[]; BATCH + 2];
    pieces[0] = head;
    for (slot, frame) in pieces[1..].iter_mut().zip(frames) {
        *slot = frame;
    }
    pieces[frames.len() + 1] = tail;
    let pieces = &pieces[..frames.len() + 2];
    let goal = head.len() + total + tail.len();
    let mut buffer = [IoSlice::new(&[]); BATCH + 2];
    let used = slices(pieces, 0, &mut buffer);
    let written = match socket.try_write_vectored(&buffer[..used]) {
        Ok(n) => n,
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
        Err(err) => return Err(err),
    };
    if written == goal {
        return Ok(None);
    }
    let mut rest = Vec::with_capacity(goal - written);
    let used = slices(pieces, written, &mut buffer);
    for piece in &buffer[..used] {
        rest.extend_from_slice(piece);
    }
    Ok(Some(rest))
}

/// Waits for room and writes `rest`, failing with `TimedOut` past `limit`.
async fn write_rest(socket: &TcpStream, rest: Vec<u8>, limit: Duration) -> io::Result<()> {
    let mut rest = &rest[..];
    let deadline = tokio::time::Instant::now() + limit;
    while !rest.is_empty() {
        tokio::time::timeout_at(deadline, socket.writable())
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer took no bytes within the write timeout",
                )
            })??;
        match socket.try_write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Fills `out` with the pieces as I/O slices, skipping the first `skip` bytes; returns how
/// many it filled.
fn slices<'a>(pieces: &[&'a [u8]], mut skip: usize, out: &mut [IoSlice<'a>]) -> usize {
    let mut used = 0;
    for piece in pieces {
        if skip >= piece.len() {
            skip -= piece.len();
            continue;
        }
        out[used] = IoSlice::new(&piece[skip..]);
        skip = 0;
        used += 1;
    }
    used
}

/// A socket whose first reads replay bytes already taken from it.
#[derive(Debug)]
pub(crate) struct Rewind<T> {
    prefix: Option<Bytes>,
    inner: T,
}

impl<T> Rewind<T> {
    pub(crate) fn new(prefix: Vec<u8>, inner: T) -> Self {
        Self {
            prefix: (!prefix.is_empty()).then(|| Bytes::from(prefix)),
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(prefix) = &mut this.prefix {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix.split_to(n));
            if prefix.is_empty() {
                this.prefix = None;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
