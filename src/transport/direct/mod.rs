//! `GET /stream` and `GET /.well-known/mercure` over HTTP/1.x without hyper: the hot path of
//! idle memory.
//!
//! A stream spends its life waiting, so what it holds while it waits is what a server with
//! tens of thousands of streams pays for. Through hyper and axum an idle stream holds about
//! 20 KiB (read and write buffers, the connection state, the boxed body); served here it holds
//! its [`Session`] and a socket (measured with `bench/run --only idle`; see BENCHMARKS.md).
//!
//! The connection task reads the request head itself. When it is an HTTP/1.x `GET /stream` or
//! Mercure subscription whose session opens, this module answers it: the head, then each frame as one chunk, several
//! pending frames in one write, until the session ends or the peer leaves. Anything else (other
//! paths, other methods, HTTP/2, a request with a body, pipelined requests, a stream request
//! that fails) goes to hyper with the bytes already read, and gets the ordinary route.

mod head;
mod publish;
mod read;
mod write;

use std::future::Future;
use std::io;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use self::head::{Head, Route};
use self::publish::Step;
use self::read::{read_head, IdleTimer};
use self::write::{try_write, write, write_rest};
use crate::error::ApiError;
pub(crate) use crate::io::Rewind;
use crate::ops::stream::STREAM_HEADERS;
use crate::ops::AppState;
use crate::session::Session;
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
/// first request head (or the HTTP/2 preface) must arrive within `--header-timeout`.
///
/// The timeouts are read from the configuration where they are used, not passed in: whatever
/// this future holds, every idle stream holds for its whole life.
///
/// # Errors
/// I/O errors of the socket (the connection is then dropped).
#[allow(clippy::manual_async_fn)] // on purpose: see `transport::serve`
pub(crate) fn serve<'a>(
    socket: &'a mut TcpStream,
    app: &'a AppState,
) -> impl std::future::Future<Output = io::Result<Outcome>> + 'a {
    async move {
        // Boxed, and in a function of its own: everything the request needed (its head, query,
        // credentials, the session being opened) lives in that future, freed once the stream
        // starts. What stays in this task while the stream waits, for as long as it lives, is
        // only the session and what writing needs: about 1.2 KiB, not 2.2 (`-Zprint-type-sizes`).
        let (session, head, chunked) = match Box::pin(open(socket, app)).await? {
            Opened::Stream(session, head, chunked) => (session, head, chunked),
            Opened::Not(outcome) => return Ok(outcome),
        };
        // The head, before the stream's future exists: it need not keep the head's bytes.
        let write_timeout = app.config().write_timeout;
        write(socket, &[Bytes::from(head)], false, write_timeout).await?;
        let result = write_stream(socket, session, chunked, write_timeout).await;
        tracing::debug!(?result, "stream ended");
        result.map(|()| Outcome::Served)
    }
}

/// What [`open`] made of the first request.
#[allow(clippy::large_enum_variant)] // made once per connection and taken apart at once
enum Opened {
    /// A stream to write: its session, the response head, whether chunked (HTTP/1.1).
    Stream(Session, String, bool),
    /// Not a stream served here.
    Not(Outcome),
}

/// Reads the first request head and, for a stream request, opens its session.
async fn open(socket: &mut TcpStream, app: &AppState) -> io::Result<Opened> {
    let header_timeout = app.config().header_timeout;
    let stop = app.shutdown_token();
    let mut buf = Vec::new();
    // The first request's head gets `header_timeout`; between publishes on a kept-alive
    // connection, the next one may take `--idle-timeout` to start.
    let mut idle: Option<IdleTimer> = None;
    // One wait for the connection's life, not one per request (each registers with the
    // shutdown's waiters, under its lock).
    let mut stopped = std::pin::pin!(stop.cancelled());
    let mut stream = loop {
        // A connection that has not sent its (next) request yet is simply closed on shutdown.
        let read = tokio::select! {
            biased;
            read = read_head(socket, &mut buf, header_timeout, idle.as_mut()) => read?,
            () = &mut stopped => None,
        };
        let Some(head) = read else {
            return Ok(Opened::Not(Outcome::Served));
        };
        match head {
            Head::Other => return Ok(Opened::Not(Outcome::Fallback(buf))),
            Head::TooLarge => {
                let response = ApiError::HeadTooLarge.http1_bytes();
                crate::io::answer_and_close(socket, &response, LINGER).await;
                return Ok(Opened::Not(Outcome::Served));
            }
            Head::Partial => return Ok(Opened::Not(Outcome::Served)),
            Head::Publish(mut request) => {
                request.meta.secure = app.config().tls_cert.is_some();
                match publish::serve_one(socket, app, &mut buf, request).await? {
                    Step::Next => {
                        match &mut idle {
                            Some(idle) => idle.touch(),
                            None => idle = Some(IdleTimer::new(app.config().idle_timeout)),
                        }
                        continue;
                    }
                    Step::Closed => return Ok(Opened::Not(Outcome::Served)),
                    Step::Fallback => return Ok(Opened::Not(Outcome::Fallback(buf))),
                }
            }
            Head::Stream(stream) => break stream,
        }
    };
    let started = std::time::Instant::now();
    stream.meta.peer = socket.peer_addr().ok().map(|a| a.ip());
    stream.meta.secure = app.config().tls_cert.is_some();
    if stream.http10 {
        stream.meta.version = crate::metrics::HttpVersion::Http10;
    }
    // Boxed: opening a session is a large future, and every idle stream would pay for it.
    let query = stream.query.as_deref();
    let opened = match stream.route {
        Route::Native => Box::pin(crate::ops::stream::open(app, query, &stream.meta))
            .await
            .map(|session| (session, Vec::new())),
        Route::Mercure => Box::pin(crate::ops::mercure::subscribe(app, query, &stream.meta)).await,
    };
    let (session, mut extra) = match opened {
        Ok(opened) => opened,
        // The ordinary route gives the same error its JSON response.
        Err(_) => return Ok(Opened::Not(Outcome::Fallback(buf))),
    };
    drop(buf);
    let took = started.elapsed();
    crate::ops::log::log_request(app, "GET", stream.route.path(), 200, took);
    app.metrics().request(stream.route.path(), "GET", 200, took);
    extra.extend(app.cors().headers(stream.meta.origin.as_deref()));
    let chunked = !stream.http10;
    Ok(Opened::Stream(
        session,
        response_head(chunked, &extra),
        chunked,
    ))
}

