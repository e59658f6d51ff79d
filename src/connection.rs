//! One client connection, from its first byte to its close, with a deadline on every phase.
//!
//! 1. The request head (HTTP/1) or connection preface (HTTP/2) must arrive within
//!    `--header-timeout`; the direct path (`http::direct`) reads it and serves `GET /stream`
//!    itself, and hands anything else to hyper with the bytes it read.
//! 2. Under hyper: a kept-alive HTTP/1 connection's next request head gets `--idle-timeout`; a body gets
//!    `--body-timeout` (in `http::input`); HTTP/2 connections are pinged every half
//!    `--idle-timeout` and dropped when a ping goes unanswered.
//! 3. A connection with no request in flight for `--idle-timeout` is closed (HTTP/1 keep-alive,
//!    HTTP/2 with no open stream, or whose client never finishes a request's headers).
//! 4. A response whose client takes no bytes for `--write-timeout` is ended: on HTTP/1 the
//!    socket watchdog fails the write; on HTTP/2, where one stream can be stalled by flow control
//!    while the socket is fine, the stream's body is dropped (freeing its stream slot and queue)
//!    so it no longer counts as activity.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, Response};
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::http::direct::{self, Outcome, Rewind};
use crate::http::request::ClientAddr;
use crate::http::AppState;
use crate::io::WriteWatchdog;

/// HTTP/2 streams one connection may have open at once.
const MAX_H2_STREAMS: u32 = 128;
/// How long an HTTP/2 ping may go unanswered before the connection is dropped.
const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a connection being closed (idle, or shutdown) may take to finish.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Serves one accepted cleartext connection until it closes; `held` (the connection's
/// permits) is kept until then.
///
/// One future for the whole connection, everything in it once: a `fn` returning an `async
/// move` block rather than an `async fn` (which keeps its arguments twice in its future, as
/// passed and moved into locals), no nested by-value calls (each would keep its own copy of the
/// socket and the handles), and the peer's address asked of the socket when needed rather than
/// kept. This future lives as long as the stream, in every idle stream's memory.
#[allow(clippy::manual_async_fn)] // on purpose, see above
pub(crate) fn serve<H: Send + 'static>(
    mut socket: TcpStream,
    router: Router,
    app: AppState,
    held: H,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    async move {
        // Events are small and latency matters more than packet count.
        let _ = socket.set_nodelay(true);
        match direct::serve(&mut socket, &app).await {
            Ok(Outcome::Fallback(prefix)) => {
                // A peer that is gone already has nothing more to be served.
                if let Ok(peer) = socket.peer_addr() {
                    // Boxed: the hyper connection is large.
                    // The first head was read under --header-timeout already.
                    Box::pin(serve_with_hyper(socket, prefix, peer, router, app, true)).await;
                }
            }
            Ok(Outcome::Served) => {}
            Err(err) => tracing::debug!(%err, "stream connection ended with an error"),
        }
        drop(held);
    }
}

/// Serves one accepted TLS connection: the handshake within `--header-timeout`, then
/// hyper (HTTP/2 or HTTP/1.1 as ALPN chose; the direct path is for cleartext HTTP/1 only).
/// `held` (the connection's permits) is kept until it closes.
pub(crate) async fn serve_tls<H: Send + 'static>(
    socket: TcpStream,
    peer: SocketAddr,
    router: Router,
    app: AppState,
    acceptor: tokio_rustls::TlsAcceptor,
    held: H,
) {
    let _held = held;
    let _ = socket.set_nodelay(true);
    let stop = app.shutdown_token();
    let handshake = tokio::time::timeout(app.config().header_timeout, acceptor.accept(socket));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(%peer, %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = stop.cancelled() => return,
    };
    // The first request head gets --header-timeout, as on a cleartext connection.
    Box::pin(serve_with_hyper(
        stream,
        Vec::new(),
        peer,
        router,
        app,
        false,
    ))
    .await;
}

/// Serves one accepted connection with hyper alone, no direct stream path: the
/// `--metrics-bind` listener's connections.
pub(crate) async fn serve_plain(
    socket: TcpStream,
    peer: SocketAddr,
    router: Router,
    app: AppState,
) {
    let _ = socket.set_nodelay(true);
    Box::pin(serve_with_hyper(
        socket,
        Vec::new(),
        peer,
        router,
        app,
        false,
    ))
    .await;
}

/// `head_read`: the first request's head was read already (the direct path's fallback); else
/// it must arrive within `--header-timeout`.
async fn serve_with_hyper<S>(
    socket: S,
    prefix: Vec<u8>,
    peer: SocketAddr,
    router: Router,
    app: AppState,
    head_read: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = app.config();
    let first_head = (!head_read).then_some(config.header_timeout);
    let io = TokioIo::new(Rewind::new(
        prefix,
        WriteWatchdog::new(socket, config.write_timeout),
    ));
    let activity = Arc::new(Activity::new());
    let tracker = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ClientAddr(peer));
        let guard = tracker.enter();
        let router = router.clone();
        let tracker = Arc::clone(&tracker);
        async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(tracker.track(response, guard))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Between requests on a kept-alive connection: the idle deadline (it also bounds a
        // later request's head; the first one was read under --header-timeout).
        .header_read_timeout(config.idle_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .keep_alive_interval(Some(config.idle_timeout / 2))
        .keep_alive_timeout(PING_TIMEOUT);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let stop = app.shutdown_token();
    let started = Instant::now();
    let period = (config.idle_timeout.min(config.write_timeout) / 4)
        .min(first_head.map_or(Duration::MAX, |t| t / 4))
        .max(Duration::from_millis(250));
    let mut watch = tokio::time::interval_at(Instant::now() + period, period);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, %err, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + CLOSE_WAIT);
            }
            _ = watch.tick() => {
                if first_head.is_some_and(|limit| started.elapsed() >= limit)
                    && !activity.has_served()
                {
                    tracing::debug!(%peer, "no request head within --header-timeout");
                    return;
                }
                activity.reap_stalled(config.write_timeout);
                if closing.is_none() && activity.idle_for() >= config.idle_timeout {
                    tracing::debug!(%peer, "closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    // Nothing is in flight: a client that does not answer the GOAWAY's ping
                    // goes at the next check.
                    closing = Some(Instant::now() + period.min(CLOSE_WAIT));
                }
                if closing.is_some_and(|at| Instant::now() >= at) {
                    tracing::debug!(%peer, "dropping a connection that did not close in time");
                    return;
                }
            }
        }
    }
}

