//! Broker backends: where event ids are assigned, history is kept, and how events reach the
//! local fan-out (and, in a cluster, every node's).
//!
//! The hub talks to a backend only through the object-safe [`Broker`] trait, so the in-memory
//! default and a clustered backend are interchangeable behind `Arc<dyn Broker>`. A backend
//! hands events to a [`Delivery`] (the hub's local fan-out implements it) one at a time, in id
//! order. Both traits are defined here, so dependencies run one way: `hub` → `broker` →
//! (`event`, `topic`, `sse`); no backend knows the hub.

pub mod durable;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::event::{Draft, Event};
use crate::sse::EventId;
use crate::topic::{Pattern, TopicName};

/// Why a backend could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The backend cannot be reached now; try again later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The hub already holds as many topics as it may.
    #[error("too many topics")]
    TooManyTopics,
    /// The broker cannot be set up as configured (a bad URL or certificate file).
    #[error("broker setup: {0}")]
    Setup(String),
    /// The fan-out holds as many patterns that match every topic alike as it may.
    #[error("too many broad subscription patterns")]
    TooManyPatterns,
}

/// One held event bearing a publisher-chosen id: its hub id and its topics (canonical first,
/// then alternates), so that a stream resolves a cursor only among the topics it watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The hub id of the event that bears the publisher's id.
    pub id: EventId,
    /// Its topics.
    pub topics: Vec<TopicName>,
}

/// Where a resuming stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFrom {
    /// After this event id.
    After(EventId),
    /// The client sent an id this hub never issued (malformed or from elsewhere).
    Unknown,
    /// Everything history holds (Mercure's reserved `earliest`): no gap to report.
    Earliest,
}

/// Events to replay to a resuming stream.
#[derive(Debug, Default)]
pub struct Replay {
    /// Matching events after the requested id still in history, in id order.
    pub events: Vec<Arc<Event>>,
    /// Some events after the requested id are no longer held (or the id was unknown).
    pub gap: bool,
    /// A stream without a cursor: where it starts, the newest event issued before it (none
    /// after it is missed by resuming from this id). `None` with a cursor, or when unknown.
    pub start: Option<EventId>,
}

/// How much one resume may replay: the newest events that fit both bounds are kept, and
/// trimming counts as a gap (the stream says older events were skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLimit {
    /// Most events.
    pub events: usize,
    /// Most bytes, counted as [`Event::weight`].
    pub bytes: usize,
}

impl Replay {
    /// Matching events gathered from several topics, put in id order and trimmed to the newest
    /// that fit `limit`: what is replayed then joins the live events without a hole.
    pub fn newest(mut events: Vec<Arc<Event>>, limit: ReplayLimit, gap: bool) -> Self {
        events.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
        let mut kept = 0;
        let mut bytes = 0usize;
        for event in &events {
            bytes = bytes.saturating_add(event.weight());
            if kept == limit.events || bytes > limit.bytes {
                break;
            }
            kept += 1;
        }
        let trimmed = kept < events.len();
        events.truncate(kept);
        events.reverse();
        Self {
            events,
            gap: gap || trimmed,
            start: None,
        }
    }
}

/// A topic as the backend knows it.
#[derive(Debug, Clone)]
pub struct TopicStats {
    /// Its name.
    pub name: TopicName,
    /// Id of the newest event published to it, if history still knows one.
    pub last_id: Option<EventId>,
    /// Events of it held in history.
    pub history: usize,
    /// Id of its newest public event, if known.
    pub last_public_id: Option<EventId>,
    /// Public events of it held in history.
    pub public_history: usize,
}

