//! The application: shared state (a cheap `Clone` handle), the app factory and the server loop.
//!
//! [`build`] is the Rust counterpart of the seed's `create_app()`; [`serve`] runs it on a bound
//! listener until a shutdown future resolves, then ends every stream with its `close` event and
//! waits for connections to finish, up to a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::memory::Limits;
use crate::config::Config;
use crate::http::direct::{self, Outcome, Rewind};
use crate::http::input;
use crate::hub::Hub;
use crate::io::WriteWatchdog;
use crate::session::Settings;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of one server. Clone freely: it is one `Arc`.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    hub: Hub,
    settings: Arc<Settings>,
    streams: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    started: Instant,
}

impl AppState {
    /// State for `config` on the in-memory broker.
    pub fn new(config: Config) -> Self {
        let hub = Hub::memory(
            Limits {
                history: config.history,
                max_age: config.history_age,
                max_topics: config.max_topics,
            },
            config.queue,
        );
        Self::with_hub(config, hub)
    }

    /// State for `config` on the broker it names: Redis when `config.broker` is set (connecting
    /// to it first), else in memory.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn connect(config: Config) -> Result<Self, crate::broker::BrokerError> {
        let Some(url) = config.broker.clone() else {
            return Ok(Self::new(config));
        };
        let fanout = Arc::new(crate::hub::Fanout::new(config.queue));
        let ca = match &config.redis_ca {
            Some(path) => Some(std::fs::read(path).map_err(|err| {
                crate::broker::BrokerError::Setup(format!("reading {}: {err}", path.display()))
            })?),
            None => None,
        };
        let settings = crate::broker::redis::RedisSettings {
            url,
            ca,
            prefix: config.redis_prefix.clone(),
            history: config.history,
            max_age: config.history_age,
            timeout: config.broker_timeout,
        };
        let broker =
            crate::broker::redis::RedisBroker::connect(settings, Arc::clone(&fanout)).await?;
        Ok(Self::with_hub(config, Hub::new(fanout, broker)))
    }

    /// State for `config` on a hub built elsewhere (another broker).
    pub fn with_hub(config: Config, hub: Hub) -> Self {
        let settings = Arc::new(Settings {
            repeats: config.repeats,
            interval: config.interval,
            heartbeat: config.heartbeat,
            retry_ms: config.retry_ms,
        });
        Self {
            inner: Arc::new(Inner {
                config,
                hub,
                settings,
                streams: Arc::new(AtomicUsize::new(0)),
                shutdown: CancellationToken::new(),
                started: Instant::now(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Time since the state was made.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.inner.streams.load(Ordering::Relaxed)
    }

    /// Whether shutdown has started.
    pub fn shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    pub(crate) fn stream_count(&self) -> &Arc<AtomicUsize> {
        &self.inner.streams
    }

    pub(crate) fn session_settings(&self) -> Arc<Settings> {
        Arc::clone(&self.inner.settings)
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    pub(crate) fn input_limits(&self) -> input::Limits {
        input::Limits {
            body: self.inner.config.body_limit,
            message: self.inner.config.max_message,
        }
    }

    /// Most events replayed to one resuming stream.
    pub(crate) fn replay_limit(&self) -> usize {
        let config = &self.inner.config;
        config
            .history
            .saturating_mul(config.max_topics_per_stream)
            .clamp(1, 100_000)
    }
}

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
/// app::serve(listener, app::AppState::new(config), async {
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
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let mut connections = JoinSet::new();
    let stop = state.shutdown_token();
    let maintenance = tokio::spawn(maintain(state.clone()));
    tokio::pin!(shutdown);
    tracing::info!(addr = %listener.local_addr()?, broker = state.hub().broker().name(), "listening");
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
        let router = router.clone();
        let state = state.clone();
        connections.spawn(async move {
            serve_connection(socket, peer, router, state).await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: closing streams"
    );
    stop.cancel();
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
    tracing::info!("shutdown complete");
    Ok(())
}

async fn serve_connection(
    mut socket: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    state: AppState,
) {
    // Events are small and latency matters more than packet count.
    let _ = socket.set_nodelay(true);
    let write_timeout = state.config().write_timeout;
    let served = direct::serve(&mut socket, &state, HEADER_READ_TIMEOUT, write_timeout).await;
    let prefix = match served {
        Ok(Outcome::Fallback(prefix)) => prefix,
        Ok(Outcome::Served) => return,
        Err(err) => {
            tracing::debug!(%peer, %err, "stream connection ended with an error");
            return;
        }
    };
    // Boxed: the hyper connection is large, and this task's size is what every idle stream
    // (served above) pays for too.
    let stop = state.shutdown_token();
    Box::pin(serve_with_hyper(
        socket,
        prefix,
        peer,
        router,
        stop,
        write_timeout,
    ))
    .await;
}

async fn serve_with_hyper(
    socket: tokio::net::TcpStream,
    prefix: Vec<u8>,
    peer: SocketAddr,
    router: Router,
    stop: CancellationToken,
    write_timeout: Duration,
) {
    let io = TokioIo::new(Rewind::new(
        prefix,
        WriteWatchdog::new(socket, write_timeout),
    ));
    let service = TowerToHyperService::new(router);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, %err, "connection ended with an error");
    }
}

/// Housekeeping once a second: expire history.
async fn maintain(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        state.hub().broker().maintain();
    }
}
