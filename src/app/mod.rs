//! The application: the wiring (a configuration made into a server's state, `wiring`), the
//! app factory and the accept loop.
//!
//! [`build`] is the Rust counterpart of the seed's `create_app()`; [`serve`] runs it on a bound
//! listener until a shutdown future resolves, then ends every stream with its `close` event and
//! waits for connections to finish, up to a deadline. The loop holds the connection caps (in
//! all and per client address); what happens on one connection is `transport`'s business.

mod wiring;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use self::wiring::{connect, in_memory, with_hub, StartError};
use crate::error::ApiError;
pub use crate::ops::AppState;
use crate::quota::Quota;

/// The whole application for `state`: every route, ready to serve or to test with `oneshot`.
pub fn build(state: AppState) -> Router {
    crate::http::router(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then shuts down gracefully: new
/// connections are refused, every open stream sends `close` and ends, and connections get
/// `config.shutdown_grace` to finish before they are dropped.
///
/// # Errors
/// Only when the listener fails in a way that retrying cannot fix.
///
/// # Examples
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use ssehub::{app, Config};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let config = Config::with_bind(listener.local_addr()?);
/// let state = app::in_memory(config).map_err(std::io::Error::other)?;
/// app::serve(listener, state, async {
///     tokio::signal::ctrl_c().await.ok();
/// })
/// .await
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = build(state.clone());
    let config = state.config().clone();
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = crate::tls::Tls::new(cert, key).map_err(std::io::Error::other)?;
            tokio::spawn(tls.clone().watch());
            Some(tls)
        }
        _ => None,
    };
    let connection_cap = config.connection_cap();
    let limit = Arc::new(Semaphore::new(connection_cap));
    let per_client = config.max_connections_per_client.map(Quota::new);
    let mut connections = JoinSet::new();
    let maintenance = tokio::spawn(maintain(state.clone()));
    tokio::pin!(shutdown);
    tracing::info!(
        addr = %listener.local_addr()?,
        broker = state.hub().broker().name(),
        max_connections = connection_cap,
        max_streams = state.stream_cap(),
        open_file_limit = crate::config::open_file_limit(),
        max_connections_per_client = ?config.max_connections_per_client,
        "listening"
    );
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && !state.auth().guards_publishing() {
        tracing::warn!(%addr, "listening beyond loopback with no publisher key: anyone who can reach this port can publish (set --publisher-jwt-key or --jwt-key)");
    }
    if tls.is_some() {
        tracing::info!(%addr, "serving HTTPS (h2 and http/1.1)");
    }
    if let Some(metrics) = config.metrics_bind {
        let metrics = TcpListener::bind(metrics).await?;
        tracing::info!(addr = %metrics.local_addr()?, "serving metrics");
        tokio::spawn(serve_metrics(metrics, state.clone()));
    }
    if let Some(redirect) = config.redirect_http {
        let plain = TcpListener::bind(redirect).await?;
        tracing::info!(addr = %plain.local_addr()?, "redirecting HTTP to HTTPS");
        tokio::spawn(crate::tls::redirect(
            plain,
            addr.port(),
            state.shutdown_token(),
        ));
    }
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let client = match &per_client {
            Some(quota) => match quota.enter(peer.ip()) {
                Some(client) => Some(client),
                None => {
                    connections.spawn(refuse(socket, ApiError::TooManyConnections));
                    continue;
                }
            },
            None => None,
        };
        let router = router.clone();
        let state = state.clone();
        let held = (permit, client);
        match &tls {
            #[cfg(feature = "tls")]
            Some(tls) => {
                let acceptor = tls.acceptor().clone();
                let serve =
                    crate::transport::serve_tls(socket, peer, router, state, acceptor, held);
                connections.spawn(serve);
            }
            #[cfg(not(feature = "tls"))]
            Some(tls) => match *tls {},
            None => {
                connections.spawn(crate::transport::serve(socket, router, state, held));
            }
        }
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: closing streams"
    );
    state.begin_shutdown();
    maintenance.abort();
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = connections.len(),
            grace = ?config.shutdown_grace,
            "shutdown grace period ran out; dropping connections"
        );
        connections.shutdown().await;
    }
    state.hub().broker().close();
    tracing::info!("shutdown complete");
    Ok(())
}

/// Answers a connection that may not be served with `error` and closes it, without reading.
async fn refuse(mut socket: TcpStream, error: ApiError) {
    crate::io::answer_and_close(&mut socket, &error.http1_bytes(), Duration::from_secs(1)).await;
}

/// Housekeeping once a second: expire history, start a new second of the topics' event
/// counts, fold histogram samples into their buckets.
async fn maintain(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        state.hub().broker().maintain();
        state.hub().tick();
        state.metrics().upkeep();
        state.pattern_budget().reclaim();
    }
}

/// Connections the `--metrics-bind` listener serves at once (a scraper needs one or two).
const METRICS_CONNECTIONS: usize = 16;

/// Serves `GET /metrics` alone on its own listener until shutdown starts.
async fn serve_metrics(listener: TcpListener, state: AppState) {
    let router = crate::http::metrics_router(state.clone());
    let limit = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    let stop = state.shutdown_token();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (socket, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (router, state) = (router.clone(), state.clone());
        tokio::spawn(async move {
            crate::transport::serve_plain(socket, peer, router, state).await;
            drop(permit);
        });
    }
}
