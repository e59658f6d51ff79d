//! A node's delivery from a Redis Cluster: sharded subscriptions to the partitions its streams
//! need, kept alive through failovers and slot moves, merged into one id order.
//!
//! One task owns the [`Merge`]. For each shard it delivers from (a replica when publishes wait
//! for replicas, so what it delivers survives the primary's death; else the primary) it holds
//! one RESP3 connection on which it `SSUBSCRIBE`s, per partition it follows, the partition's
//! tick channel and the channel of each topic its streams name (or, for a wildcard or pattern
//! stream, the partition's channel of every event). One connection per server delivers the
//! messages of all those channels in the order the server published them, so a partition's
//! events arrive in id order whatever channels carry them.
//!
//! Following a partition, or following it again after its subscription broke (the connection
//! dropped, a ping went unanswered, the server said `sunsubscribe` because the slot moved, or
//! the partition moved to another shard), is always the same four steps:
//!
//! 1. subscribe on the shard that serves it now (the crate's cluster client does not follow a
//!    promoted replica: measured, it lost most messages; so this is done here);
//! 2. tick it (see `TICK_LUA`) past what the merge released: it returns the partition's
//!    watermark `W`, and every id it issues later is above it;
//! 3. read from its streams the events of the node's topics after the partition's old mark (or
//!    after what was released, for a new partition) up to `W`;
//! 4. set the mark to `W`: what the channel repeats at or below it is dropped.
//!
//! A topic added to a partition already followed is subscribed, the partition ticked, and the
//! topic's history up to the tick merged in ([`Merge::insert`]); the mark then rises with the
//! tick message, in channel order.
//!
//! While a partition is down, its mark cannot rise, so the merge holds back newer events of
//! the other partitions: streams on this node pause (nothing is lost or reordered) until the
//! shard is back, one failover time. Partitions a node follows are followed until it stops
//! (their tick channels, one per partition); a topic's channel is dropped once no stream on
//! the node has named it for a liveness period (`prune.rs`), so what a node subscribes to is
//! bounded by what its streams name now, not by every topic they ever named.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot};

mod prune;

use super::codec::{decode_message, text};
use super::link::Node;
use super::merge::Merge;
use super::RedisBroker;
use crate::broker::BrokerError;
use crate::sse::EventId;
use crate::topic::TopicName;

/// How often subscriptions are pinged and the cluster's shape checked.
const LIVENESS: Duration = Duration::from_secs(1);
/// How often lagging partitions are asked for a tick again when one did not arrive.
const RETICK: Duration = Duration::from_millis(50);
/// How long an event waits for an idle partition before that partition is asked for a tick:
/// under load the partition usually sends an event of its own sooner, which costs nothing.
const TICK_AFTER: Duration = Duration::from_millis(2);
/// Events the merge may hold back (while a partition is down); past it, they are dropped and
/// read again from history once every partition is back.
const MAX_HELD: usize = 100_000;

enum Input {
    /// A push from subscription `generation`.
    Push(u64, PushInfo),
    /// Follow these (partition, topic, or `None` for all its events); answer once followed.
    Watch(Wants, oneshot::Sender<Result<(), BrokerError>>),
}

/// What to follow: per partition, a topic's channel, or (`None`) every event.
type Wants = Vec<(usize, Option<String>)>;

/// What a node follows of one partition.
#[derive(Default)]
struct Wanted {
    all: bool,
    topics: BTreeSet<String>,
}

/// The handle the broker keeps on the task.
pub(super) struct Follower {
    tx: mpsc::UnboundedSender<Input>,
}

impl Follower {
    /// The follower and its task (to spawn), starting with everything up to `released` seen.
    pub(super) fn start(
        broker: Arc<RedisBroker>,
        released: EventId,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            prefixes: (0..broker.layout.count())
                .map(|p| (broker.key(p, ""), p))
                .collect(),
            wanted: HashMap::new(),
            broker,
            merge: Merge::new(released),
            subs: HashMap::new(),
            on: HashMap::new(),
            broken: BTreeSet::new(),
            ticking: HashMap::new(),
            waiting: None,
            generation: 0,
            tx: tx.clone(),
            idle: BTreeSet::new(),
            leaving: BTreeSet::new(),
        };
        (Self { tx }, task.run(rx))
    }

    /// Follows `wants`; resolves once their events reach the node.
    pub(super) async fn watch(&self, wants: Wants) -> Result<(), BrokerError> {
        let (answer, answered) = oneshot::channel();
        self.tx
            .send(Input::Watch(wants, answer))
            .map_err(|_| BrokerError::Unavailable("the broker is closing".into()))?;
        answered
            .await
            .map_err(|_| BrokerError::Unavailable("the broker is closing".into()))?
    }
}

/// One subscription connection to a shard's node.
struct Sub {
    con: MultiplexedConnection,
    addr: String,
    generation: u64,
}

