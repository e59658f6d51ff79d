//! Command line and environment configuration.
//!
//! Every flag has an environment twin (`SSEHUB_*`) so the same binary is configured the same way
//! from a shell, a unit file or a container. Defaults are named constants so the README, `--help`
//! and the tests agree on them. [`Config::validate`] runs before anything binds a socket.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Default listen address: every interface, port 8000 (the seed's port).
pub const DEFAULT_BIND: &str = "0.0.0.0:8000";
/// How many times a burst stream repeats each message (the seed's 3).
pub const DEFAULT_REPEATS: u32 = 3;
/// Pause between two repeats of a burst (the seed's 1 s).
pub const DEFAULT_INTERVAL: &str = "1s";
/// Largest accepted request body.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Largest accepted message text.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024;
/// Comment sent on idle live streams so proxies keep them open.
pub const DEFAULT_HEARTBEAT: &str = "15s";
/// Events kept per topic for resume.
pub const DEFAULT_HISTORY: usize = 1000;
/// Age after which an event leaves history.
pub const DEFAULT_HISTORY_AGE: &str = "1h";
/// Events a subscriber may fall behind before it is disconnected (it can resume from history).
pub const DEFAULT_QUEUE: usize = 1024;
/// Concurrent SSE streams; one more gets 503 with `Retry-After`.
pub const DEFAULT_MAX_STREAMS: usize = 18_000;
/// Concurrent TCP connections; past it the server stops accepting until one closes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 19_000;
/// Topics (or patterns) a single stream may subscribe to.
pub const DEFAULT_MAX_TOPICS_PER_STREAM: usize = 16;
/// Topics the hub keeps at once.
pub const DEFAULT_MAX_TOPICS: usize = 10_000;
/// `retry:` hint sent at the start of live streams, in milliseconds.
pub const DEFAULT_RETRY_MS: u64 = 2000;
/// How long shutdown waits for connections to finish before it drops them.
pub const DEFAULT_SHUTDOWN_GRACE: &str = "5s";
/// How long a connection may stay unable to take bytes before it is dropped.
pub const DEFAULT_WRITE_TIMEOUT: &str = "30s";
/// Prefix of every Redis key and channel ssehub uses.
pub const DEFAULT_REDIS_PREFIX: &str = "ssehub:";
/// Longest wait for one broker command; a publish past it answers 503.
pub const DEFAULT_BROKER_TIMEOUT: &str = "2s";

/// `ssehub`: a Server-Sent Events hub. With no subcommand it serves.
#[derive(Debug, Parser)]
#[command(name = "ssehub", version, about, long_about = None)]
pub struct Cli {
    /// What to run; none means `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or per-module directives
    /// such as `ssehub=debug,hyper=warn`. `info` logs every request; use `warn` under heavy load.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info", global = true)]
    pub log: String,
    /// The server's settings, when no subcommand is given.
    #[command(flatten)]
    pub serve: Config,
}

/// Subcommands beside the default `serve`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (the default when no subcommand is given).
    Serve(Config),
}

