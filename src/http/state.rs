//! The state every handler shares: configuration, the hub, stream accounting, shutdown.
//!
//! It lives with the HTTP layer because only the HTTP layer uses it; the server loop
//! (`app`) builds on it, never the reverse.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;

use super::cors::Cors;
use super::input;
use crate::auth::{Auth, KeyError};
use crate::broker::durable::{Fsync, Journal};
use crate::broker::memory::Limits;
use crate::broker::BrokerError;
use crate::broker::ReplayLimit;
use crate::config::{Config, ConfigError};
use crate::hub::{Fanout, Hub};
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::session::{Pacer, Settings};
use crate::topic::budget::{PatternBudget, Spend};

/// Most events one resume replays.
const MAX_REPLAY_EVENTS: usize = 10_000;
/// Most bytes (event weights) one resume replays.
const MAX_REPLAY_BYTES: usize = 8 << 20;

/// Why a server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The broker cannot be reached or set up.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A JWT key cannot be loaded.
    #[error("JWT key: {0}")]
    Key(#[from] KeyError),
}

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
    stream_cap: usize,
    auth: Auth,
    cors: Cors,
    streams_per_client: Option<Quota<std::net::IpAddr>>,
    streams_per_subject: Option<Quota<String>>,
    subscriptions: super::subscriptions::Shared,
    console_tables: super::topics_stream::TableCache,
    shutdown: Shutdown,
    started: Instant,
    metrics: Metrics,
    /// Bytes of compiled subscription patterns held, against `--max-pattern-bytes`.
    patterns: Arc<PatternBudget>,
    /// Where subscriptions' patterns wait their turn to compile.
    compiler: super::mercure::selectors::Compiler,
}

impl AppState {
    /// State for `config` on the in-memory broker.
    ///
    /// # Errors
    /// When a configuration value cannot work (see [`Config::validate`]).
    pub fn new(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let limits = Self::memory_limits(&config);
        let hub = match &config.data_dir {
            None => Hub::memory(limits, config.queue),
            Some(dir) => {
                let (journal, restored) = Journal::open(dir, config.fsync)?;
                tracing::info!(dir = %dir.display(), events = restored.len(), fsync = ?config.fsync, "history restored");
                if config.fsync == Fsync::Interval && tokio::runtime::Handle::try_current().is_ok()
                {
                    tokio::spawn(Arc::clone(&journal).sync_forever());
                }
                Hub::durable(limits, config.queue, journal, restored)
            }
        };
        Self::with_hub(config, hub)
    }

    fn memory_limits(config: &Config) -> Limits {
        Limits {
            history: config.history,
            max_age: config.history_age,
            max_bytes: config.history_bytes,
            max_topics: config.max_topics,
        }
    }

    /// State for `config` on the broker it names: Redis when `config.broker` is set (connecting
    /// to it first), else in memory.
    ///
    /// # Errors
    /// When a configuration value cannot work or Redis cannot be reached.
    pub async fn connect(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let Some(url) = config.broker.clone() else {
            return Self::new(config);
        };
        let fanout = Arc::new(Fanout::new(config.queue, config.max_topics));
        let metrics = Metrics::new();
        let ca =
            match &config.redis_ca {
                Some(path) => Some(std::fs::read(path).map_err(|err| {
                    BrokerError::Setup(format!("reading {}: {err}", path.display()))
                })?),
                None => None,
            };
        let replicated = url.starts_with(crate::broker::redis::SENTINEL_SCHEME)
            || url.starts_with(crate::broker::redis::CLUSTER_SCHEME);
        let settings = crate::broker::redis::RedisSettings {
            min_replicas: config.redis_min_replicas.unwrap_or(usize::from(replicated)),
            partitions: usize::from(config.partitions),
            url,
            ca,
            prefix: config.redis_prefix.clone(),
            history: config.history,
            max_age: config.history_age,
            timeout: config.broker_timeout,
            round_trip: metrics.redis_round_trip(),
        };
        let broker = crate::broker::redis::RedisBroker::connect(settings, fanout.clone()).await?;
        Self::assemble(config, Hub::new(fanout, broker), metrics)
    }

    /// State for `config` on a hub built elsewhere (another broker).
    ///
    /// # Errors
    /// When a configuration value cannot work.
    pub fn with_hub(config: Config, hub: Hub) -> Result<Self, StartError> {
        Self::assemble(config, hub, Metrics::new())
    }

