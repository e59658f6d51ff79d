//! The Redis broker: several ssehub nodes behave as one hub.
//!
//! - **Ids and history** live in Redis. One Lua script, atomic on the server, takes the next id
//!   (`MS-SEQ`: Redis' clock in ms, never decreasing, and a counter in a hash), appends the
//!   event to the topic's stream (`XADD`, `MAXLEN` = history count, `MINID` trimming for age)
//!   and `PUBLISH`es it on one channel. A publish is accepted only when the script returns.
//! - **Delivery**: each node holds one `SUBSCRIBE` connection (not one per client) and hands
//!   what arrives to its local fan-out. Redis runs scripts one at a time and delivers a
//!   channel's messages in order, so every node sees events in id order.
//! - **Faults**: when the subscription drops (Redis restarted, network cut), the node
//!   reconnects with backoff and, before going live again, reads from the streams every event
//!   after the last one it delivered to topics its clients subscribe to: no gap. Readiness is
//!   false until then. Commands time out after `timeout`, so a publish during an outage gets
//!   a 503 quickly instead of hanging.
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
mod delivery;
mod expiry;
mod reads;
mod scripts;

use self::codec::decode_entries;
use self::scripts::{PUBLISH_LUA, READ_LUA, RESOLVE_LUA};

use super::{Broker, BrokerError, Cursor, Delivery, Replay, ReplayLimit, ResumeFrom, TopicStats};
use crate::event::{Draft, Event};
use crate::sse::EventId;
use crate::topic::{Pattern, TopicName};

/// Settings of the Redis broker.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port/db` or `rediss://...` for TLS.
    pub url: String,
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
    client: redis::Client,
    commands: ConnectionManager,
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
        let setup = |err: redis::RedisError| BrokerError::Setup(err.to_string());
        let client = match &settings.ca {
            None => redis::Client::open(settings.url.as_str()).map_err(setup)?,
            Some(ca) => {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                };
                redis::Client::build_with_tls(settings.url.as_str(), certificates).map_err(setup)?
            }
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let commands = tokio::time::timeout(
            settings.timeout,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| BrokerError::Unavailable("timed out connecting to Redis".into()))?
        .map_err(unavailable)?;
        let broker = Arc::new(Self {
            client,
            commands,
            settings,
            delivery,
            publish: Script::new(PUBLISH_LUA),
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
        Ok(broker)
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
        answer
            .map_err(|_| BrokerError::Unavailable("Redis did not answer in time".into()))?
            .map_err(unavailable)
    }
}

impl Broker for RedisBroker {
    fn publish(&self, draft: Draft) -> BoxFuture<'_, Result<Arc<Event>, BrokerError>> {
        async move {
            let mut con = self.commands.clone();
            let id: String = self
                .timed(
                    self.publish
                        .key(self.key("meta"))
                        .key(self.stream_key(draft.topic.as_str()))
                        .key(self.key("topics"))
                        .arg(draft.topic.as_str())
                        .arg(draft.name.as_str())
                        .arg(&draft.message)
                        .arg(self.settings.history)
                        .arg(self.settings.max_age.as_millis() as u64)
                        .arg(self.key("events"))
                        .arg(if draft.private { "1" } else { "0" })
                        .arg(
                            draft
                                .alternates
                                .iter()
                                .map(TopicName::as_str)
                                .collect::<Vec<_>>()
                                .join("\t"),
                        )
                        .arg(draft.custom_id.as_ref().map_or("", |i| i.as_str()))
                        .arg(draft.retry.map(|r| r.to_string()).unwrap_or_default())
                        .arg(self.key("id:"))
                        .arg(&self.settings.prefix)
                        .invoke_async(&mut con),
                )
                .await?;
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
                let mut con = self.commands.clone();
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
            let mut con = self.commands.clone();
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
            let mut con = self.commands.clone();
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
                        Some(Value::Int(n)) => usize::try_from(*n).unwrap_or(0),
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
