//! Prometheus metrics: the series' names, one server's recorder, and the small handles the
//! stream and request paths touch.
//!
//! Each server (each [`crate::AppState`]) has its own recorder, never installed as the
//! process' global one: several servers in one process (tests, an embedding program) keep
//! their own figures. Nothing here knows HTTP or the hub: the HTTP layer labels requests by
//! route *template* and reads the broker's gauges at scrape time (`http::metrics`); streams
//! count themselves with a [`StreamStats`] guard, whose drop is the one place a stream's end
//! is recorded, whatever ended it.
//!
//! Labels only ever take values from small fixed sets (route templates, methods, statuses,
//! modes, reasons): never a raw path or a topic, which would make the number of series
//! unbounded.
//!
//! **Cost on the delivery path.** A stream counts the events it sends in a plain field of its
//! own [`StreamStats`] and adds them to the shared counter once per write (a batch of frames on
//! the direct HTTP/1 path) and when it ends, never once per event per subscriber; open-stream
//! gauges are plain atomics copied into the recorder at scrape time.

mod labels;
mod stream;

use labels::{describe, status_label};
pub use stream::{End, HttpVersion, StreamKind, StreamStats};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Streams open now, by `mode` and `http_version` (gauge).
pub const STREAMS_OPEN: &str = "ssehub_streams_open";
/// Streams opened since start, by `mode` (counter).
pub const STREAMS_OPENED: &str = "ssehub_streams_opened_total";
/// Streams that ended, by `mode` and `reason` (counter).
pub const STREAMS_ENDED: &str = "ssehub_streams_ended_total";
/// Stream requests refused before they opened, by `reason` (counter).
pub const STREAMS_REFUSED: &str = "ssehub_streams_refused_total";
/// Event frames sent to streams (counter).
pub const EVENTS_DELIVERED: &str = "ssehub_events_delivered_total";
/// Publish requests, by `endpoint` (route template) and `status` (counter).
pub const PUBLISHES: &str = "ssehub_publishes_total";
/// Request durations, by `route` (template), `method` and `status` (histogram).
pub const REQUEST_DURATION: &str = "ssehub_http_request_duration_seconds";
/// Events held in this process' history (gauge, memory broker).
pub const HISTORY_EVENTS: &str = "ssehub_history_events";
/// Bytes of events held in this process' history (gauge, memory broker).
pub const HISTORY_BYTES: &str = "ssehub_history_bytes";
/// Size of the on-disk history store (gauge, with `--data-dir`).
pub const STORE_BYTES: &str = "ssehub_store_bytes";
/// 1 when the broker takes publishes, else 0, by `broker` (gauge).
pub const BROKER_READY: &str = "ssehub_broker_ready";
/// Duration of each Redis command as this node sees it (histogram).
pub const REDIS_DURATION: &str = "ssehub_redis_command_duration_seconds";
/// Mercure's name for open Mercure subscribers (gauge).
pub const MERCURE_CONNECTED: &str = "mercure_subscribers_connected";
/// Mercure's name for Mercure subscriptions opened since start (counter).
pub const MERCURE_SUBSCRIBERS: &str = "mercure_subscribers_total";
/// Mercure's name for updates published (counter): every accepted publish, on any endpoint.
pub const MERCURE_UPDATES: &str = "mercure_updates_total";

/// Buckets of request durations, seconds.
const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of Redis command durations, seconds.
const REDIS_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const KINDS: usize = StreamKind::ALL.len();
const VERSIONS: usize = HttpVersion::ALL.len();
const ENDS: usize = End::ALL.len();

/// Values read from elsewhere at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The broker's short name.
    pub broker: &'static str,
    /// Whether it takes publishes now.
    pub broker_ready: bool,
    /// Events held in this process' history, when it holds them.
    pub history_events: Option<usize>,
    /// Bytes held in this process' history, when it holds them.
    pub history_bytes: Option<usize>,
    /// Size of the on-disk store, when there is one.
    pub store_bytes: Option<u64>,
}