    fn assemble(config: Config, hub: Hub, metrics: Metrics) -> Result<Self, StartError> {
        config.validate()?;
        let settings = Arc::new(Settings {
            repeats: config.repeats,
            interval: config.interval,
            heartbeat: config.heartbeat,
            retry_ms: config.retry_ms,
            // The spread must end well within the grace period, whatever was configured.
            drain_spread: config.drain_spread.min(config.shutdown_grace / 2),
            shutdown_grace: config.shutdown_grace,
            pacer: Pacer::new(config.burst_pace),
        });
        let auth = Auth::from_config(&config.auth)?;
        hub.set_max_broad_patterns(config.max_broad_patterns);
        let patterns = PatternBudget::new(config.max_pattern_bytes);
        Ok(Self {
            inner: Arc::new(Inner {
                stream_cap: config.stream_cap(),
                auth,
                cors: Cors::new(&config.auth.cors_origins),
                streams_per_client: config.auth.max_streams_per_client.map(Quota::new),
                streams_per_subject: config.auth.max_streams_per_subject.map(Quota::new),
                subscriptions: Arc::default(),
                console_tables: Default::default(),
                config,
                hub,
                settings,
                streams: Arc::new(AtomicUsize::new(0)),
                shutdown: Shutdown::new(),
                started: Instant::now(),
                metrics,
                patterns,
                compiler: Default::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Time since the state was made.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.inner.streams.load(Ordering::Relaxed)
    }

    /// The parts of a hyper-path request the handlers read, with the scheme this server
    /// serves (TLS or not).
    pub(crate) fn request_meta(
        &self,
        headers: &axum::http::HeaderMap,
        uri: &axum::http::Uri,
        peer: Option<std::net::IpAddr>,
    ) -> super::request::RequestMeta {
        super::request::RequestMeta::from_headers(headers, uri, peer)
            .secure(self.config().tls_cert.is_some())
    }

    /// What one subscription's patterns may compile: its own allowance and the hub's budget.
    pub(crate) fn pattern_spend(&self) -> Spend {
        Spend::new(
            &self.inner.patterns,
            self.inner.config.max_pattern_bytes_per_stream,
        )
    }

    /// The hub's pattern budget.
    pub fn pattern_budget(&self) -> &Arc<PatternBudget> {
        &self.inner.patterns
    }

    pub(crate) fn compiler(&self) -> &super::mercure::selectors::Compiler {
        &self.inner.compiler
    }

    /// The authorization model.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    pub(crate) fn cors(&self) -> &Cors {
        &self.inner.cors
    }

    pub(crate) fn subscriptions(&self) -> &super::subscriptions::Registry {
        &self.inner.subscriptions
    }

    /// The topic table shared by the console streams (`GET /api/topics/stream`).
    pub(crate) fn console_tables(&self) -> &super::topics_stream::TableCache {
        &self.inner.console_tables
    }

    pub(crate) fn streams_per_client(&self) -> Option<&Quota<std::net::IpAddr>> {
        self.inner.streams_per_client.as_ref()
    }

    pub(crate) fn streams_per_subject(&self) -> Option<&Quota<String>> {
        self.inner.streams_per_subject.as_ref()
    }

    /// Streams that may be open at once.
    pub fn stream_cap(&self) -> usize {
        self.inner.stream_cap
    }

    /// Whether shutdown has started.
    pub fn shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Starts shutdown: every stream sends `close` and ends.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.cancel();
        // Streams waiting for events check the token when woken (no wait of their own on it).
        self.inner.hub.wake_all();
    }

    pub(crate) fn stream_count(&self) -> &Arc<AtomicUsize> {
        &self.inner.streams
    }

    pub(crate) fn session_settings(&self) -> Arc<Settings> {
        Arc::clone(&self.inner.settings)
    }

    /// Cancelled when shutdown starts.
    pub fn shutdown_token(&self) -> Shutdown {
        self.inner.shutdown.clone()
    }

    pub(crate) fn input_limits(&self) -> input::Limits {
        input::Limits {
            body: self.inner.config.body_limit,
            message: self.inner.config.max_message,
            timeout: self.inner.config.body_timeout,
        }
    }

    /// What one resuming stream may replay.
    pub(crate) fn replay_limit(&self) -> ReplayLimit {
        let config = &self.inner.config;
        ReplayLimit {
            events: config
                .history
                .saturating_mul(config.max_topics_per_stream)
                .clamp(1, MAX_REPLAY_EVENTS),
            bytes: MAX_REPLAY_BYTES,
        }
    }
}
