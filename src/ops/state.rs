//! The state every request shares: configuration, the hub, stream accounting, shutdown.
//!
//! It lives with the operations, which read it; the transports and the axum handlers pass it
//! to them, and `app::wiring` builds it. Nothing below `ops` sees it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;

use super::cors::Cors;
use super::input;
use crate::auth::Auth;
use crate::broker::ReplayLimit;
use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::session::{Pacer, Settings};
use crate::topic::budget::{PatternBudget, Spend};

/// Most events one resume replays.
const MAX_REPLAY_EVENTS: usize = 10_000;
/// Most bytes (event weights) one resume replays.
const MAX_REPLAY_BYTES: usize = 8 << 20;

/// Shared state of one server: what every handler, the direct HTTP/1 path, the connection
/// task and the accept loop read. Clone freely: it is one `Arc`. Built by `app::wiring`, which
/// chooses the broker and hub; this module only derives what HTTP needs from the configuration.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The configuration the server runs with (validated).
    config: Config,
    /// The hub: the local fan-out joined with the broker.
    hub: Hub,
    /// What a session needs of the configuration (repeats, interval, heartbeat, drain), shared
    /// by every stream so a session holds one pointer.
    settings: Arc<Settings>,
    /// Open streams on this server, against `stream_cap`.
    streams: Arc<AtomicUsize>,
    /// Most streams at once (`--max-streams`, or what the open-file limit allows).
    stream_cap: usize,
    /// Token keys and rules: who may publish and read.
    auth: Auth,
    /// The origins allowed by `--cors-origins`.
    cors: Cors,
    /// Streams per client address (`--max-streams-per-client`), when capped.
    streams_per_client: Option<Quota<std::net::IpAddr>>,
    /// Streams per token subject (`--max-streams-per-subject`), when capped.
    streams_per_subject: Option<Quota<String>>,
    /// The Mercure subscriptions open on this server, for the subscriptions API and its events.
    subscriptions: super::subscriptions::Shared,
    /// The hub console's topic tables, rendered once per change for every console feed.
    console_tables: super::console::TableCache,
    /// Subscribe tickets, when the broker shares none between nodes (see `ops::tickets`).
    local_tickets: super::tickets::LocalTickets,
    /// The shutdown signal every connection and stream watches.
    shutdown: Shutdown,
    /// When the server started (uptime in `/api/ready` and the metrics).
    started: Instant,
    /// This server's Prometheus recorder and cached handles.
    metrics: Metrics,
    /// Bytes of compiled subscription patterns held, against `--max-pattern-bytes`.
    patterns: Arc<PatternBudget>,
    /// Where subscriptions' patterns wait their turn to compile.
    compiler: super::mercure::selectors::Compiler,
}

impl AppState {
    /// The state of a server running `config` (validated) on `hub`, with `auth` and `metrics`
    /// built for it: `app::wiring` calls this once the parts are chosen.
    pub(crate) fn from_parts(config: Config, hub: Hub, auth: Auth, metrics: Metrics) -> Self {
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
        let patterns = PatternBudget::new(config.max_pattern_bytes);
        Self {
            inner: Arc::new(Inner {
                stream_cap: config.stream_cap(),
                auth,
                cors: Cors::new(&config.auth.cors_origins),
                streams_per_client: config.auth.max_streams_per_client.map(Quota::new),
                streams_per_subject: config.auth.max_streams_per_subject.map(Quota::new),
                subscriptions: Arc::default(),
                console_tables: Default::default(),
                local_tickets: Default::default(),
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
    pub(crate) fn console_tables(&self) -> &super::console::TableCache {
        &self.inner.console_tables
    }

    /// This node's subscribe tickets (used when the broker has no shared store).
    pub(crate) fn local_tickets(&self) -> &super::tickets::LocalTickets {
        &self.inner.local_tickets
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