/// One server's metrics. Clone freely: it is one `Arc`.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Open streams by kind and version: plain atomics, copied to `open_gauges` at scrape.
    open: [AtomicI64; KINDS * VERSIONS],
    open_gauges: [Gauge; KINDS * VERSIONS],
    /// Event frames sent, added to by streams once per write; copied to its counter at scrape.
    delivered: AtomicU64,
    delivered_counter: Counter,
    opened: [Counter; KINDS],
    ended: [Counter; KINDS * ENDS],
    mercure_connected: Gauge,
    mercure_subscribers: Counter,
    mercure_updates: Counter,
    /// The series of an accepted publish on the direct path (`/api/messages` 201, `/publish`
    /// 202, `/.well-known/mercure` 200), registered on first use: the publish hot path records
    /// into them without building and hashing a key each time.
    accepted: [std::sync::OnceLock<(Histogram, Counter)>; 3],
}

/// Where the recorder's registrations say they come from (it ignores it).
const METADATA: Metadata<'static> = Metadata::new("ssehub", Level::INFO, Some("ssehub::metrics"));

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with every fixed series registered (at zero).
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &REQUEST_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(REDIS_DURATION.into()), &REDIS_BUCKETS)
            })
            // Unreachable: the bucket lists are constants and not empty.
            .unwrap_or_default();
        let recorder = builder.build_recorder();
        describe(&recorder);
        let handle = recorder.handle();
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        let gauge = |name: &'static str, labels: Vec<Label>| {
            recorder.register_gauge(&Key::from_parts(name, labels), &METADATA)
        };
        let open_gauges = std::array::from_fn(|slot| {
            let (kind, version) = (
                StreamKind::ALL[slot / VERSIONS],
                HttpVersion::ALL[slot % VERSIONS],
            );
            gauge(
                STREAMS_OPEN,
                vec![
                    Label::new("mode", kind.label()),
                    Label::new("http_version", version.label()),
                ],
            )
        });
        let opened = std::array::from_fn(|k| {
            counter(
                STREAMS_OPENED,
                vec![Label::new("mode", StreamKind::ALL[k].label())],
            )
        });
        let ended = std::array::from_fn(|slot| {
            let (kind, end) = (StreamKind::ALL[slot / ENDS], End::ALL[slot % ENDS]);
            counter(
                STREAMS_ENDED,
                vec![
                    Label::new("mode", kind.label()),
                    Label::new("reason", end.label()),
                ],
            )
        });
        let inner = Inner {
            open: std::array::from_fn(|_| AtomicI64::new(0)),
            open_gauges,
            delivered: AtomicU64::new(0),
            delivered_counter: counter(EVENTS_DELIVERED, Vec::new()),
            opened,
            ended,
            mercure_connected: gauge(MERCURE_CONNECTED, Vec::new()),
            mercure_subscribers: counter(MERCURE_SUBSCRIBERS, Vec::new()),
            mercure_updates: counter(MERCURE_UPDATES, Vec::new()),
            accepted: Default::default(),
            handle,
            recorder,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The handle the Redis broker records each command's duration into (registered on first
    /// use, so a node without Redis shows no such series).
    pub fn redis_round_trip(&self) -> Histogram {
        self.inner
            .recorder
            .register_histogram(&Key::from_name(REDIS_DURATION), &METADATA)
    }

    /// Counts a stream that opened; the returned guard counts its events and, when dropped, its
    /// end.
    pub fn stream(&self, kind: StreamKind, version: HttpVersion) -> StreamStats {
        let slot = kind as usize * VERSIONS + version as usize;
        self.inner.open[slot].fetch_add(1, Ordering::Relaxed);
        self.inner.opened[kind as usize].increment(1);
        if kind == StreamKind::Mercure {
            self.inner.mercure_subscribers.increment(1);
        }
        StreamStats {
            inner: Arc::clone(&self.inner),
            kind,
            slot: slot as u8,
            end: None,
            pending: 0,
        }
    }

    /// Records one request: `route` is the route template (or a fixed placeholder), never the
    /// raw path.
    pub fn request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        let key = Key::from_parts(
            REQUEST_DURATION,
            vec![
                Label::new("route", SharedString::from(route.to_owned())),
                Label::new("method", method),
                Label::new("status", status_label(status)),
            ],
        );
        self.inner
            .recorder
            .register_histogram(&key, &METADATA)
            .record(took.as_secs_f64());
    }

    /// Records a publish request answered with `status` after `took`: what
    /// [`Self::request`] and [`Self::publish`] record together, from cached handles when it was
    /// accepted.
    pub fn publish_request(&self, endpoint: &'static str, status: u16, took: Duration) {
        let slot = match (endpoint, status) {
            ("/api/messages", 201) => 0,
            ("/publish", 202) => 1,
            ("/.well-known/mercure", 200) => 2,
            _ => {
                self.request(endpoint, "POST", status, took);
                self.publish(endpoint, status);
                return;
            }
        };
        let (histogram, counter) = self.inner.accepted[slot].get_or_init(|| {
            let labels = |name: &'static str| {
                vec![
                    Label::new(name, endpoint),
                    Label::new("method", "POST"),
                    Label::new("status", status_label(status)),
                ]
            };
            let mut publish = labels("endpoint");
            publish.remove(1);
            (
                self.inner.recorder.register_histogram(
                    &Key::from_parts(REQUEST_DURATION, labels("route")),
                    &METADATA,
                ),
                self.inner
                    .recorder
                    .register_counter(&Key::from_parts(PUBLISHES, publish), &METADATA),
            )
        });
        histogram.record(took.as_secs_f64());
        counter.increment(1);
        self.inner.mercure_updates.increment(1);
    }

    /// Records a publish request on `endpoint` (a route template) answered with `status`.
    pub fn publish(&self, endpoint: &'static str, status: u16) {
        let key = Key::from_parts(
            PUBLISHES,
            vec![
                Label::new("endpoint", endpoint),
                Label::new("status", status_label(status)),
            ],
        );
        self.inner
            .recorder
            .register_counter(&key, &METADATA)
            .increment(1);
        if (200..300).contains(&status) {
            self.inner.mercure_updates.increment(1);
        }
    }

    /// Records a stream request refused before it opened (`reason` from a fixed set).
    pub fn refused(&self, reason: &'static str) {
        let key = Key::from_parts(STREAMS_REFUSED, vec![Label::new("reason", reason)]);
        self.inner
            .recorder
            .register_counter(&key, &METADATA)
            .increment(1);
    }

    /// Streams open now of `kind`, over every HTTP version.
    pub fn open_streams(&self, kind: StreamKind) -> i64 {
        let start = kind as usize * VERSIONS;
        self.inner.open[start..start + VERSIONS]
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Event frames sent to streams so far (the part streams have handed over).
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every series, with `scrape`'s values.
    pub fn render(&self, scrape: &Scrape) -> String {
        let inner = &*self.inner;
        for (open, gauge) in inner.open.iter().zip(&inner.open_gauges) {
            gauge.set(open.load(Ordering::Relaxed) as f64);
        }
        inner
            .mercure_connected
            .set(self.open_streams(StreamKind::Mercure) as f64);
        inner
            .delivered_counter
            .absolute(inner.delivered.load(Ordering::Relaxed));
        let gauge = |name: &'static str, labels: Vec<Label>| {
            inner
                .recorder
                .register_gauge(&Key::from_parts(name, labels), &METADATA)
        };
        gauge(BROKER_READY, vec![Label::new("broker", scrape.broker)])
            .set(if scrape.broker_ready { 1.0 } else { 0.0 });
        if let Some(events) = scrape.history_events {
            gauge(HISTORY_EVENTS, Vec::new()).set(events as f64);
        }
        if let Some(bytes) = scrape.history_bytes {
            gauge(HISTORY_BYTES, Vec::new()).set(bytes as f64);
        }
        if let Some(bytes) = scrape.store_bytes {
            gauge(STORE_BYTES, Vec::new()).set(bytes as f64);
        }
        inner.handle.render()
    }

    /// Folds the samples histograms gathered since the last call into their buckets, so they
    /// hold no memory while nobody scrapes. Call about once a second.
    pub fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests;
