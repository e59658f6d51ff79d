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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{Broker, BrokerError, Replay, ResumeFrom, TopicStats};
use crate::hub::event::unix_now;
use crate::hub::{Draft, Event, EventId, Fanout, Pattern, TopicName};

/// History limits of the memory broker.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Events kept per topic.
    pub history: usize,
    /// Age after which an event leaves history.
    pub max_age: Duration,
    /// Topics held at once.
    pub max_topics: usize,
}

/// See the module docs.
#[derive(Debug)]
pub struct MemoryBroker {
    /// A std mutex: publishes hold it for a few microseconds and never across an `.await`.
    state: Mutex<State>,
    fanout: Arc<Fanout>,
    limits: Limits,
}

#[derive(Debug)]
struct State {
    /// The id issued last.
    last_id: EventId,
    topics: HashMap<TopicName, TopicHistory>,
    /// Ids issued by this process are at least this: an older one is from a previous run,
    /// whose events are gone.
    run_start: EventId,
    /// Newest id of any topic forgotten whole (to make room for new topics): a resume from
    /// before it may have missed events we can no longer name.
    forgotten_up_to: EventId,
}

#[derive(Debug, Default)]
struct TopicHistory {
    events: VecDeque<Arc<Event>>,
    /// Newest id that left this topic's history.
    evicted_up_to: EventId,
    last_id: EventId,
}

impl MemoryBroker {
    /// A broker delivering into `fanout`.
    pub fn new(fanout: Arc<Fanout>, limits: Limits) -> Self {
        Self {
            state: Mutex::new(State {
                last_id: EventId::default(),
                run_start: EventId::new((unix_now() * 1000.0) as u64, 0),
                topics: HashMap::new(),
                forgotten_up_to: EventId::default(),
            }),
            fanout,
            limits,
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
        if !state.topics.contains_key(&draft.topic) && state.topics.len() >= self.limits.max_topics
        {
            self.make_room(&mut state, now);
            if state.topics.len() >= self.limits.max_topics {
                return Err(BrokerError::TooManyTopics);
            }
        }
        let ms = ((now * 1000.0) as u64).max(state.last_id.ms);
        let id = EventId::new(ms, state.last_id.seq + 1);
        state.last_id = id;
        let event = Arc::new(Event::new(id, draft, now));
        let history = state.topics.entry(event.topic.clone()).or_default();
        history.last_id = id;
        if self.limits.history > 0 {
            history.events.push_back(Arc::clone(&event));
        } else {
            history.evicted_up_to = id;
        }
        while history.events.len() > self.limits.history {
            if let Some(old) = history.events.pop_front() {
                history.evicted_up_to = old.id;
            }
        }
        expire(history, now - self.limits.max_age.as_secs_f64());
        self.fanout.deliver(&event);
        Ok(event)
    }

    /// Forgets topics whose history is empty and that nobody subscribes to exactly.
    fn make_room(&self, state: &mut State, now: f64) {
        let cutoff = now - self.limits.max_age.as_secs_f64();
        let subscribed: std::collections::HashSet<TopicName> =
            self.fanout.subscribed_topics().into_iter().collect();
        let mut forgotten = state.forgotten_up_to;
        state.topics.retain(|name, history| {
            expire(history, cutoff);
            let keep = !history.events.is_empty() || subscribed.contains(name);
            if !keep {
                forgotten = forgotten.max(history.last_id);
            }
            keep
        });
        state.forgotten_up_to = forgotten;
    }
}

fn expire(history: &mut TopicHistory, cutoff: f64) {
    while history.events.front().is_some_and(|e| e.timestamp < cutoff) {
        if let Some(old) = history.events.pop_front() {
            history.evicted_up_to = old.id;
        }
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
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, BrokerError>> {
        let state = self.lock();
        let (after, mut gap) = match from {
            ResumeFrom::After(id) if id <= state.last_id => {
                (id, id < state.forgotten_up_to || id < state.run_start)
            }
            _ => (EventId::default(), true),
        };
        let mut events = Vec::new();
        for (name, history) in &state.topics {
            if !patterns.iter().any(|p| p.matches(name)) {
                continue;
            }
            if after < history.evicted_up_to && from != ResumeFrom::Unknown {
                gap = true;
            }
            let start = history.events.partition_point(|e| e.id <= after);
            events.extend(history.events.range(start..).cloned());
        }
        drop(state);
        std::future::ready(Ok(Replay::newest(events, limit, gap))).boxed()
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

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicStats>, BrokerError>> {
        let state = self.lock();
        let stats = state
            .topics
            .iter()
            .map(|(name, history)| TopicStats {
                name: name.clone(),
                last_id: Some(history.last_id),
                history: history.events.len(),
            })
            .collect();
        std::future::ready(Ok(stats)).boxed()
    }

    fn maintain(&self) {
        let cutoff = unix_now() - self.limits.max_age.as_secs_f64();
        let mut state = self.lock();
        for history in state.topics.values_mut() {
            expire(history, cutoff);
        }
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
