//! The in-memory broker: the default, nothing to install.
//!
//! One lock orders every publish: it assigns the id, appends to the topic's bounded history and
//! hands the event to the fan-out before the next publish starts, so ids increase in delivery
//! order across the whole hub (what makes one `Last-Event-ID` enough to resume several topics).
//!
//! Ids are `MS-SEQ`: the publish time in milliseconds (never decreasing) and a counter. The
//! time part makes ids issued after a restart larger than any issued before it, so a client
//! resuming with an id from a previous run is told about the gap instead of silently skipping
//! the new run's first events.

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

mod state;

use self::state::State;
use super::durable::Journal;
use super::{Broker, BrokerError, Cursor, Delivery, Replay, ReplayLimit, ResumeFrom, TopicStats};
use crate::event::{unix_now, Draft, Event};
use crate::sse::EventId;
use crate::topic::{Pattern, TopicName};

/// History limits of the memory broker.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Events kept per topic.
    pub history: usize,
    /// Age after which an event leaves history.
    pub max_age: Duration,
    /// Bytes of events kept in all (counted as [`Event::weight`]); the oldest events go first.
    pub max_bytes: usize,
    /// Topics held at once; past it the least recently published topic nobody subscribes to
    /// is forgotten to make room.
    pub max_topics: usize,
}

/// See the module docs.
pub struct MemoryBroker {
    /// A std mutex: publishes hold it for a few microseconds and never across an `.await`.
    state: Mutex<State>,
    delivery: Arc<dyn Delivery>,
    limits: Limits,
    /// Where history is also kept across restarts (`--data-dir`), if anywhere.
    journal: Option<Arc<Journal>>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl MemoryBroker {
    /// A broker delivering into `delivery`.
    pub fn new(delivery: Arc<dyn Delivery>, limits: Limits) -> Self {
        Self {
            state: Mutex::new(State::new(EventId::new((unix_now() * 1000.0) as u64, 0))),
            delivery,
            limits,
            journal: None,
        }
    }

    /// A broker whose history is also in `journal`, starting from the `restored` events (oldest
    /// first): ids continue after the newest, and cursors from before the restart resume.
    pub fn with_journal(
        delivery: Arc<dyn Delivery>,
        limits: Limits,
        journal: Arc<Journal>,
        restored: Vec<Event>,
    ) -> Self {
        let mut broker = Self::new(delivery, limits);
        {
            let mut state = broker.lock();
            state.ledger.evicted = Some(Vec::new());
            // History survived: ids from before this run are not a gap.
            state.run_start = EventId::default();
            for event in restored {
                let event = Arc::new(event);
                state.last_id = state.last_id.max(event.id);
                // Age is left to `maintain`, as for events held since before a restart.
                state.append(&event, limits.history, f64::NEG_INFINITY);
                broker.trim_bytes(&mut state);
            }
        }
        broker.journal = Some(journal);
        broker
    }

    /// Applies the byte bound over all topics: the oldest events go first.
    fn trim_bytes(&self, state: &mut State) {
        while state.ledger.bytes > self.limits.max_bytes {
            let Some(oldest) = state
                .ledger
                .oldest
                .first_key_value()
                .map(|(_, t)| t.clone())
            else {
                break;
            };
            state.pop_oldest(&oldest);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below leaves the state consistent at each step.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish_now(&self, draft: Draft) -> Result<Arc<Event>, BrokerError> {
        let now = unix_now();
        let mut state = self.lock();
        if state.topics.len() >= self.limits.max_topics && !state.topics.contains_key(&draft.topic)
        {
            self.make_room(&mut state)?;
        }
        let ms = ((now * 1000.0) as u64).max(state.last_id.ms);
        let id = EventId::new(ms, state.last_id.seq + 1);
        state.last_id = id;
        let event = Arc::new(Event::new(id, draft, now));
        if let Some(journal) = &self.journal {
            // Stored (and, with `--fsync always`, on disk) before anyone sees it.
            journal.append(&event)?;
        }
        let cutoff = now - self.limits.max_age.as_secs_f64();
        state.append(&event, self.limits.history, cutoff);
        self.trim_bytes(&mut state);
        self.delivery.deliver(&event);
        Ok(event)
    }

    /// Forgets the least recently published topic nobody subscribes to; failing that, the
    /// least recently published one that only wildcards and patterns match (a `*` or `{+path}`
    /// subscriber must not freeze the topic table: its live events still flow, and a resume
    /// from before the forgotten history is told of the gap). Topics a stream names exactly are
    /// kept: then the publish is refused.
    fn make_room(&self, state: &mut State) -> Result<(), BrokerError> {
        let delivery = &self.delivery;
        let victim = state
            .ledger
            .recency
            .values()
            .find(|name| !delivery.is_subscribed(name))
            .or_else(|| {
                state
                    .ledger
                    .recency
                    .values()
                    .find(|name| !delivery.is_named(name))
            })
            .cloned()
            .ok_or(BrokerError::TooManyTopics)?;
        state.forget(&victim);
        Ok(())
    }

    /// The newest matching events after `after` that fit `limit`, newest first, and whether
    /// more were left out. A heap over each topic's newest unread event: the work is
    /// proportional to the topics matched plus the events returned, not to the history held.
    fn newest_after(
        state: &State,
        patterns: &[Pattern],
        after: EventId,
        limit: ReplayLimit,
    ) -> (Vec<Arc<Event>>, bool) {
        let mut starts = Vec::new();
        let mut heap = BinaryHeap::new();
        for (name, history) in &state.topics {
            let start = history.events.partition_point(|e| e.id <= after);
            // Events match by their canonical topic, or, when the topic holds events with
            // alternate topics, by one of those.
            let whole = patterns.iter().any(|p| p.matches(name));
            if start == history.events.len() || !(whole || history.alternates_held > 0) {
                continue;
            }
            let end = history.events.len() - 1;
            heap.push((history.events[end].id, starts.len(), end));
            starts.push((start, &history.events, whole));
        }
        let mut events = Vec::new();
        let mut bytes = 0usize;
        while let Some((_, topic, at)) = heap.pop() {
            let (start, list, whole) = starts[topic];
            let event = &list[at];
            if at > start {
                heap.push((list[at - 1].id, topic, at - 1));
            }
            let matches = whole
                || event
                    .alternates
                    .iter()
                    .any(|t| patterns.iter().any(|p| p.matches(t)));
            if !matches {
                continue;
            }
            bytes = bytes.saturating_add(event.weight());
            if events.len() == limit.events || bytes > limit.bytes {
                return (events, true);
            }
            events.push(Arc::clone(event));
        }
        (events, false)
    }
}

impl Broker for MemoryBroker {
    fn publish(&self, draft: Draft) -> BoxFuture<'_, Result<Arc<Event>, BrokerError>> {
        std::future::ready(self.publish_now(draft)).boxed()
    }

    fn replay<'a>(
        &'a self,
        patterns: &'a [Pattern],
        from: ResumeFrom,
        limit: ReplayLimit,
    ) -> BoxFuture<'a, Result<Replay, BrokerError>> {
        let state = self.lock();
        let (after, mut gap) = match from {
            ResumeFrom::After(id) if id <= state.last_id => {
                (id, id < state.forgotten_up_to || id < state.run_start)
            }
            ResumeFrom::Earliest => (EventId::default(), false),
            _ => (EventId::default(), true),
        };
        if matches!(from, ResumeFrom::After(_))
            && state.topics.iter().any(|(name, history)| {
                after < history.evicted_up_to && patterns.iter().any(|p| p.matches(name))
            })
        {
            gap = true;
        }
        let (mut events, trimmed) = Self::newest_after(&state, patterns, after, limit);
        drop(state);
        events.reverse();
        let replay = Replay {
            events,
            gap: gap || trimmed,
            start: None,
        };
        std::future::ready(Ok(replay)).boxed()
    }

