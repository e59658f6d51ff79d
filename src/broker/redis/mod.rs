//! The Redis broker: several ssehub nodes behave as one hub.
//!
//! - **Ids and history** live in Redis. One Lua script, atomic on the server, takes the next id
//!   (`MS-SEQ`: Redis' clock in ms, never decreasing, and a counter in a hash), appends the
//!   event to the topic's stream (`XADD` with approximate `MAXLEN ~` trimming; reads hide what
//!   is past the history count or age) and `PUBLISH`es it on one channel. A publish is
//!   accepted only when the script returns, and with `min_replicas` only once `WAIT` says that
//!   many replicas hold it ([`commit`]).
//! - **Where**: one Redis by URL, or the primary that Redis Sentinel names, followed through
//!   failovers ([`link`]).
//! - **Delivery**: each node holds one `SUBSCRIBE` connection (not one per client) and hands
//!   what arrives to its local fan-out. Redis runs scripts one at a time and delivers a
//!   channel's messages in order, so every node sees events in id order. With Sentinel and
//!   replicas to wait for, the node subscribes on a replica, so what it delivers survives the
//!   primary's death.
//! - **Faults**: when the subscription drops or stops answering pings (Redis restarted, frozen,
//!   network cut, primary moved), the node reconnects with backoff and, before going live
//!   again, reads from the streams every event after the last one it delivered to topics its
//!   clients subscribe to: no gap. Readiness is false until then. Commands time out after
//!   `timeout`, so a publish during an outage gets a 503 quickly instead of hanging.
//!
//! Keys (under the prefix, `ssehub:` by default): `meta` (hash: last `ms`, `seq`, and `forgotten`, the newest ms of a removed topic),
//! `topics` (sorted set: topic → last publish ms), `topic:NAME` (stream), and the channel
//! `events`. Streams of topics idle longer than the history age are removed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use tokio_util::sync::CancellationToken;

mod codec;
mod commit;
mod delivery;
mod expiry;
mod link;
mod publish;
mod reads;
mod scripts;
mod sentinel;

pub use self::sentinel::SENTINEL_SCHEME;

use self::codec::decode_entries;
use self::scripts::{PUBLISH_LUA, READ_LUA, RESOLVE_LUA};

use super::{Broker, BrokerError, Cursor, Delivery, Replay, ReplayLimit, ResumeFrom, TopicStats};
use crate::event::{Draft, Event};
use crate::sse::EventId;
use crate::topic::{Pattern, TopicName};

/// Settings of the Redis broker.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port/db`, `rediss://...` for TLS, or
    /// `redis+sentinel://[:password@]host:port[,host:port…]/MASTER_NAME`.
    pub url: String,
    /// Replicas that must hold an event before its publish is answered (`WAIT`); 0 for none.
    pub min_replicas: usize,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// Events kept per topic.
    pub history: usize,
    /// Age after which events leave history.
    pub max_age: Duration,
    /// Longest wait for any Redis command.
    pub timeout: Duration,
    /// PEM certificate authority to trust for `rediss://` (instead of the public roots).
    pub ca: Option<Vec<u8>>,
    /// Where each command's round trip is recorded (`metrics::Histogram::noop()` for nowhere).
    pub round_trip: metrics::Histogram,
}

/// Newest events of each topic a listing reads to tell public from private.
const LISTING_WINDOW: usize = 100;

/// See the module docs.
pub struct RedisBroker {
    link: Arc<link::Link>,
    /// With `min_replicas` > 0: where publishes go to be acknowledged.
    lanes: Option<commit::Lanes>,
    settings: RedisSettings,
    delivery: Arc<dyn Delivery>,
    publish: Script,
    read: Script,
    /// Whether the node's subscription is live (readiness).
    live: AtomicBool,
    /// Last id handed to the fan-out; a std mutex, only touched by the delivery task between
    /// awaits.
    delivered: Mutex<EventId>,
    /// Cancelled by [`Broker::close`]: stops the subscription and expiry tasks.
    stop: CancellationToken,
}