/// What is in flight on one hyper connection: requests being handled and response bodies
/// being sent. A std mutex: held for counter updates and list scans, never across an `.await`.
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug)]
struct ActivityState {
    active: usize,
    /// A request has begun on this connection.
    served: bool,
    idle_since: Instant,
    /// Streaming bodies, to find those whose client stopped taking bytes.
    streams: Vec<Weak<Mutex<Cell>>>,
}

/// One request in flight; dropping it ends the activity.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.active -= 1;
        if state.active == 0 {
            state.idle_since = Instant::now();
        }
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                active: 0,
                served: false,
                idle_since: Instant::now(),
                streams: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enter(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.active += 1;
        state.served = true;
        drop(state);
        InFlight(Arc::clone(self))
    }

    /// The response with its body tied to `guard`; event streams are also watched for stalls.
    fn track(&self, response: Response<Body>, guard: InFlight) -> Response<Body> {
        let streaming = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let (parts, body) = response.into_parts();
        let cell = Arc::new(Mutex::new(Cell {
            body: Some((body, guard)),
            handed_at: None,
        }));
        if streaming {
            let mut state = self.lock();
            state.streams.retain(|w| w.strong_count() > 0);
            state.streams.push(Arc::downgrade(&cell));
        }
        Response::from_parts(parts, Body::new(Tracked(cell)))
    }

    /// Whether a request has begun on this connection.
    fn has_served(&self) -> bool {
        self.lock().served
    }

    /// How long nothing has been in flight (zero while something is).
    fn idle_for(&self) -> Duration {
        let state = self.lock();
        if state.active > 0 {
            return Duration::ZERO;
        }
        state.idle_since.elapsed()
    }

    /// Drops the bodies of streams that handed out a frame the client has not taken for
    /// `limit` (hyper polls a body again only once its last frame went out).
    fn reap_stalled(&self, limit: Duration) {
        let streams: Vec<_> = self
            .lock()
            .streams
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for cell in streams {
            let mut cell = lock_cell(&cell);
            if cell.handed_at.is_some_and(|at| at.elapsed() >= limit) && cell.body.is_some() {
                tracing::debug!("dropping an HTTP/2 stream whose client took no bytes");
                cell.body = None;
            }
        }
    }
}

/// A response body and its in-flight guard, shared with the watchdog.
#[derive(Debug)]
struct Cell {
    body: Option<(Body, InFlight)>,
    /// When the body last handed a frame out (cleared when hyper asks for the next one).
    handed_at: Option<Instant>,
}

fn lock_cell(cell: &Mutex<Cell>) -> MutexGuard<'_, Cell> {
    cell.lock().unwrap_or_else(|p| p.into_inner())
}

/// The body hyper sends: the handler's body, until it ends or the watchdog drops it.
struct Tracked(Arc<Mutex<Cell>>);

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut cell = lock_cell(&self.0);
        cell.handed_at = None;
        let Some((body, _)) = cell.body.as_mut() else {
            return Poll::Ready(None);
        };
        let poll = Pin::new(body).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(_))) => cell.handed_at = Some(Instant::now()),
            Poll::Ready(None | Some(Err(_))) => cell.body = None,
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        lock_cell(&self.0)
            .body
            .as_ref()
            .is_none_or(|(body, _)| body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        lock_cell(&self.0)
            .body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |(body, _)| body.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle stream pays for its connection task's future, whole: keep it small (a
    /// buffer or a large future held inline here once cost 4 KiB per stream; the request's
    /// locals, kept by the compiler for the stream's whole life until they moved into a boxed
    /// future of their own, 880 bytes; `async fn` arguments kept twice, 360 bytes; an unboxed
    /// TLS handshake, 512 bytes; a `readable()` future beside the session's, 150 bytes; a wait
    /// on the shutdown token beside the wait for events, 80 bytes). Tokio adds ~104 bytes of
    /// task header and rounds the whole up to 128: at 920 bytes or less the task takes 1,024
    /// (valgrind's massif over idle streams shows each allocation).
    /// Check with `RUSTC_BOOTSTRAP=1 cargo rustc --release --lib -- -Zprint-type-sizes`.
    #[tokio::test]
    async fn the_connection_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (socket, peer) = listener.accept().await.unwrap();
        let config = crate::Config::with_bind(addr);
        let app = crate::app::in_memory(config).unwrap();
        let router = crate::http::router(app.clone());
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .acquire_owned()
            .await
            .unwrap();
        let client = crate::quota::Quota::new(1).enter(peer.ip());
        let task = serve(socket, router, app, (permit, client));
        let size = std::mem::size_of_val(&task);
        assert!(size <= 920, "the connection future is {size} bytes");
    }
}