/// Where a backend hands the events it numbered: the local subscribers of this node.
pub trait Delivery: Send + Sync + 'static {
    /// Hands an event to every local subscriber whose patterns match it; returns how many it
    /// reached. Backends call it one event at a time, in id order.
    fn deliver(&self, event: &Arc<Event>) -> usize;

    /// Every pattern some local stream subscribes to now (what a node must catch up on).
    fn subscribed_patterns(&self) -> Vec<Pattern>;

    /// Whether some local stream subscribes to `topic` (exactly, by a prefix or by a pattern);
    /// such a topic's history is the last to be dropped to make room for new topics.
    fn is_subscribed(&self, topic: &TopicName) -> bool;

    /// Whether some local stream names `topic` exactly; such a topic's history is never
    /// dropped to make room (a publish to a new topic is refused instead).
    fn is_named(&self, topic: &TopicName) -> bool;
}

/// A backend. Every method is cheap to call concurrently.
pub trait Broker: Send + Sync + 'static {
    /// Numbers, stores and delivers an event; resolves once it is accepted.
    fn publish(&self, draft: Draft) -> BoxFuture<'_, Result<Arc<Event>, BrokerError>>;

    /// Makes sure every event matching `patterns` published from now on reaches this node's
    /// [`Delivery`]; resolves once it does. The hub calls it when a stream opens, after the
    /// stream joined the fan-out and before any replay. A backend that shards its delivery
    /// (Redis Cluster) subscribes here to what the stream needs; the others get everything
    /// already.
    fn watch<'a>(&'a self, _patterns: &'a [Pattern]) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async { Ok(()) })
    }

    /// Matching events after `from`, for a resuming stream, the newest that fit `limit`.
    fn replay<'a>(
        &'a self,
        patterns: &'a [Pattern],
        from: ResumeFrom,
        limit: ReplayLimit,
    ) -> BoxFuture<'a, Result<Replay, BrokerError>>;

    /// Events of one topic after `after`, oldest first, at most `limit`.
    fn history<'a>(
        &'a self,
        topic: &'a TopicName,
        after: EventId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Arc<Event>>, BrokerError>>;

    /// The held events a publisher gave `id`, earliest first (Mercure's publisher-chosen ids
    /// are resume cursors too, and may be reused: a cursor resolves to the earliest such event
    /// on the resuming stream's topics). A backend may list one event per topic only: the
    /// earliest of each.
    fn resolve<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Cursor>, BrokerError>>;

    /// The id issued last, if any (the hub's reconciliation cursor).
    fn last_id(&self) -> BoxFuture<'_, Result<Option<EventId>, BrokerError>>;

    /// Topics with history.
    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicStats>, BrokerError>>;

    /// Drops expired history. Called about once a second.
    fn maintain(&self) {}

    /// Whether the backend can take publishes now.
    fn ready(&self) -> bool {
        true
    }

    /// A short name for logs and the readiness endpoint.
    fn name(&self) -> &'static str;

    /// Stops the backend's background tasks (called once, at the end of shutdown).
    fn close(&self) {}

    /// Size of the on-disk store in bytes, when there is one.
    fn store_bytes(&self) -> Option<u64> {
        None
    }

    /// Bytes of event data held in this process' history, when the backend keeps it here.
    fn held_bytes(&self) -> Option<usize> {
        None
    }

    /// Events held in this process' history, when the backend keeps it here.
    fn held_events(&self) -> Option<usize> {
        None
    }

    /// Where single-use values (subscribe tickets) live so that every node sees them: `None`
    /// when this backend serves one node only (the caller keeps them in its own memory).
    fn once_store(&self) -> Option<&dyn OnceStore> {
        None
    }
}

/// Values each taken at most once, within a lifetime, by any node: set-if-absent with an
/// expiry, and an atomic get-and-delete (two nodes taking one key: one gets it).
pub trait OnceStore: Send + Sync {
    /// Stores `value` under `key` for `ttl`; `Ok(false)` if the key is taken.
    fn put_once<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: std::time::Duration,
    ) -> BoxFuture<'a, Result<bool, BrokerError>>;

    /// Removes and returns the value under `key`, if it is there and has not expired.
    fn take_once<'a>(&'a self, key: &'a str)
        -> BoxFuture<'a, Result<Option<Vec<u8>>, BrokerError>>;
}
