//! Wiring: a [`Config`] made into a running server's [`AppState`]. Here, and only here, the
//! parts are chosen and joined: the broker the configuration names (memory, the journal of
//! `--data-dir`, Redis, Sentinel or a Cluster), the hub over it, the token keys, the metrics.
//! The HTTP layer receives them built and never decides which ones exist.

use std::sync::Arc;

use crate::auth::{Auth, KeyError};
use crate::broker::durable::{Fsync, Journal};
use crate::broker::memory::Limits;
use crate::broker::BrokerError;
use crate::config::{Config, ConfigError};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::ops::AppState;

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

/// A server for `config` on the in-memory broker (with its journal when `--data-dir` is set),
/// whatever `config.broker` says; [`connect`] honours it.
///
/// # Errors
/// When a configuration value cannot work (see [`Config::validate`]), the journal cannot be
/// opened, or a key cannot be loaded.
pub fn in_memory(config: Config) -> Result<AppState, StartError> {
    config.validate()?;
    let limits = memory_limits(&config);
    let hub = match &config.data_dir {
        None => Hub::memory(limits, config.queue),
        Some(dir) => {
            let (journal, restored) = Journal::open(dir, config.fsync)?;
            tracing::info!(dir = %dir.display(), events = restored.len(), fsync = ?config.fsync, "history restored");
            if config.fsync == Fsync::Interval && tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(Arc::clone(&journal).sync_forever());
            }
            Hub::durable(limits, config.queue, journal, restored)
        }
    };
    with_hub(config, hub)
}

/// A server for `config` on the broker it names: Redis (a single server, Sentinel or a
/// Cluster) when `config.broker` is set, connecting to it first; else [`in_memory`].
///
/// # Errors
/// When a configuration value cannot work, Redis cannot be reached, or a key cannot be loaded.
pub async fn connect(config: Config) -> Result<AppState, StartError> {
    config.validate()?;
    let Some(url) = config.broker.clone() else {
        return in_memory(config);
    };
    redis(config, url).await
}

/// A server on Redis (the `redis` feature).
#[cfg(feature = "redis")]
async fn redis(config: Config, url: String) -> Result<AppState, StartError> {
    use crate::broker::redis::{is_cluster, is_sentinel, RedisBroker, RedisSettings};
    use crate::hub::Fanout;
    let fanout = Arc::new(Fanout::new(config.queue, config.max_topics));
    let metrics = Metrics::new();
    let ca = match &config.redis_ca {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|err| BrokerError::Setup(format!("reading {}: {err}", path.display())))?,
        ),
        None => None,
    };
    let replicated = is_sentinel(&url) || is_cluster(&url);
    let settings = RedisSettings {
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
    let broker = RedisBroker::connect(settings, fanout.clone()).await?;
    assemble(config, Hub::new(fanout, broker), metrics)
}

/// A build without the `redis` feature refuses `--broker` at start.
#[cfg(not(feature = "redis"))]
#[allow(clippy::unused_async)]
async fn redis(_config: Config, _url: String) -> Result<AppState, StartError> {
    Err(BrokerError::Setup("--broker needs ssehub built with the `redis` feature".into()).into())
}

/// A server for `config` on a hub built elsewhere (another broker, a test's).
///
/// # Errors
/// When a configuration value cannot work or a key cannot be loaded.
pub fn with_hub(config: Config, hub: Hub) -> Result<AppState, StartError> {
    assemble(config, hub, Metrics::new())
}

fn assemble(config: Config, hub: Hub, metrics: Metrics) -> Result<AppState, StartError> {
    config.validate()?;
    let auth = Auth::from_config(&config.auth)?;
    hub.set_max_broad_patterns(config.max_broad_patterns);
    Ok(AppState::from_parts(config, hub, auth, metrics))
}

fn memory_limits(config: &Config) -> Limits {
    Limits {
        history: config.history,
        max_age: config.history_age,
        max_bytes: config.history_bytes,
        max_topics: config.max_topics,
    }
}
