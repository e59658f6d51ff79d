//! The Redis broker: several ssehub nodes behave as one hub.
//!
//! - **Ids and history** live in Redis. One Lua script, atomic on the server, takes the next id
//!   (`MS-SEQ`: Redis' clock in ms, never decreasing, and a counter in a hash), appends the
//!   event to the topic's stream (`XADD` with approximate `MAXLEN ~` trimming; reads hide what
//!   is past the history count or age) and `PUBLISH`es it on one channel. The script takes the
//!   publishes that queued while the previous one ran, in a batch ([`commit`]). A publish is
//!   accepted only when the script returns, and with `min_replicas` only once `WAIT` says that
//!   many replicas hold it.
//! - **Where**: one Redis by URL, or the primary that Redis Sentinel names, followed through
//!   failovers ([`link`]); or a Redis Cluster, over which topics are spread in partitions
//!   ([`partition`]), each followed to the shard that serves it ([`topology`]), delivered by
//!   sharded pub/sub and merged back into one id order on each node ([`cluster`], [`merge`]).
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
//! Keys (under the prefix, `ssehub:` by default, and in a Cluster the partition's hash tag):
//! `meta` (hash: last `ms`, `seq`, and `forgotten`, the newest ms of a removed topic),
//! `topics` (sorted set: topic → last publish ms), `topic:NAME` (stream), and the channel
//! `events`. Streams of topics idle longer than the history age are removed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::Script;

use tokio_util::sync::CancellationToken;

mod cluster;
mod codec;
mod commit;
mod delivery;
mod expiry;
mod link;
mod listing;
mod merge;
mod partition;
mod publish;
mod reads;
mod scripts;
mod sentinel;
mod tickets;
mod topology;

pub use self::sentinel::{is_sentinel, SENTINEL_SCHEME, SENTINEL_TLS_SCHEME};
pub use self::topology::{is_cluster, CLUSTER_SCHEME, CLUSTER_TLS_SCHEME};

use self::partition::Layout;
use self::scripts::{PUBLISH_LUA, READ_LUA, RESOLVE_LUA, TICK_LUA};

use super::{Broker, BrokerError, Cursor, Delivery, Replay, ReplayLimit, ResumeFrom, TopicStats};
use crate::event::{Draft, Event};
use crate::sse::EventId;
use crate::topic::{Pattern, TopicName};

/// Settings of the Redis broker.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port/db`, `rediss://...` for TLS,
    /// `redis+sentinel://[:password@]host:port[,host:port…]/MASTER_NAME`, or
    /// `redis+cluster://[:password@]host:port[,host:port…]`.
    pub url: String,
    /// Partitions topics are spread over in a Redis Cluster (ignored otherwise).
    pub partitions: usize,
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

