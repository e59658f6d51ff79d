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
use futures_util::{FutureExt, StreamExt};
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use tokio_util::sync::CancellationToken;

mod codec;
mod scripts;

use self::codec::{decode_entries, decode_message, text};
use self::scripts::{PUBLISH_LUA, READ_LUA};

use super::{Broker, BrokerError, Delivery, Replay, ReplayLimit, ResumeFrom, TopicStats};
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

    /// The newest id Redis has issued (`0-0` before the first publish).
    async fn last_issued(&self) -> Result<EventId, BrokerError> {
        let mut con = self.commands.clone();
        let (ms, seq): (Option<u64>, Option<u64>) = self
            .timed(
                redis::cmd("HMGET")
                    .arg(self.key("meta"))
                    .arg("ms")
                    .arg("seq")
                    .query_async(&mut con),
            )
            .await?;
        Ok(EventId::new(ms.unwrap_or(0), seq.unwrap_or(0)))
    }

    /// Reads one topic's stream after `after` (and up to `until`, if given): the
    /// deleted-up-to id and the events.
    async fn read_topic(
        &self,
        topic: &TopicName,
        after: EventId,
        until: Option<EventId>,
        count: usize,
        newest: bool,
    ) -> Result<(Option<EventId>, Vec<Arc<Event>>), BrokerError> {
        let mut con = self.commands.clone();
        let start = format!("({}", after.raw());
        let end = until.map_or_else(|| "+".to_owned(), |id| id.raw());
        let value: Value = self
            .timed(
                self.read
                    .key(self.stream_key(topic.as_str()))
                    .arg(&start)
                    .arg(&end)
                    .arg(count.max(1))
                    .arg(if newest { "rev" } else { "fwd" })
                    .invoke_async(&mut con),
            )
            .await?;
        let Value::Array(mut parts) = value else {
            return Err(BrokerError::Unavailable(
                "unexpected reply to a history read".into(),
            ));
        };
        let entries = parts.pop().unwrap_or(Value::Nil);
        let deleted = parts
            .pop()
            .and_then(|v| text(&v))
            .and_then(|t| t.parse().ok());
        let mut events = decode_entries(topic, entries);
        if newest {
            events.reverse();
        }
        Ok((deleted, events))
    }

    /// Every topic with a stream in Redis.
    async fn known_topics(&self) -> Result<Vec<TopicName>, BrokerError> {
        let mut con = self.commands.clone();
        let names: Vec<String> = self
            .timed(
                redis::cmd("ZRANGE")
                    .arg(self.key("topics"))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut con),
            )
            .await?;
        Ok(names
            .iter()
            .filter_map(|n| TopicName::any(n).ok())
            .collect())
    }

    /// Topics matching the patterns that Redis knows.
    async fn matching_topics(&self, patterns: &[Pattern]) -> Result<Vec<TopicName>, BrokerError> {
        let mut names: Vec<TopicName> = patterns
            .iter()
            .filter_map(|p| match p {
                Pattern::Exact(name) => Some(name.clone()),
                Pattern::Prefix(_) | Pattern::Matcher(_) => None,
            })
            .collect();
        if patterns.iter().any(|p| !matches!(p, Pattern::Exact(_))) {
            for name in self.known_topics().await? {
                if patterns.iter().any(|p| p.matches(&name)) && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        // Topics whose events have an alternate topic that matches: read them too (replay
        // then keeps only the events that match by one of their topics).
        let mut con = self.commands.clone();
        let alternates: Vec<String> = self
            .timed(
                redis::cmd("ZRANGE")
                    .arg(self.key("alternates"))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut con),
            )
            .await?;
        for alternate in alternates.iter().filter_map(|a| TopicName::any(a).ok()) {
            if !patterns.iter().any(|p| p.matches(&alternate)) {
                continue;
            }
            let canonical: Vec<String> = self
                .timed(
                    redis::cmd("SMEMBERS")
                        .arg(self.key(&format!("alt:{alternate}")))
                        .query_async(&mut con),
                )
                .await?;
            for name in canonical.iter().filter_map(|c| TopicName::any(c).ok()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    /// Keeps the node's one subscription alive, forever.
    async fn deliver_forever(self: Arc<Self>, ready: tokio::sync::oneshot::Sender<()>) {
        let mut ready = Some(ready);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.subscribe_and_deliver(&mut ready).await {
                Ok(()) => tracing::warn!("Redis subscription ended; reconnecting"),
                Err(err) => tracing::warn!(%err, ?backoff, "Redis subscription failed; retrying"),
            }
            self.live.store(false, Ordering::Release);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            if self.live.load(Ordering::Acquire) {
                backoff = Duration::from_millis(100);
            }
        }
    }

    async fn subscribe_and_deliver(
        &self,
        ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), BrokerError> {
        let mut pubsub = self.timed(self.client.get_async_pubsub()).await?;
        self.timed(pubsub.subscribe(self.key("events"))).await?;
        // Anything published from here on is buffered on the subscription; first deliver what
        // was missed while it was down, from the streams.
        self.catch_up().await?;
        self.live.store(true, Ordering::Release);
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        tracing::info!("Redis subscription live");
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            match decode_message(message.get_payload_bytes()) {
                Some(event) => self.hand_over(Arc::new(event)),
                None => tracing::warn!("ignoring a malformed message on the events channel"),
            }
        }
        Ok(())
    }

    /// Delivers an event unless an equal or newer one was delivered already.
    fn hand_over(&self, event: Arc<Event>) {
        let mut delivered = self.lock_delivered();
        if event.id > *delivered {
            *delivered = event.id;
            self.delivery.deliver(&event);
        }
    }

    /// Delivers what was published while the subscription was down. Called once the new
    /// subscription is active: everything issued after the high-water mark read first arrives
    /// on it, so only events up to that mark are read from the streams. (Topics are read one
    /// after another; without the mark, an event read from a later topic could be handed over
    /// before an older one still on its way, which would then be dropped as already seen.)
    async fn catch_up(&self) -> Result<(), BrokerError> {
        let after = *self.lock_delivered();
        let patterns = self.delivery.subscribed_patterns();
        if patterns.is_empty() {
            return Ok(());
        }
        let high = self.last_issued().await?;
        let mut missed = Vec::new();
        for topic in self.matching_topics(&patterns).await? {
            let (_, events) = self
                .read_topic(&topic, after, Some(high), self.settings.history, false)
                .await?;
            missed.extend(events);
        }
        missed.sort_unstable_by_key(|e| e.id);
        if !missed.is_empty() {
            tracing::info!(events = missed.len(), "caught up from Redis history");
        }
        for event in missed {
            self.hand_over(event);
        }
        Ok(())
    }

    /// Removes streams of topics idle longer than the history age, every few seconds.
    async fn expire_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if let Err(err) = self.expire().await {
                tracing::debug!(%err, "history expiry skipped");
            }
        }
    }

    async fn expire(&self) -> Result<(), BrokerError> {
        let mut con = self.commands.clone();
        let cutoff = (crate::event::unix_now() * 1000.0) as u64;
        let cutoff = cutoff.saturating_sub(self.settings.max_age.as_millis() as u64);
        let stale: Vec<String> = self
            .timed(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.key("alternates"))
                    .arg("-inf")
                    .arg(format!("({cutoff}"))
                    .query_async(&mut con),
            )
            .await?;
        for alternate in stale {
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(self.key(&format!("alt:{alternate}")));
            pipe.cmd("ZREM").arg(self.key("alternates")).arg(&alternate);
            let _: Vec<Value> = self.timed(pipe.query_async(&mut con)).await?;
        }
        let idle: Vec<(String, u64)> = self
            .timed(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.key("topics"))
                    .arg("-inf")
                    .arg(format!("({cutoff}"))
                    .arg("WITHSCORES")
                    .query_async(&mut con),
            )
            .await?;
        for (topic, last_ms) in idle {
            // Remember that events up to this topic's last one are gone for good.
            let script = Script::new(
                r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'forgotten') or '0')
if cur < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'forgotten', ARGV[1]) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1",
            );
            let _: i64 = self
                .timed(
                    script
                        .key(self.key("meta"))
                        .key(self.stream_key(&topic))
                        .key(self.key("topics"))
                        .arg(last_ms)
                        .arg(&topic)
                        .invoke_async(&mut con),
                )
                .await?;
        }
        Ok(())
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

    fn resolve<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<EventId>, BrokerError>> {
        async move {
            let mut con = self.commands.clone();
            let found: Option<String> = self
                .timed(
                    redis::cmd("GET")
                        .arg(format!("{}{id}", self.key("id:")))
                        .query_async(&mut con),
                )
                .await?;
            Ok(found.and_then(|raw| raw.parse().ok()))
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
