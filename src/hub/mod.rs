//! The hub: topics, ids, history and subscriptions, with no HTTP in sight.
//!
//! [`Hub`] is a cheap handle joining the local [`Fanout`] (who is subscribed here) with a
//! [`Broker`] (who numbers and stores events, and carries them between nodes).

pub mod activity;
pub mod fanout;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::broker::{BrokerError, Delivery, Replay, ReplayLimit, ResumeFrom};
pub use crate::event::{Draft, Event};
pub use crate::sse::EventId;
pub use crate::topic::{Pattern, TopicError, TopicName};
pub use fanout::{Access, Fanout, Lagged, Subscription, TooManyPatterns};

use crate::broker::memory::{Limits, MemoryBroker};
use crate::broker::{Broker, TopicStats};
use activity::Rate;

/// An accepted publish.
#[derive(Debug, Clone)]
pub struct Published {
    /// The numbered event.
    pub event: Arc<Event>,
    /// Local subscriptions matching its topic when it was accepted.
    pub subscribers: usize,
}

/// A topic for `GET /api/topics` (a schema of the API document, hence `ToSchema`: a schema
/// type, not an HTTP one).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TopicInfo {
    /// Its name.
    pub topic: String,
    /// Local streams that would receive an event on it (exact and wildcard).
    pub subscribers: usize,
    /// Id of its newest event in history, as text.
    pub last_id: Option<String>,
    /// Events of it held in history.
    pub history: usize,
    /// Events per second published to it, over the last few seconds (see [`activity`]).
    pub events_per_second: f64,
}

/// One topic as the hub knows it, before deciding what a caller may see of it.
#[derive(Debug, Clone)]
struct TopicRow {
    name: TopicName,
    stats: Option<TopicStats>,
    subscribers: usize,
    rate: Rate,
}

/// Every topic with history, subscribers or recent events, by name: one read of the broker,
/// which callers with different grants each [`view`](Self::view).
#[derive(Debug, Clone, Default)]
pub struct TopicTable {
    rows: Vec<TopicRow>,
}

impl TopicTable {
    /// The topics a caller may know of; `private` says whose private events it may know of
    /// (their ids, counts and rates). A topic whose every known event is private, with no
    /// subscriber here, is left out for a caller without a grant on it.
    pub fn view(&self, private: impl Fn(&TopicName) -> bool) -> Vec<TopicInfo> {
        self.rows
            .iter()
            .filter_map(|row| {
                let open = private(&row.name);
                let (last_id, history) = match &row.stats {
                    Some(stats) if open => (stats.last_id, stats.history),
                    Some(stats) => (stats.last_public_id, stats.public_history),
                    None => (None, 0),
                };
                let rate = if open { row.rate.all } else { row.rate.public };
                if last_id.is_none() && history == 0 && row.subscribers == 0 && rate == 0.0 {
                    return None;
                }
                Some(TopicInfo {
                    topic: row.name.to_string(),
                    subscribers: row.subscribers,
                    last_id: last_id.map(|id| id.to_string()),
                    history,
                    events_per_second: (rate * 100.0).round() / 100.0,
                })
            })
            .collect()
    }

    /// Topics in the table (before any caller's view).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table holds no topic.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// See the module docs. Clone freely.
#[derive(Clone)]
pub struct Hub {
    fanout: Arc<Fanout>,
    broker: Arc<dyn Broker>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("broker", &self.broker.name())
            .finish()
    }
}

impl Hub {
    /// A hub on the in-memory broker, with per-subscriber queues of `queue` events.
    pub fn memory(limits: Limits, queue: usize) -> Self {
        let fanout = Arc::new(Fanout::new(queue, limits.max_topics));
        let broker = Arc::new(MemoryBroker::new(fanout.clone(), limits));
        Self::new(fanout, broker)
    }

    /// A hub on the memory broker with its history also in `journal` (`--data-dir`), starting
    /// from the `restored` events.
    pub fn durable(
        limits: Limits,
        queue: usize,
        journal: Arc<crate::broker::durable::Journal>,
        restored: Vec<Event>,
    ) -> Self {
        let fanout = Arc::new(Fanout::new(queue, limits.max_topics));
        let broker = Arc::new(MemoryBroker::with_journal(
            fanout.clone(),
            limits,
            journal,
            restored,
        ));
        Self::new(fanout, broker)
    }

    /// A hub on any broker that delivers into `fanout`.
    pub fn new(fanout: Arc<Fanout>, broker: Arc<dyn Broker>) -> Self {
        Self { fanout, broker }
    }

    /// Wakes every waiting stream once (see [`Fanout::wake_all`]): shutdown cancels its token,
    /// then calls this.
    pub fn wake_all(&self) {
        self.fanout.wake_all();
    }

    /// Sets how many subscribed patterns the fan-out's index cannot narrow may exist at once.
    pub fn set_max_broad_patterns(&self, max: usize) {
        self.fanout.set_max_broad(max);
    }

    /// The backend.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Publishes an event.
    ///
    /// # Errors
    /// When the broker refuses or cannot be reached.
    pub async fn publish(&self, draft: Draft) -> Result<Published, BrokerError> {
        let event = self.broker.publish(draft).await?;
        let subscribers = self.fanout.subscribers(&event.topic);
        Ok(Published { event, subscribers })
    }