struct Task {
    broker: Arc<RedisBroker>,
    /// Each partition's key prefix (`PREFIX{TAG}:`), to tell which partition a channel is of.
    prefixes: HashMap<String, usize>,
    /// What is followed of each partition.
    wanted: HashMap<usize, Wanted>,
    merge: Merge,
    /// Subscriptions by node address.
    subs: HashMap<String, Sub>,
    /// Partition → the generation of the subscription that carries it.
    on: HashMap<usize, u64>,
    /// Followed partitions whose subscription broke.
    broken: BTreeSet<usize>,
    /// Partitions asked for a tick, and when.
    ticking: HashMap<usize, Instant>,
    /// The oldest event held back for idle partitions, and when to ask them for a tick.
    waiting: Option<(EventId, Instant)>,
    generation: u64,
    tx: mpsc::UnboundedSender<Input>,
    /// Topic channels no stream named at the last check (dropped if still unnamed at the next).
    idle: BTreeSet<(usize, String)>,
    /// Channels this node unsubscribed from itself: their `sunsubscribe` is not a moved slot.
    leaving: BTreeSet<String>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        let mut alive = tokio::time::interval(LIVENESS);
        alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retick = tokio::time::interval(RETICK);
        retick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = self
                .waiting
                .map(|(_, at)| tokio::time::Instant::from_std(at));
            tokio::select! {
                _ = async { tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)).await }, if due.is_some() => {}
                input = rx.recv() => match input {
                    Some(Input::Push(generation, push)) => self.push(generation, push),
                    Some(Input::Watch(wants, answer)) => {
                        let _ = answer.send(self.want(wants).await);
                    }
                    None => return,
                },
                _ = alive.tick() => self.check().await,
                _ = retick.tick() => {}
            }
            self.release();
        }
    }

    /// Hands over what the merge released, and asks idle partitions that hold it back for a
    /// tick.
    fn release(&mut self) {
        if self.merge.held() > MAX_HELD {
            tracing::warn!(
                held = MAX_HELD,
                "too many events held back; reading them again later"
            );
            self.merge.reset();
            self.broken.extend(self.merge.partitions());
        }
        let ready = self.merge.ready();
        if let Some(last) = ready.last() {
            *self.broker.lock_delivered() = last.id;
        }
        for event in ready {
            self.broker.delivery.deliver(&event);
        }
        let lagging = self.merge.lagging();
        let Some(&(_, oldest)) = lagging.first() else {
            self.waiting = None;
            return;
        };
        match self.waiting {
            Some((id, at)) if id == oldest => {
                if Instant::now() < at {
                    return;
                }
            }
            _ => {
                self.waiting = Some((oldest, Instant::now() + TICK_AFTER));
                return;
            }
        }
        // Asked now; if no tick lands, ask again later.
        self.waiting = Some((oldest, Instant::now() + RETICK));
        for (p, floor) in lagging {
            if self.broken.contains(&p)
                || self.ticking.get(&p).is_some_and(|at| at.elapsed() < RETICK)
            {
                continue;
            }
            self.ticking.insert(p, Instant::now());
            let broker = Arc::clone(&self.broker);
            tokio::spawn(async move {
                if let Err(err) = broker.tick_partition(p, floor).await {
                    tracing::debug!(%err, partition = p, "tick failed");
                }
            });
        }
    }

    fn push(&mut self, generation: u64, push: PushInfo) {
        let Some(sub) = self.subs.values().find(|s| s.generation == generation) else {
            return;
        };
        let addr = sub.addr.clone();
        match push.kind {
            PushKind::SMessage => {
                let Some(p) = push
                    .data
                    .first()
                    .and_then(text)
                    .and_then(|c| self.partition_of(&c))
                else {
                    return;
                };
                if self.on.get(&p) != Some(&generation) || self.broken.contains(&p) {
                    return;
                }
                let Some(Value::BulkString(payload)) = push.data.get(1) else {
                    return;
                };
                if !payload.contains(&b'\n') {
                    // A tick: just the partition's watermark.
                    if let Some(id) = std::str::from_utf8(payload)
                        .ok()
                        .and_then(|t| t.parse().ok())
                    {
                        self.ticking.remove(&p);
                        self.merge.tick(p, id);
                    }
                    return;
                }
                match decode_message(payload) {
                    Some(event) => {
                        self.merge.event(p, Arc::new(event));
                    }
                    None => tracing::warn!("ignoring a malformed message on a partition channel"),
                }
            }
            PushKind::SUnsubscribe => {
                let channel = push.data.first().and_then(text);
                // A channel this node dropped (`prune`): nothing moved.
                if channel.as_ref().is_some_and(|c| self.leaving.remove(c)) {
                    return;
                }
                // The slot moved (or the server dropped us): follow the partition again.
                if let Some(p) = channel.and_then(|c| self.partition_of(&c)) {
                    if self.on.get(&p) == Some(&generation) {
                        tracing::warn!(partition = p, redis = %addr, "partition unsubscribed by Redis");
                        self.broken.insert(p);
                        self.broker.link.suspect();
                    }
                }
            }
            PushKind::Disconnection => self.lose(&addr),
            _ => {}
        }
    }

    /// The partition a channel belongs to.
    fn partition_of(&self, channel: &str) -> Option<usize> {
        let end = channel.find("}:")? + 2;
        self.prefixes.get(&channel[..end]).copied()
    }

    /// Follows what `wants` names that is not followed yet.
    async fn want(&mut self, wants: Wants) -> Result<(), BrokerError> {
        let mut fresh: BTreeMap<usize, Vec<Option<String>>> = BTreeMap::new();
        for (p, topic) in wants {
            let wanted = self.wanted.entry(p).or_default();
            let new = match &topic {
                _ if wanted.all => false,
                None => true,
                Some(topic) => !wanted.topics.contains(topic),
            };
            let queued = fresh.entry(p).or_default();
            if new && !queued.contains(&topic) {
                queued.push(topic);
            }
        }
        for (p, channels) in fresh {
            let healthy = self.merge.follows(p) && !self.broken.contains(&p);
            if healthy && channels.is_empty() {
                continue;
            }
            if healthy {
                self.add_channels(p, &channels).await?;
            }
            let wanted = self.wanted.entry(p).or_default();
            for topic in channels {
                match topic {
                    None => wanted.all = true,
                    Some(topic) => {
                        wanted.topics.insert(topic);
                    }
                }
            }
            if !healthy {
                self.follow(&[p]).await?;
            }
        }
        Ok(())
    }

    /// The channel names of `topics` (or all of partition `p`'s events, for `None`).
    fn channels(&self, p: usize, topics: &[Option<String>]) -> Vec<String> {
        topics
            .iter()
            .map(|topic| match topic {
                None => self.broker.key(p, "events"),
                Some(topic) => self.broker.key(p, &format!("ch:{topic}")),
            })
            .collect()
    }

    /// Subscribes to more channels of a partition already followed, and merges in what they
    /// carried before (see the module docs).
    async fn add_channels(
        &mut self,
        p: usize,
        topics: &[Option<String>],
    ) -> Result<(), BrokerError> {
        let feed = self.broker.link.feed(p);
        self.subscribe(&feed, &self.channels(p, topics)).await?;
        let after = self.merge.released();
        let mark = self.broker.tick_partition(p, after).await?;
        for event in self.history(p, topics, after, mark).await? {
            self.merge.insert(p, event);
        }
        Ok(())
    }

    /// Events of `topics` (or, for `None`, of every topic the node's streams match) in
    /// partition `p`, after `after` up to `until`, in id order.
    async fn history(
        &self,
        p: usize,
        topics: &[Option<String>],
        after: EventId,
        until: EventId,
    ) -> Result<Vec<Arc<crate::event::Event>>, BrokerError> {
        let mut names: Vec<TopicName> = topics
            .iter()
            .flatten()
            .filter_map(|t| TopicName::any(t).ok())
            .collect();
        if topics.iter().any(Option::is_none) {
            let patterns = self.broker.delivery.subscribed_patterns();
            if !patterns.is_empty() {
                names.extend(self.broker.matching_topics(&patterns).await?);
            }
        }
        names.sort();
        names.dedup();
        let mut found = Vec::new();
        for topic in names {
            if !self.broker.layout.holding(&topic).contains(&p) {
                continue;
            }
            let history = self.broker.settings.history;
            let (_, events) = self
                .broker
                .read_in(p, &topic, after, Some(until), history, false)
                .await?;
            found.extend(events);
        }
        found.sort_unstable_by_key(|e| e.id);
        found.dedup_by_key(|e| e.id);
        Ok(found)
    }

    /// `SSUBSCRIBE`s `channels` on the subscription connection to `node` (opened if needed).
    async fn subscribe(&mut self, node: &Node, channels: &[String]) -> Result<u64, BrokerError> {
        let addr = node.addr.as_str();
        let generation = self.subscription(addr, &node.url).await?;
        let timeout = self.broker.settings.timeout;
        let sub = self
            .subs
            .get_mut(addr)
            .ok_or_else(|| BrokerError::Unavailable("subscription gone".into()))?;
        let mut con = sub.con.clone();
        for channel in channels {
            // One channel per command: the crate counts one confirmation per reply.
            let mut ssubscribe = redis::cmd("SSUBSCRIBE");
            ssubscribe.arg(channel);
            let subscribed = ssubscribe.query_async::<Value>(&mut con);
            let failed = match tokio::time::timeout(timeout, subscribed).await {
                Ok(Ok(_)) => continue,
                Ok(Err(err)) => err.to_string(),
                Err(_) => "SSUBSCRIBE timed out".to_owned(),
            };
            self.subs.remove(addr);
            return Err(BrokerError::Unavailable(failed));
        }
        Ok(generation)
    }

    /// The subscription to `addr` is gone: every partition on it must be followed again.
    fn lose(&mut self, addr: &str) {
        let Some(sub) = self.subs.remove(addr) else {
            return;
        };
        for (&p, _) in self.on.iter().filter(|(_, &g)| g == sub.generation) {
            self.broken.insert(p);
        }
        // Its pending `sunsubscribe`s died with it (an entry whose answer never came is gone
        // too; at worst a later one is taken for a moved slot and the partition followed again).
        self.leaving.clear();
        tracing::warn!(redis = %addr, "cluster subscription lost");
        self.broker.live.store(false, Ordering::Release);
        self.broker.link.suspect();
    }

    /// Pings every subscription, notices partitions that moved, and follows broken ones again.
    async fn check(&mut self) {
        let timeout = self.broker.settings.timeout;
        let mut dead = Vec::new();
        for (addr, sub) in &mut self.subs {
            let ping = redis::cmd("PING");
            let pong = tokio::time::timeout(timeout, ping.query_async::<Value>(&mut sub.con));
            if !matches!(pong.await, Ok(Ok(_))) {
                dead.push(addr.clone());
            }
        }
        for addr in dead {
            self.lose(&addr);
        }
        for p in self.merge.partitions() {
            let feed = self.broker.link.feed(p);
            let on = self.on.get(&p).copied();
            let moved = self
                .subs
                .get(&feed.addr)
                .is_none_or(|sub| Some(sub.generation) != on);
            if moved && !self.broken.contains(&p) {
                tracing::warn!(partition = p, redis = %feed.addr, "partition moved; following it");
                self.broken.insert(p);
            }
        }
        let broken: Vec<usize> = self.broken.iter().copied().collect();
        if !broken.is_empty() {
            if let Err(err) = self.follow(&broken).await {
                tracing::warn!(%err, "partitions not followed yet; retrying");
            }
        }
        self.broker
            .live
            .store(self.broken.is_empty(), Ordering::Release);
        self.prune().await;
    }

    /// Follows `partitions` (again, for broken ones): see the module docs.
    async fn follow(&mut self, partitions: &[usize]) -> Result<(), BrokerError> {
        for &p in partitions {
            if self.merge.follows(p) && !self.broken.contains(&p) {
                continue;
            }
            if let Err(err) = self.follow_one(p).await {
                if self.merge.follows(p) {
                    self.broken.insert(p);
                }
                self.broker.link.suspect();
                return Err(err);
            }
            self.broken.remove(&p);
        }
        Ok(())
    }

    async fn follow_one(&mut self, p: usize) -> Result<(), BrokerError> {
        let feed = self.broker.link.feed(p);
        let topics: Vec<Option<String>> = match self.wanted.get(&p) {
            Some(w) if w.all => vec![None],
            Some(w) => w.topics.iter().cloned().map(Some).collect(),
            None => Vec::new(),
        };
        let mut channels = vec![self.broker.key(p, "ticks")];
        channels.extend(self.channels(p, &topics));
        let generation = self.subscribe(&feed, &channels).await?;
        self.on.insert(p, generation);
        // From here the channels carry every event after the tick; read the rest.
        let from = self.merge.mark(p).unwrap_or(self.merge.released());
        let mark = self.broker.tick_partition(p, self.merge.released()).await?;
        self.merge.follow(p, from);
        let missed = self.history(p, &topics, from, mark).await?;
        if !missed.is_empty() {
            tracing::info!(
                partition = p,
                events = missed.len(),
                "caught up from Redis history"
            );
        }
        for event in missed {
            self.merge.event(p, event);
        }
        self.merge.tick(p, mark);
        Ok(())
    }

    /// The generation of the subscription connection to `addr`, opened if there is none.
    async fn subscription(&mut self, addr: &str, url: &str) -> Result<u64, BrokerError> {
        if let Some(sub) = self.subs.get(addr) {
            return Ok(sub.generation);
        }
        self.generation += 1;
        let generation = self.generation;
        let tx = self.tx.clone();
        let sender = move |push: PushInfo| {
            tx.send(Input::Push(generation, push))
                .map_err(|_| redis::aio::SendError)
        };
        let settings = &self.broker.settings;
        let con =
            super::link::open_push(url, settings.ca.as_deref(), settings.timeout, sender).await?;
        self.subs.insert(
            addr.to_owned(),
            Sub {
                con,
                addr: addr.to_owned(),
                generation,
            },
        );
        Ok(generation)
    }
}