impl RedisBroker {
    /// Connects (failing fast if Redis cannot be reached at start) and starts the node's
    /// subscription task.
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] when the URL is invalid or Redis does not answer.
    pub async fn connect(
        settings: RedisSettings,
        delivery: Arc<dyn Delivery>,
    ) -> Result<Arc<Self>, BrokerError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let target = sentinel::Target::parse(&settings.url)?;
        let link = link::Link::connect(
            target,
            settings.ca.clone(),
            settings.timeout,
            settings.min_replicas > 0,
        );
        let link = Arc::new(link.await?);
        let publish = Script::new(PUBLISH_LUA);
        let lanes = (settings.min_replicas > 0).then(|| {
            commit::Lanes::start(
                Arc::clone(&link),
                publish.clone(),
                settings.min_replicas,
                settings.timeout,
            )
        });
        let broker = Arc::new(Self {
            link,
            lanes,
            settings,
            delivery,
            publish,
            read: Script::new(READ_LUA),
            live: AtomicBool::new(false),
            delivered: Mutex::new(EventId::default()),
            stop: CancellationToken::new(),
        });
        let start = broker.last_issued().await?;
        *broker.lock_delivered() = start;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let stop = broker.stop.clone();
        let task = Arc::clone(&broker).deliver_forever(ready_tx);
        tokio::spawn(async move { stop.run_until_cancelled(task).await });
        // Wait (bounded) until the subscription is live, so a node that says it started
        // does not miss the first publish.
        let _ = tokio::time::timeout(broker.settings.timeout, ready_rx).await;
        let stop = broker.stop.clone();
        let task = Arc::clone(&broker).expire_forever();
        tokio::spawn(async move { stop.run_until_cancelled(task).await });
        let stop = broker.stop.clone();
        let task = Arc::clone(&broker.link).watch_forever();
        tokio::spawn(async move { stop.run_until_cancelled(task).await });
        Ok(broker)
    }

    /// A handle on the current primary's command connection: for writes.
    fn con(&self) -> ConnectionManager {
        self.link.primary().commands.clone()
    }

    /// A handle on the connection to what the node delivers from (see `Link::feed`): for
    /// reads, so history agrees with what streams were sent.
    fn reader(&self) -> ConnectionManager {
        self.link.feed().commands.clone()
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.prefix)
    }

    fn stream_key(&self, topic: &str) -> String {
        format!("{}topic:{topic}", self.settings.prefix)
    }

    fn lock_delivered(&self) -> std::sync::MutexGuard<'_, EventId> {
        self.delivered.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BrokerError> {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.settings.timeout, work).await;
        self.settings
            .round_trip
            .record(started.elapsed().as_secs_f64());
        let answer = answer
            .map_err(|_| BrokerError::Unavailable("Redis did not answer in time".into()))
            .and_then(|a| a.map_err(unavailable));
        if answer.is_err() {
            // The primary may have moved (Sentinel): look now rather than at the next tick.
            self.link.suspect();
        }
        answer
    }
}

