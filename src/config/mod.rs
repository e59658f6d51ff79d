//! Command line and environment configuration.
//!
//! Every flag has an environment twin (`SSEHUB_*`) so the same binary is configured the same way
//! from a shell, a unit file or a container. Defaults are named constants so the README, `--help`
//! and the tests agree on them. [`Config::validate`] runs before anything binds a socket.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};

mod auth;
mod parse;
mod validate;

pub use auth::{
    mercure_env_twins, mercure_env_warnings, AuthConfig, KeyFlags, DEFAULT_TRUSTED_ISSUER,
    MERCURE_ENV, MERCURE_UNREAD,
};
pub use parse::open_file_limit;
use parse::{parse_bytes, parse_duration};
pub use validate::ConfigError;

/// Default listen address: every interface, port 8000 (the seed's port).
pub const DEFAULT_BIND: &str = "0.0.0.0:8000";
/// How many times a burst stream repeats each message (the seed's 3).
pub const DEFAULT_REPEATS: u32 = 3;
/// Pause between two repeats of a burst (the seed's 1 s).
pub const DEFAULT_INTERVAL: &str = "1s";
/// Least time between two bursts' first copies (see `session::Pacer`).
pub const DEFAULT_BURST_PACE: &str = "20us";
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
/// Open files kept free for everything but client connections (listeners, Redis, logs, the
/// data files of later features): the derived connection cap is the open-file limit minus this.
pub const FILE_RESERVE: usize = 64;
/// Bytes of event history kept in memory, over all topics (the oldest events go first).
pub const DEFAULT_HISTORY_BYTES: &str = "128MiB";
/// How long a new connection may take to send its first request head (HTTP/1) or connection
/// preface (HTTP/2).
pub const DEFAULT_HEADER_TIMEOUT: &str = "10s";
/// How long a request body may take to arrive.
pub const DEFAULT_BODY_TIMEOUT: &str = "10s";
/// How long a connection may sit with no request in flight (HTTP/1 keep-alive, HTTP/2 with no
/// open stream), and the interval of HTTP/2 keep-alive pings.
pub const DEFAULT_IDLE_TIMEOUT: &str = "60s";
/// Topics (or patterns) a single stream may subscribe to.
pub const DEFAULT_MAX_TOPICS_PER_STREAM: usize = 16;
/// Topics the hub keeps at once.
pub const DEFAULT_MAX_TOPICS: usize = 10_000;
/// Bytes of compiled URI templates and URL patterns one subscription may hold (a typical URL
/// pattern is ~60 KiB of automata, a template ~11 KiB).
pub const DEFAULT_MAX_PATTERN_BYTES_PER_STREAM: &str = "1MiB";
/// Bytes of compiled URI templates and URL patterns the whole hub may hold.
pub const DEFAULT_MAX_PATTERN_BYTES: &str = "128MiB";
/// Distinct patterns the fan-out cannot narrow by their literal text (a template or URL pattern
/// with no fixed prefix or suffix): each runs for every new topic, under the fan-out lock.
pub const DEFAULT_MAX_BROAD_PATTERNS: usize = 32;
/// `retry:` hint sent at the start of live streams, in milliseconds.
pub const DEFAULT_RETRY_MS: u64 = 2000;
/// How long shutdown waits for connections to finish before it drops them.
pub const DEFAULT_SHUTDOWN_GRACE: &str = "5s";
/// The window over which live streams end on shutdown.
pub const DEFAULT_DRAIN_SPREAD: &str = "2s";
/// How long a connection may stay unable to take bytes before it is dropped.
pub const DEFAULT_WRITE_TIMEOUT: &str = "30s";
/// Prefix of every Redis key and channel ssehub uses.
pub const DEFAULT_REDIS_PREFIX: &str = "ssehub:";
/// Longest wait for one broker command; a publish past it answers 503.
pub const DEFAULT_BROKER_TIMEOUT: &str = "2s";

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

    /// Least time between the first copies of two burst streams, e.g. `20us`; `0s` turns pacing
    /// off. When thousands of streams take the same message, their first copies go out at most
    /// this fast, so the later copies, due one interval after each, can keep their schedule
    /// (19,000 streams: the last first copy 380 ms after the publish).
    #[arg(long, env = "SSEHUB_BURST_PACE", default_value = DEFAULT_BURST_PACE, value_parser = parse_duration)]
    pub burst_pace: Duration,

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

    /// Concurrent SSE streams; past it `GET /stream` answers 503 with `Retry-After`. Default:
    /// the connection cap.
    #[arg(long, env = "SSEHUB_MAX_STREAMS")]
    pub max_streams: Option<usize>,

    /// Concurrent TCP connections; past it the server waits for one to close before accepting.
    /// Default: the process' open-file limit minus a reserve of 64 (logged at start).
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Concurrent connections from one client address; past it new ones get 429 and are
    /// closed. Off by default: behind a reverse proxy every client has the proxy's address.
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS_PER_CLIENT")]
    pub max_connections_per_client: Option<usize>,

    /// Bytes of history held in memory over all topics, e.g. `128MiB`; the oldest events go
    /// first. (The memory broker; Redis bounds its streams by count and age.)
    #[arg(long, env = "SSEHUB_HISTORY_BYTES", default_value = DEFAULT_HISTORY_BYTES, value_parser = parse_bytes)]
    pub history_bytes: usize,

    /// How long a new connection may take to send its request head or HTTP/2 preface.
    #[arg(long, env = "SSEHUB_HEADER_TIMEOUT", default_value = DEFAULT_HEADER_TIMEOUT, value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// How long a request body may take to arrive; a slower one gets 408.
    #[arg(long, env = "SSEHUB_BODY_TIMEOUT", default_value = DEFAULT_BODY_TIMEOUT, value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// How long a connection may stay with no request in flight before it is closed (HTTP/1
    /// keep-alive; HTTP/2 with no open stream), and the HTTP/2 ping interval.
    #[arg(long, env = "SSEHUB_IDLE_TIMEOUT", default_value = DEFAULT_IDLE_TIMEOUT, value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Log every request at `info` (method, path, status, time). Off: requests are logged at
    /// `debug`; errors and lifecycle events are always logged.
    #[arg(long, env = "SSEHUB_ACCESS_LOG")]
    pub access_log: bool,

    /// Topic patterns one stream may subscribe to.
    #[arg(long, env = "SSEHUB_MAX_TOPICS_PER_STREAM", default_value_t = DEFAULT_MAX_TOPICS_PER_STREAM)]
    pub max_topics_per_stream: usize,

    /// Bytes of compiled URI templates and URL patterns one subscription may hold; more is 400.
    #[arg(long, env = "SSEHUB_MAX_PATTERN_BYTES_PER_STREAM", default_value = DEFAULT_MAX_PATTERN_BYTES_PER_STREAM, value_parser = parse_bytes)]
    pub max_pattern_bytes_per_stream: usize,

    /// Bytes of compiled URI templates and URL patterns the hub holds (shared by identical
    /// patterns); a subscription past it is 503.
    #[arg(long, env = "SSEHUB_MAX_PATTERN_BYTES", default_value = DEFAULT_MAX_PATTERN_BYTES, value_parser = parse_bytes)]
    pub max_pattern_bytes: usize,

    /// Distinct subscribed patterns with no literal prefix or suffix to index them by (each is
    /// run for every new topic); a subscription past it is 503.
    #[arg(long, env = "SSEHUB_MAX_BROAD_PATTERNS", default_value_t = DEFAULT_MAX_BROAD_PATTERNS)]
    pub max_broad_patterns: usize,

    /// Topics the hub holds at once; publishing to a new topic past it answers 503.
    #[arg(long, env = "SSEHUB_MAX_TOPICS", default_value_t = DEFAULT_MAX_TOPICS)]
    pub max_topics: usize,

    /// `retry:` hint (milliseconds) sent at the start of live streams.
    #[arg(long, env = "SSEHUB_RETRY_MS", default_value_t = DEFAULT_RETRY_MS)]
    pub retry_ms: u64,

    /// How long shutdown waits for open connections before dropping them.
    #[arg(long, env = "SSEHUB_SHUTDOWN_GRACE", default_value = DEFAULT_SHUTDOWN_GRACE, value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// On shutdown, live streams end at random points of this window, each with a `retry:`
    /// hint spread the same way, so their reconnects do not all land on the next node at once.
    /// At most half of `--shutdown-grace` is used.
    #[arg(long, env = "SSEHUB_DRAIN_SPREAD", default_value = DEFAULT_DRAIN_SPREAD, value_parser = parse_duration)]
    pub drain_spread: Duration,

    /// How long a connection may refuse bytes (a dead or stalled client) before it is dropped.
    #[arg(long, env = "SSEHUB_WRITE_TIMEOUT", default_value = DEFAULT_WRITE_TIMEOUT, value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Keep history in an embedded database in this folder (memory broker): it survives
    /// restarts, and clients resume across them. Without it, history is in memory only.
    #[arg(long, env = "SSEHUB_DATA_DIR", conflicts_with = "broker")]
    pub data_dir: Option<std::path::PathBuf>,

    /// With `--data-dir`: `always` answers a publish once it is on disk; `interval` syncs every
    /// 100 ms (faster; a crash may lose the last 100 ms of publishes).
    #[arg(long, env = "SSEHUB_FSYNC", value_enum, default_value = "always")]
    pub fsync: crate::broker::durable::Fsync,

    /// PEM certificate chain for HTTPS (with `--tls-key`): HTTP/2 and HTTP/1.1 on the same
    /// port. Reloaded on SIGHUP or when the file changes.
    #[arg(long, env = "SSEHUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "SSEHUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// With TLS: also listen on this cleartext address (e.g. `0.0.0.0:80`) and redirect every
    /// request to the same URL over HTTPS.
    #[arg(long, env = "SSEHUB_REDIRECT_HTTP", requires = "tls_cert")]
    pub redirect_http: Option<SocketAddr>,

    /// Serve `GET /metrics` (Prometheus) on this address instead of the main port, e.g.
    /// `127.0.0.1:9100` to keep it off the network; the main port then answers 404 there.
    #[arg(long, env = "SSEHUB_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Mercure's active subscriptions: a private `mercure` update when a Mercure subscription
    /// starts and ends, and the API under `/.well-known/mercure/subscriptions`.
    #[arg(long, env = "SSEHUB_SUBSCRIPTIONS")]
    pub subscriptions: bool,

    /// Who may publish and read (JWT), CORS, per-client and per-subject stream caps.
    #[command(flatten)]
    pub auth: AuthConfig,

    /// Run as a cluster node on Redis: `redis://[:password@]host:port/db` (`rediss://` for
    /// TLS), or a primary found through Redis Sentinel and followed through failovers:
    /// `redis+sentinel://[:password@]host:port[,host:port…]/MASTER_NAME` (the sentinels'
    /// addresses; the password is the data nodes'; `rediss+sentinel://` for TLS to both), or a
    /// Redis Cluster:
    /// `redis+cluster://[:password@]host:port[,host:port…]` (`rediss+cluster://` for TLS to
    /// every node). Every node given the same Redis and prefix forms one hub. Without it, the
    /// in-memory broker (a single node).
    #[arg(long, env = "SSEHUB_BROKER")]
    pub broker: Option<String>,

    /// PEM file of the certificate authority to trust for a `rediss://`, `rediss+sentinel://` or
    /// `rediss+cluster://` broker (instead of the public roots): for a Redis with a certificate from a private CA.
    /// A cleartext broker ignores it.
    #[arg(long, env = "SSEHUB_REDIS_CA")]
    pub redis_ca: Option<std::path::PathBuf>,

    /// Replicas that must hold an event before its publish is answered (Redis `WAIT`); past
    /// `--broker-timeout` without them the publish answers 503. Default: 1 with Sentinel or a
    /// Cluster, 0 with a single Redis.
    #[arg(long, env = "SSEHUB_REDIS_MIN_REPLICAS")]
    pub redis_min_replicas: Option<usize>,

    /// Partitions topics are spread over in a Redis Cluster (`redis+cluster://`): a topic's
    /// events, id counter and delivery channel live on one partition, each pinned to a slot.
    /// The default, 12, splits evenly over 1, 2, 3, 4, 6 or 12 primaries and keeps what a node
    /// watching every topic follows small. Every node of a hub must use the same number.
    #[arg(long, env = "SSEHUB_PARTITIONS", default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub partitions: u16,

    /// Prefix of every Redis key and channel; give separate hubs on one Redis different prefixes.
    #[arg(long, env = "SSEHUB_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,

    /// Longest wait for one Redis command, e.g. `2s`; a publish that cannot be stored within it
    /// answers 503.
    #[arg(long, env = "SSEHUB_BROKER_TIMEOUT", default_value = DEFAULT_BROKER_TIMEOUT, value_parser = parse_duration)]
    pub broker_timeout: Duration,
}

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
            max_streams: None,
            max_connections: None,
            max_connections_per_client: None,
            history_bytes: parse_bytes(DEFAULT_HISTORY_BYTES).unwrap_or(128 << 20),
            header_timeout: duration(DEFAULT_HEADER_TIMEOUT),
            body_timeout: duration(DEFAULT_BODY_TIMEOUT),
            idle_timeout: duration(DEFAULT_IDLE_TIMEOUT),
            access_log: false,
            subscriptions: false,
            tls_cert: None,
            redirect_http: None,
            metrics_bind: None,
            data_dir: None,
            fsync: crate::broker::durable::Fsync::Always,
            tls_key: None,
            auth: AuthConfig::default(),
            max_topics_per_stream: DEFAULT_MAX_TOPICS_PER_STREAM,
            max_topics: DEFAULT_MAX_TOPICS,
            max_pattern_bytes_per_stream: parse_bytes(DEFAULT_MAX_PATTERN_BYTES_PER_STREAM)
                .unwrap_or(1 << 20),
            max_pattern_bytes: parse_bytes(DEFAULT_MAX_PATTERN_BYTES).unwrap_or(128 << 20),
            max_broad_patterns: DEFAULT_MAX_BROAD_PATTERNS,
            retry_ms: DEFAULT_RETRY_MS,
            shutdown_grace: duration(DEFAULT_SHUTDOWN_GRACE),
            write_timeout: duration(DEFAULT_WRITE_TIMEOUT),
            drain_spread: duration(DEFAULT_DRAIN_SPREAD),
            burst_pace: duration(DEFAULT_BURST_PACE),
            broker: None,
            redis_ca: None,
            redis_min_replicas: None,
            partitions: 12,
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

    /// The connection cap: `--max-connections`, else the open-file limit minus
    /// [`FILE_RESERVE`].
    pub fn connection_cap(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| open_file_limit().saturating_sub(FILE_RESERVE).max(1))
    }

    /// The stream cap: `--max-streams`, else the connection cap.
    pub fn stream_cap(&self) -> usize {
        self.max_streams.unwrap_or_else(|| self.connection_cap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("128MiB"), Ok(128 << 20));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }

    #[test]
    fn caps_derive_from_the_file_limit() {
        let config = Config::with_bind("127.0.0.1:0".parse().unwrap());
        let files = open_file_limit();
        assert_eq!(
            config.connection_cap(),
            files.saturating_sub(FILE_RESERVE).max(1)
        );
        assert_eq!(config.stream_cap(), config.connection_cap());
    }
}