/// See the module docs.
pub struct RedisBroker {
    link: Arc<link::Link>,
    layout: Layout,
    /// Per partition: where publishes go (in batches, see [`commit`]).
    lanes: Vec<commit::Lanes>,
    settings: RedisSettings,
    delivery: Arc<dyn Delivery>,
    read: Script,
    tick: Script,
    /// In a Cluster: the task that follows partitions (see [`cluster`]).
    follower: std::sync::OnceLock<cluster::Follower>,
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
        let layout = match target {
            sentinel::Target::Cluster { .. } => {
                if settings.prefix.contains(['{', '}']) {
                    return Err(BrokerError::Setup(
                        "in a Redis Cluster the key prefix cannot hold { or }".into(),
                    ));
                }
                Layout::cluster(&settings.prefix, settings.partitions)
            }
            _ => Layout::single(&settings.prefix),
        };
        let link = link::Link::connect(
            target,
            layout.clone(),
            settings.ca.clone(),
            settings.timeout,
            settings.min_replicas > 0,
        );
        let link = Arc::new(link.await?);
        let publish = Script::new(PUBLISH_LUA);
        let per_partition = if layout.count() == 1 && settings.min_replicas > 0 {
            commit::LANES
        } else {
            1
        };
        let lanes = (0..layout.count())
            .map(|p| {
                let setup = commit::Setup {
                    link: Arc::clone(&link),
                    partition: p,
                    script: publish.clone(),
                    head: publish::head(&layout, &settings, &publish, link.is_cluster(), p),
                    replicas: settings.min_replicas,
                    timeout: settings.timeout,
                };
                commit::Lanes::start(setup, per_partition)
            })
            .collect();
        let broker = Arc::new(Self {
            link,
            layout,
            lanes,
            settings,
            delivery,
            read: Script::new(READ_LUA),
            tick: Script::new(TICK_LUA),
            follower: std::sync::OnceLock::new(),
            live: AtomicBool::new(false),
            delivered: Mutex::new(EventId::default()),
            stop: CancellationToken::new(),
        });
        let start = broker.newest_issued().await?;
        *broker.lock_delivered() = start;
        if broker.link.is_cluster() {
            let (follower, task) = cluster::Follower::start(Arc::clone(&broker), start);
            let _ = broker.follower.set(follower);
            let stop = broker.stop.clone();
            tokio::spawn(async move { stop.run_until_cancelled(task).await });
            broker.live.store(true, Ordering::Release);
        } else {
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let stop = broker.stop.clone();
            let task = Arc::clone(&broker).deliver_forever(ready_tx);
            tokio::spawn(async move { stop.run_until_cancelled(task).await });
            // Wait (bounded) until the subscription is live, so a node that says it started
            // does not miss the first publish.
            let _ = tokio::time::timeout(broker.settings.timeout, ready_rx).await;
        }
        let stop = broker.stop.clone();
        let task = Arc::clone(&broker).expire_forever();
        tokio::spawn(async move { stop.run_until_cancelled(task).await });
        let stop = broker.stop.clone();
        let task = Arc::clone(&broker.link).watch_forever();
        tokio::spawn(async move { stop.run_until_cancelled(task).await });
        Ok(broker)
    }

    /// A handle on partition `p`'s primary's command connection: for writes.
    fn con(&self, p: usize) -> ConnectionManager {
        self.link.primary(p).commands.clone()
    }

    /// A handle for reading partition `p`: on what the node delivers from (see `Link::feed`),
    /// so history agrees with what streams were sent. In a Cluster, a replica answers keyed
    /// reads only after `READONLY`, so reads go to the primary there.
    fn reader(&self, p: usize) -> ConnectionManager {
        if self.link.is_cluster() {
            self.con(p)
        } else {
            self.link.feed(p).commands.clone()
        }
    }

    fn key(&self, p: usize, name: &str) -> String {
        self.layout.key(p, name)
    }

    fn stream_key(&self, p: usize, topic: &str) -> String {
        self.layout.key(p, &format!("topic:{topic}"))
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
            let partition = self.layout.of_draft(&draft);
            let lanes = self
                .lanes
                .get(partition)
                .ok_or_else(|| BrokerError::Unavailable(format!("no partition {partition}")))?;
            let started = std::time::Instant::now();
            let id = lanes.publish(self.entry(partition, &draft)).await;
            self.settings
                .round_trip
                .record(started.elapsed().as_secs_f64());
            let id = id?;
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
            // In a Cluster, the mark is what this node's merge released: every event after it
            // still reaches the stream live (the hub has called `watch`).
            let last = if self.link.is_cluster() {
                *self.lock_delivered()
            } else {
                self.last_issued(0).await?
            };
            let (after, mut gap) = match from {
                ResumeFrom::After(id) if id <= last || self.issued(id).await? => (id, false),
                ResumeFrom::Earliest => (EventId::default(), false),
                _ => (EventId::default(), true),
            };
            if !gap {
                let forgotten_ms = self.forgotten_ms().await?;
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

    fn watch<'a>(&'a self, patterns: &'a [Pattern]) -> BoxFuture<'a, Result<(), BrokerError>> {
        async move {
            match self.follower.get() {
                Some(follower) => follower.watch(self.wants_for(patterns)).await,
                None => Ok(()),
            }
        }
        .boxed()
    }

    fn last_id(&self) -> BoxFuture<'_, Result<Option<EventId>, BrokerError>> {
        async move {
            let last = if self.link.is_cluster() {
                *self.lock_delivered()
            } else {
                self.last_issued(0).await?
            };
            Ok((last != EventId::default()).then_some(last))
        }
        .boxed()
    }

    fn resolve<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Cursor>, BrokerError>> {
        async move {
            let mut pairs: Vec<(String, String)> = Vec::new();
            for p in 0..self.layout.count() {
                let mut con = self.reader(p);
                let found: Vec<(String, String)> = self
                    .timed(
                        redis::Script::new(RESOLVE_LUA)
                            .key(self.key(p, &format!("id:{id}")))
                            .invoke_async(&mut con),
                    )
                    .await?;
                pairs.extend(found);
            }
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
        self.list_topics().boxed()
    }

    fn ready(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn once_store(&self) -> Option<&dyn super::OnceStore> {
        Some(self)
    }

    fn close(&self) {
        self.stop.cancel();
    }
}

fn unavailable(err: redis::RedisError) -> BrokerError {
    BrokerError::Unavailable(err.to_string())
}