impl Broker for RedisBroker {
    fn publish(&self, draft: Draft) -> BoxFuture<'_, Result<Arc<Event>, BrokerError>> {
        async move {
            let cmd = self.publish_cmd(&draft);
            let id = match &self.lanes {
                Some(lanes) => {
                    let started = std::time::Instant::now();
                    let id = lanes.publish(cmd).await;
                    self.settings
                        .round_trip
                        .record(started.elapsed().as_secs_f64());
                    id?
                }
                None => self.publish_now(&cmd).await?,
            };
            let id: EventId = id
                .parse()
                .map_err(|_| BrokerError::Unavailable(format!("Redis returned a bad id {id:?}")))?;
            let timestamp = id.ms as f64 / 1000.0;
            Ok(Arc::new(Event::new(id, draft, timestamp)))
        }
        .boxed()
    }

    fn replay<'a>(
        &'a self,
        patterns: &'a [Pattern],
        from: ResumeFrom,
        limit: ReplayLimit,
    ) -> BoxFuture<'a, Result<Replay, BrokerError>> {
        async move {
            // The high-water mark: the subscription already exists, so every event after it
            // reaches the stream live; the replay stops there, whatever is published while
            // the topics are read one after another.
            let last = self.last_issued().await?;
            let (after, mut gap) = match from {
                ResumeFrom::After(id) if id <= last => (id, false),
                ResumeFrom::Earliest => (EventId::default(), false),
                _ => (EventId::default(), true),
            };
            if !gap {
                let mut con = self.reader();
                let forgotten_ms: Option<u64> = self
                    .timed(
                        redis::cmd("HGET")
                            .arg(self.key("meta"))
                            .arg("forgotten")
                            .query_async(&mut con),
                    )
                    .await?;
                // A whole topic was removed with events up to this time: a resume from before
                // it may have missed some of them.
                if forgotten_ms.is_some_and(|ms| after.ms <= ms) {
                    gap = true;
                }
            }
            let mut events = Vec::new();
            for topic in self.matching_topics(patterns).await? {
                let (deleted, mut found) = self
                    .read_topic(&topic, after, Some(last), limit.events, true)
                    .await?;
                if matches!(from, ResumeFrom::After(_)) && deleted.is_some_and(|d| after < d) {
                    gap = true;
                }
                found.retain(|e| e.topics().any(|t| patterns.iter().any(|p| p.matches(t))));
                events.append(&mut found);
            }
            Ok(Replay::newest(events, limit, gap))
        }
        .boxed()
    }

    fn history<'a>(
        &'a self,
        topic: &'a TopicName,
        after: EventId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Arc<Event>>, BrokerError>> {
        async move { Ok(self.read_topic(topic, after, None, limit, false).await?.1) }.boxed()
    }

    fn last_id(&self) -> BoxFuture<'_, Result<Option<EventId>, BrokerError>> {
        async move {
            let last = self.last_issued().await?;
            Ok((last != EventId::default()).then_some(last))
        }
        .boxed()
    }

    fn resolve<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Cursor>, BrokerError>> {
        async move {
            let mut con = self.reader();
            let pairs: Vec<(String, String)> = self
                .timed(
                    redis::Script::new(RESOLVE_LUA)
                        .key(format!("{}{id}", self.key("id:")))
                        .invoke_async(&mut con),
                )
                .await?;
            // Topic → the hub id of its earliest event bearing `id`.
            let mut cursors: Vec<Cursor> = pairs
                .into_iter()
                .filter_map(|(topic, hub_id)| {
                    Some(Cursor {
                        id: hub_id.parse().ok()?,
                        topics: vec![TopicName::any(&topic).ok()?],
                    })
                })
                .collect();
            cursors.sort_by_key(|c| c.id);
            Ok(cursors)
        }
        .boxed()
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicStats>, BrokerError>> {
        async move {
            let mut con = self.reader();
            let names = self.known_topics().await?;
            let mut pipe = redis::pipe();
            for name in &names {
                let key = self.stream_key(name.as_str());
                pipe.cmd("XLEN").arg(&key);
                pipe.cmd("XREVRANGE")
                    .arg(&key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(LISTING_WINDOW);
            }
            let replies: Vec<Value> = self.timed(pipe.query_async(&mut con)).await?;
            Ok(names
                .into_iter()
                .zip(replies.chunks(2))
                .map(|(name, reply)| {
                    let history = match reply.first() {
                        // Approximate trimming may leave more in the stream than history holds.
                        Some(Value::Int(n)) => {
                            usize::try_from(*n).unwrap_or(0).min(self.settings.history)
                        }
                        _ => 0,
                    };
                    let window = reply
                        .get(1)
                        .cloned()
                        .map(|v| decode_entries(&name, v))
                        .unwrap_or_default();
                    // Redis keeps no per-topic count of private events: they are counted in
                    // the newest LISTING_WINDOW events, exact for topics holding no more.
                    let private = window.iter().filter(|e| e.private).count();
                    TopicStats {
                        name,
                        last_id: window.first().map(|e| e.id),
                        history,
                        last_public_id: window.iter().find(|e| !e.private).map(|e| e.id),
                        public_history: history.saturating_sub(private),
                    }
                })
                .collect())
        }
        .boxed()
    }

    fn ready(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn close(&self) {
        self.stop.cancel();
    }
}

fn unavailable(err: redis::RedisError) -> BrokerError {
    BrokerError::Unavailable(err.to_string())
}
