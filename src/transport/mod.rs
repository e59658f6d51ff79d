//! How bytes arrive: one client connection, from its first byte to its close, with a deadline
//! on every phase, served by the hand-written HTTP/1 path ([`direct`]) or by hyper with the
//! axum router. Both end in the same operations (`ops`).
//!
//! 1. The request head (HTTP/1) or connection preface (HTTP/2) must arrive within
//!    `--header-timeout`; the direct path ([`direct`]) reads it and serves streams and plain
//!    publishes itself, and hands anything else to hyper with the bytes it read.
//! 2. Under hyper: a kept-alive HTTP/1 connection's next request head gets `--idle-timeout`; a body gets
//!    `--body-timeout` (in `http::body`); HTTP/2 connections are pinged every half
//!    `--idle-timeout` and dropped when a ping goes unanswered.
//! 3. A connection with no request in flight for `--idle-timeout` is closed (HTTP/1 keep-alive,
//!    HTTP/2 with no open stream, or whose client never finishes a request's headers).
//! 4. A response whose client takes no bytes for `--write-timeout` is ended: on HTTP/1 the
//!    socket watchdog fails the write; on HTTP/2, where one stream can be stalled by flow control
//!    while the socket is fine, the stream's body is dropped (freeing its stream slot and queue)
//!    so it no longer counts as activity.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpStream;

pub(crate) mod direct;
mod via_hyper;

use self::direct::Outcome;
use self::via_hyper::serve_with_hyper;
use crate::ops::AppState;

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
#[cfg(feature = "tls")]
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
        let permit = std::sync::Arc::new(tokio::sync::Semaphore::new(1))
            .acquire_owned()
            .await
            .unwrap();
        let client = crate::quota::Quota::new(1).enter(peer.ip());
        let task = serve(socket, router, app, (permit, client));
        let size = std::mem::size_of_val(&task);
        assert!(size <= 920, "the connection future is {size} bytes");
    }
}
