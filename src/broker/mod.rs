//! Broker backends: where event ids are assigned, history is kept, and how events reach the
//! local fan-out (and, in a cluster, every node's).
//!
//! The hub talks to a backend only through the object-safe [`Broker`] trait, so the in-memory
//! default and a clustered backend are interchangeable behind `Arc<dyn Broker>`. A backend must
//! hand events to [`Fanout::deliver`](crate::hub::Fanout::deliver) one at a time, in id order.

pub mod memory;
pub mod redis;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::hub::{Draft, Event, EventId, Pattern, TopicName};

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
}

/// Where a resuming stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFrom {
    /// After this event id.
    After(EventId),
    /// The client sent an id this hub never issued (malformed or from elsewhere).
    Unknown,
}

/// Events to replay to a resuming stream.
#[derive(Debug, Default)]
pub struct Replay {
    /// Matching events after the requested id still in history, in id order.
    pub events: Vec<Arc<Event>>,
    /// Some events after the requested id are no longer held (or the id was unknown).
    pub gap: bool,
}

impl Replay {
    /// Matching events gathered from several topics, put in id order and trimmed to the newest
    /// `limit`: what is replayed then joins the live events without a hole, and trimming counts
    /// as a gap (the stream says older events were skipped).
    pub fn newest(mut events: Vec<Arc<Event>>, limit: usize, gap: bool) -> Self {
        events.sort_unstable_by_key(|e| e.id);
        let excess = events.len().saturating_sub(limit);
        events.drain(..excess);
        Self {
            events,
            gap: gap || excess > 0,
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
}

/// A backend. Every method is cheap to call concurrently.
pub trait Broker: Send + Sync + 'static {
    /// Numbers, stores and delivers an event; resolves once it is accepted.
    fn publish(&self, draft: Draft) -> BoxFuture<'_, Result<Arc<Event>, BrokerError>>;

    /// Matching events after `from`, for a resuming stream, at most `limit`.
    fn replay<'a>(
        &'a self,
        patterns: &'a [Pattern],
        from: ResumeFrom,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, BrokerError>>;

    /// Events of one topic after `after`, oldest first, at most `limit`.
    fn history<'a>(
        &'a self,
        topic: &'a TopicName,
        after: EventId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Arc<Event>>, BrokerError>>;

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
}