/// Writes the rest of the response after its head: the session's frames, then the end.
///
/// Writes are first tried without waiting (`try_write_vectored`): a healthy client's socket
/// has room, so the frames go out straight from the shared event bytes, and nothing is held
/// across an `.await` but the session. Only a client whose socket is full makes the rest wait,
/// copied into one buffer, for at most `write_timeout`.
///
/// A plain `fn` returning an `async move` block, not an `async fn`: an `async fn` keeps its
/// arguments twice in its future (as passed, and moved into locals), which cost every idle
/// stream ~280 bytes (the 224-byte session twice).
#[allow(clippy::manual_async_fn)] // on purpose, see above
fn write_stream(
    socket: &TcpStream,
    mut session: Session,
    chunked: bool,
    write_timeout: Duration,
) -> impl std::future::Future<Output = io::Result<()>> + '_ {
    async move {
        // The timer lives in this block only, so the wait after the response (`linger`) can
        // reuse its place in the future.
        let finished = {
            let mut timer = std::pin::pin!(session.timer());
            loop {
                // The session's next frame first; else whether the socket became readable,
                // asked with `poll_read_ready`, which keeps no state of its own in this future
                // (unlike `readable()`: ~150 bytes more in every idle stream).
                let step = {
                    let mut next = std::pin::pin!(session.next_chunk(timer.as_mut()));
                    std::future::poll_fn(|cx| match next.as_mut().poll(cx) {
                        Poll::Ready(frame) => Poll::Ready(Ok(Some(frame))),
                        Poll::Pending => socket.poll_read_ready(cx).map_ok(|()| None),
                    })
                    .await
                };
                let frame = match step? {
                    Some(frame) => frame,
                    // A stream request has no body: anything readable here is the peer
                    // closing, or bytes it had no business sending (a pipelined request), which
                    // end the stream.
                    None => match socket.try_read(&mut [0u8; 16]) {
                        Ok(0) => return Ok(()),
                        // End the response properly, then wait for the client to close.
                        Ok(_) => break false,
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(err) => return Err(err),
                    },
                };
                let Some(first) = frame else { break false };
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
                    // The end of the response goes in the same write as the last frames (the
                    // last copy of a burst, `close` and the terminating chunk: one syscall, not
                    // three).
                    last = session.is_finished();
                    try_write(socket, &batch[..count], chunked, last)?
                };
                if let Some(rest) = rest {
                    Box::pin(write_rest(socket, rest, write_timeout)).await?;
                }
                if last {
                    break true;
                }
            }
        };
        // The stream is over (and counted so) while the client takes its time to close.
        drop(session);
        if !finished {
            if let Some(rest) = try_write(socket, &[], chunked, true)? {
                Box::pin(write_rest(socket, rest, write_timeout)).await?;
            }
        }
        linger(socket, chunked).await
    }
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

fn response_head(chunked: bool, extra: &[(&str, String)]) -> String {
    let mut head = String::with_capacity(192);
    head.push_str(if chunked {
        "HTTP/1.1 200 OK\r\n"
    } else {
        "HTTP/1.0 200 OK\r\n"
    });
    let extra = extra.iter().map(|(n, v)| (*n, v.as_str()));
    for (name, value) in STREAM_HEADERS.into_iter().chain(extra) {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("date: ");
    crate::wire::with_date(|date| head.push_str(date));
    head.push_str(if chunked {
        "\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
    } else {
        "\r\nconnection: close\r\n\r\n"
    });
    head
}