/// Everything the server needs to run.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on. Use 127.0.0.1:PORT to stay local, 0.0.0.0:PORT to serve the network.
    #[arg(long, env = "SSEHUB_BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,

    /// How many times a burst stream (`GET /stream`, the seed's mode) sends each message.
    #[arg(long, env = "SSEHUB_REPEATS", default_value_t = DEFAULT_REPEATS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeats: u32,

    /// Pause between repeats of a burst, e.g. `1s`, `250ms`.
    #[arg(long, env = "SSEHUB_INTERVAL", default_value = DEFAULT_INTERVAL, value_parser = parse_duration)]
    pub interval: Duration,

    /// Largest request body in bytes; larger bodies get 413.
    #[arg(long, env = "SSEHUB_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

    /// Largest message text in bytes; longer messages get 413.
    #[arg(long, env = "SSEHUB_MAX_MESSAGE", default_value_t = DEFAULT_MAX_MESSAGE)]
    pub max_message: usize,

    /// Interval of the heartbeat comment on live streams, e.g. `15s`. Keep it below your proxies' idle timeout.
    #[arg(long, env = "SSEHUB_HEARTBEAT", default_value = DEFAULT_HEARTBEAT, value_parser = parse_duration)]
    pub heartbeat: Duration,

    /// Events kept per topic for `Last-Event-ID` resume (0 turns history off).
    #[arg(long, env = "SSEHUB_HISTORY", default_value_t = DEFAULT_HISTORY)]
    pub history: usize,

    /// Age after which an event leaves history, e.g. `1h`, `10m`.
    #[arg(long, env = "SSEHUB_HISTORY_AGE", default_value = DEFAULT_HISTORY_AGE, value_parser = parse_duration)]
    pub history_age: Duration,

    /// Events a stream may fall behind before it is disconnected (it then resumes from history).
    #[arg(long, env = "SSEHUB_QUEUE", default_value_t = DEFAULT_QUEUE)]
    pub queue: usize,

    /// Concurrent SSE streams; past it `GET /stream` answers 503 with `Retry-After`.
    #[arg(long, env = "SSEHUB_MAX_STREAMS", default_value_t = DEFAULT_MAX_STREAMS)]
    pub max_streams: usize,

    /// Concurrent TCP connections; past it the server waits for one to close before accepting.
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Topic patterns one stream may subscribe to.
    #[arg(long, env = "SSEHUB_MAX_TOPICS_PER_STREAM", default_value_t = DEFAULT_MAX_TOPICS_PER_STREAM)]
    pub max_topics_per_stream: usize,

    /// Topics the hub holds at once; publishing to a new topic past it answers 503.
    #[arg(long, env = "SSEHUB_MAX_TOPICS", default_value_t = DEFAULT_MAX_TOPICS)]
    pub max_topics: usize,

    /// `retry:` hint (milliseconds) sent at the start of live streams.
    #[arg(long, env = "SSEHUB_RETRY_MS", default_value_t = DEFAULT_RETRY_MS)]
    pub retry_ms: u64,

    /// How long shutdown waits for open connections before dropping them.
    #[arg(long, env = "SSEHUB_SHUTDOWN_GRACE", default_value = DEFAULT_SHUTDOWN_GRACE, value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// How long a connection may refuse bytes (a dead or stalled client) before it is dropped.
    #[arg(long, env = "SSEHUB_WRITE_TIMEOUT", default_value = DEFAULT_WRITE_TIMEOUT, value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Run as a cluster node on Redis: `redis://[:password@]host:port/db` (`rediss://` for
    /// TLS). Every node given the same Redis and prefix forms one hub. Without it, the
    /// in-memory broker (a single node).
    #[arg(long, env = "SSEHUB_BROKER")]
    pub broker: Option<String>,

    /// PEM file of the certificate authority to trust for a `rediss://` broker (instead of the
    /// public roots): for a Redis with a certificate from a private CA.
    #[arg(long, env = "SSEHUB_REDIS_CA")]
    pub redis_ca: Option<std::path::PathBuf>,

    /// Prefix of every Redis key and channel; give separate hubs on one Redis different prefixes.
    #[arg(long, env = "SSEHUB_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,

    /// Longest wait for one Redis command, e.g. `2s`; a publish that cannot be stored within it
    /// answers 503.
    #[arg(long, env = "SSEHUB_BROKER_TIMEOUT", default_value = DEFAULT_BROKER_TIMEOUT, value_parser = parse_duration)]
    pub broker_timeout: Duration,
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// The defaults (what `ssehub` uses with no flags and no environment), bound to `bind`.
    pub fn with_bind(bind: SocketAddr) -> Self {
        let duration = |text| parse_duration(text).unwrap_or(Duration::from_secs(1));
        Self {
            bind,
            repeats: DEFAULT_REPEATS,
            interval: duration(DEFAULT_INTERVAL),
            body_limit: DEFAULT_BODY_LIMIT,
            max_message: DEFAULT_MAX_MESSAGE,
            heartbeat: duration(DEFAULT_HEARTBEAT),
            history: DEFAULT_HISTORY,
            history_age: duration(DEFAULT_HISTORY_AGE),
            queue: DEFAULT_QUEUE,
            max_streams: DEFAULT_MAX_STREAMS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_topics_per_stream: DEFAULT_MAX_TOPICS_PER_STREAM,
            max_topics: DEFAULT_MAX_TOPICS,
            retry_ms: DEFAULT_RETRY_MS,
            shutdown_grace: duration(DEFAULT_SHUTDOWN_GRACE),
            write_timeout: duration(DEFAULT_WRITE_TIMEOUT),
            broker: None,
            redis_ca: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            broker_timeout: duration(DEFAULT_BROKER_TIMEOUT),
        }
    }

    /// Parses a configuration from command-line style arguments, ignoring the environment's
    /// `SSEHUB_*` variables only where the arguments set them.
    ///
    /// # Errors
    /// When an argument is malformed.
    pub fn parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        let args = std::iter::once(std::ffi::OsString::from("ssehub"))
            .chain(args.into_iter().map(Into::into));
        Only::try_parse_from(args).map(|only| only.config)
    }

    /// Checks values that parse but cannot work together.
    ///
    /// # Errors
    /// Names the first value that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |what: &str| Err(ConfigError(what.to_owned()));
        if self.interval > Duration::from_secs(3600) {
            return fail("--interval must be at most 1h");
        }
        if self.heartbeat < Duration::from_millis(10) {
            return fail("--heartbeat must be at least 10ms");
        }
        if self.queue == 0 {
            return fail("--queue must be at least 1");
        }
        if self.max_message == 0 || self.max_message > self.body_limit {
            return fail("--max-message must be between 1 and --body-limit");
        }
        if self.max_topics_per_stream == 0 {
            return fail("--max-topics-per-stream must be at least 1");
        }
        if self.max_connections == 0 {
            return fail("--max-connections must be at least 1");
        }
        if let Some(url) = &self.broker {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return fail("--broker must be a redis:// or rediss:// URL");
            }
        }
        Ok(())
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|err| format!("{err} (use e.g. 15s, 250ms, 1h)"))
}