    /// Subscribes to `patterns`; with `resume`, also returns the events to replay first (the
    /// subscription then skips those). Subscribing before reading history means nothing
    /// published in between is missed.
    ///
    /// # Errors
    /// When history cannot be read, or the hub holds as many subscribed topics as it may.
    pub async fn subscribe(
        &self,
        patterns: &[Pattern],
        resume: Option<ResumeFrom>,
        replay_limit: ReplayLimit,
        access: Option<Access>,
    ) -> Result<(Subscription, Replay), BrokerError> {
        // Where a stream without a cursor starts: the newest event delivered here before it
        // subscribed (exact: read under the fan-out's lock). Before this node delivered any,
        // the newest the broker issued, read before subscribing, so that it errs early (an
        // event of the instant before may come twice to a client resuming from it; none is
        // missed); `0-0` when none was ever issued.
        let floor = if resume.is_none() && !self.fanout.delivered_any() {
            match self.broker.last_id().await {
                Ok(last) => Some(last.unwrap_or_default()),
                Err(_) => None,
            }
        } else {
            None
        };
        let (mut subscription, start) =
            self.fanout
                .subscribe_from(patterns, access)
                .map_err(|err| match err {
                    TooManyPatterns::Topics => BrokerError::TooManyTopics,
                    TooManyPatterns::Broad => BrokerError::TooManyPatterns,
                })?;
        self.broker.watch(patterns).await?;
        let Some(from) = resume else {
            let replay = Replay {
                start: start.or(floor),
                ..Replay::default()
            };
            return Ok((subscription, replay));
        };
        let mut replay = self.broker.replay(patterns, from, replay_limit).await?;
        if let Some(last) = replay.events.last() {
            subscription.skip_through(last.id);
        } else if let ResumeFrom::After(id) = from {
            if !replay.gap {
                subscription.skip_through(id);
            }
        }
        // History respects private events as live delivery does.
        replay.events.retain(|e| subscription.may_see(e));
        Ok((subscription, replay))
    }

    /// The hub id of the earliest held event a publisher gave `id` on a topic (or alternate)
    /// that `patterns` watch: a cursor names a place only in the stream's own topics, so no
    /// publisher can move another topic's subscribers by reusing their ids.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    pub async fn resolve(
        &self,
        id: &str,
        patterns: &[Pattern],
    ) -> Result<Option<EventId>, BrokerError> {
        if id.is_empty() || id.len() > crate::sse::fields::MAX_LINE_TEXT {
            return Ok(None);
        }
        let cursors = self.broker.resolve(id).await?;
        Ok(cursors
            .iter()
            .filter(|cursor| {
                cursor
                    .topics
                    .iter()
                    .any(|topic| patterns.iter().any(|p| p.matches(topic)))
            })
            .map(|cursor| cursor.id)
            .min())
    }

    /// The id issued last, if any.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    pub async fn last_id(&self) -> Result<Option<EventId>, BrokerError> {
        self.broker.last_id().await
    }

    /// Distinct topics and prefixes subscribed on this node.
    pub fn subscribed_topic_count(&self) -> usize {
        self.fanout.pattern_count()
    }

    /// Events of one topic after `after` (oldest first), at most `limit`; private ones only
    /// with `include_private`. Pages past private events, so a page is short only at the end.
    ///
    /// # Errors
    /// When history cannot be read.
    pub async fn history(
        &self,
        topic: &TopicName,
        after: EventId,
        limit: usize,
        include_private: bool,
    ) -> Result<Vec<Arc<Event>>, BrokerError> {
        let mut events = self.broker.history(topic, after, limit).await?;
        if include_private {
            return Ok(events);
        }
        let mut visible = Vec::with_capacity(events.len());
        loop {
            let full = events.len() == limit;
            let next = events.last().map(|e| e.id);
            visible.extend(events.into_iter().filter(|e| !e.private));
            match next {
                Some(next) if full && visible.len() < limit => {
                    events = self.broker.history(topic, next, limit).await?;
                }
                _ => break,
            }
        }
        visible.truncate(limit);
        Ok(visible)
    }

    /// Every topic with history or subscribers, by name; `private` says whose private events
    /// the caller may know of (their ids and counts).
    ///
    /// # Errors
    /// When the broker cannot be reached.
    pub async fn topics(
        &self,
        private: impl Fn(&TopicName) -> bool,
    ) -> Result<Vec<TopicInfo>, BrokerError> {
        Ok(self.topic_table().await?.view(private))
    }

    /// Every topic with history or subscribers, with its events per second, for callers to
    /// [`view`](TopicTable::view). A topic the broker forgot (at the topic cap) is gone from
    /// the table at once, even if it still had events in the rate window. Costs one read of the broker's topics and one look-up per
    /// topic in the local fan-out.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    pub async fn topic_table(&self) -> Result<TopicTable, BrokerError> {
        let mut rows: BTreeMap<TopicName, TopicRow> = BTreeMap::new();
        let row = |name: &TopicName| TopicRow {
            name: name.clone(),
            stats: None,
            subscribers: 0,
            rate: Rate::default(),
        };
        for stats in self.broker.topics().await? {
            let name = stats.name.clone();
            rows.entry(name.clone()).or_insert_with(|| row(&name)).stats = Some(stats);
        }
        for name in self.fanout.subscribed_topics() {
            rows.entry(name.clone()).or_insert_with(|| row(&name));
        }
        for (name, rate) in self.fanout.activity().rates() {
            if let Some(row) = rows.get_mut(&name) {
                row.rate = rate;
            }
        }
        let rows = rows
            .into_values()
            .map(|mut row| {
                row.subscribers = self.fanout.subscribers(&row.name);
                row
            })
            .collect();
        Ok(TopicTable { rows })
    }

    /// Housekeeping once a second: starts a new second of the per-topic event counts.
    pub fn tick(&self) {
        self.fanout.activity().rotate();
    }
}
