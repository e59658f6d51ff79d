//! A connection served by hyper (HTTP/2, TLS, and whatever the direct path hands over), with
//! the deadlines hyper itself does not keep: the idle timeout counted from the last request or
//! stream in flight, and HTTP/2 streams whose client stops reading dropped after
//! `--write-timeout`.

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
use tokio::time::Instant;
use tower::ServiceExt;

use super::direct::Rewind;
use super::{CLOSE_WAIT, MAX_H2_STREAMS, PING_TIMEOUT};
use crate::io::WriteWatchdog;
use crate::ops::meta::ClientAddr;
use crate::ops::AppState;

/// `head_read`: the first request's head was read already (the direct path's fallback); else
/// it must arrive within `--header-timeout`.
pub(super) async fn serve_with_hyper<S>(
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
