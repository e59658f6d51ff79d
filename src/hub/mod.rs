//! The hub: topics, ids, history and subscriptions, with no HTTP in sight.
//!
//! [`Hub`] is a cheap handle joining the local [`Fanout`] (who is subscribed here) with a
//! [`Broker`] (who numbers and stores events, and carries them between nodes).

pub mod fanout;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::broker::{BrokerError, Delivery, Replay, ReplayLimit, ResumeFrom};
pub use crate::event::{Draft, Event};
pub use crate::sse::EventId;
pub use crate::topic::{Pattern, TopicError, TopicName};
pub use fanout::{Access, Fanout, Lagged, Subscription};

use crate::broker::memory::{Limits, MemoryBroker};
use crate::broker::Broker;

/// An accepted publish.
#[derive(Debug, Clone)]
pub struct Published {
    /// The numbered event.
    pub event: Arc<Event>,
    /// Local subscriptions matching its topic when it was accepted.
    pub subscribers: usize,
}

/// A topic for `GET /api/topics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicInfo {
    /// Its name.
    pub topic: String,
    /// Local streams that would receive an event on it (exact and wildcard).
    pub subscribers: usize,
    /// Id of its newest event in history, as text.
    pub last_id: Option<String>,
    /// Events of it held in history.
    pub history: usize,
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
        let mut subscription = self
            .fanout
            .subscribe(patterns, access)
            .map_err(|_| BrokerError::TooManyTopics)?;
        let Some(from) = resume else {
            return Ok((subscription, Replay::default()));
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

    /// The hub id of the earliest held event a publisher gave `id`, if any.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    pub async fn resolve(&self, id: &str) -> Result<Option<EventId>, BrokerError> {
        if id.is_empty() || id.len() > crate::sse::fields::MAX_LINE_TEXT {
            return Ok(None);
        }
        self.broker.resolve(id).await
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
        let mut topics: BTreeMap<TopicName, TopicInfo> = BTreeMap::new();
        for stats in self.broker.topics().await? {
            let (last_id, history) = if private(&stats.name) {
                (stats.last_id, stats.history)
            } else {
                (stats.last_public_id, stats.public_history)
            };
            if last_id.is_none() && history == 0 && self.fanout.subscribers(&stats.name) == 0 {
                continue;
            }
            topics.insert(
                stats.name.clone(),
                TopicInfo {
                    topic: stats.name.to_string(),
                    subscribers: 0,
                    last_id: last_id.map(|id| id.to_string()),
                    history,
                },
            );
        }
        for name in self.fanout.subscribed_topics() {
            topics.entry(name.clone()).or_insert_with(|| TopicInfo {
                topic: name.to_string(),
                subscribers: 0,
                last_id: None,
                history: 0,
            });
        }
        Ok(topics
            .into_iter()
            .map(|(name, mut info)| {
                info.subscribers = self.fanout.subscribers(&name);
                info
            })
            .collect())
    }
}