    fn history<'a>(
        &'a self,
        topic: &'a TopicName,
        after: EventId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Arc<Event>>, BrokerError>> {
        let state = self.lock();
        let events = state.topics.get(topic).map_or_else(Vec::new, |history| {
            let start = history.events.partition_point(|e| e.id <= after);
            history.events.range(start..).take(limit).cloned().collect()
        });
        std::future::ready(Ok(events)).boxed()
    }

    fn last_id(&self) -> BoxFuture<'_, Result<Option<EventId>, BrokerError>> {
        let last = self.lock().last_id;
        std::future::ready(Ok((last != EventId::default()).then_some(last))).boxed()
    }

    fn resolve<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Cursor>, BrokerError>> {
        let state = self.lock();
        let found = state
            .ledger
            .custom_ids
            .get(id)
            .map_or_else(Vec::new, |bearers| {
                bearers
                    .values()
                    .map(|event| Cursor {
                        id: event.id,
                        topics: event.topics().cloned().collect(),
                    })
                    .collect()
            });
        std::future::ready(Ok(found)).boxed()
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicStats>, BrokerError>> {
        let state = self.lock();
        let stats = state
            .topics
            .iter()
            .map(|(name, history)| TopicStats {
                name: name.clone(),
                last_id: Some(history.last_id),
                history: history.events.len(),
                last_public_id: history.last_public_id,
                public_history: history.events.len() - history.private_held,
            })
            .collect();
        std::future::ready(Ok(stats)).boxed()
    }

    fn maintain(&self) {
        let cutoff = unix_now() - self.limits.max_age.as_secs_f64();
        let mut state = self.lock();
        // Ids follow publish time, so the oldest events overall are the first of `oldest`.
        while let Some(name) = state
            .ledger
            .oldest
            .first_key_value()
            .map(|(_, t)| t.clone())
        {
            let expired = state.topics.get(&name).and_then(|h| h.events.front());
            if !expired.is_some_and(|e| e.timestamp < cutoff) {
                break;
            }
            state.pop_oldest(&name);
        }
        let evicted = state.ledger.evicted.as_mut().map(std::mem::take);
        drop(state);
        if let (Some(journal), Some(evicted)) = (&self.journal, evicted) {
            journal.forget(&evicted);
        }
    }

    fn held_bytes(&self) -> Option<usize> {
        Some(self.lock().ledger.bytes)
    }

    fn held_events(&self) -> Option<usize> {
        Some(self.lock().ledger.events)
    }

    fn name(&self) -> &'static str {
        if self.journal.is_some() {
            "durable"
        } else {
            "memory"
        }
    }

    fn close(&self) {
        if let Some(journal) = &self.journal {
            journal.sync();
        }
    }

    fn store_bytes(&self) -> Option<u64> {
        self.journal.as_ref().and_then(|j| j.size())
    }
}

#[cfg(test)]
mod tests;
