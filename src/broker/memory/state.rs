//! The memory broker's history: topics, their bounded event lists, and the indexes that keep
//! eviction cheap (by recency for the topic cap, by age for the byte cap).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::event::Event;
use crate::sse::EventId;
use crate::topic::TopicName;

#[derive(Debug)]
pub(super) struct State {
    /// The id issued last.
    pub(super) last_id: EventId,
    pub(super) topics: HashMap<TopicName, TopicHistory>,
    /// What is held over all topics, indexed for eviction.
    pub(super) ledger: Ledger,
    /// Ids issued by this process are at least this: an older one is from a previous run,
    /// whose events are gone.
    pub(super) run_start: EventId,
    /// Newest id of any topic forgotten whole (to make room for new topics): a resume from
    /// before it may have missed events we can no longer name.
    pub(super) forgotten_up_to: EventId,
}

/// The indexes and totals over every topic's history, kept apart from the topic table so that
/// a publish can hold its topic's history and update these without a second lookup.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Every topic by its newest id: the least recently published first.
    pub(super) recency: BTreeMap<EventId, TopicName>,
    /// Topics with history by their oldest held event: the oldest event overall first.
    pub(super) oldest: BTreeMap<EventId, TopicName>,
    /// Sum of the weights of the events held.
    pub(super) bytes: usize,
    /// Events held, over all topics.
    pub(super) events: usize,
    /// Publisher-chosen ids of events held → the events bearing each, by hub id (ids may be
    /// reused: a cursor resolves to the earliest on the stream's topics).
    pub(super) custom_ids: HashMap<Arc<str>, BTreeMap<EventId, Arc<Event>>>,
    /// Ids that left history since the journal was last told (journaled brokers only).
    pub(super) evicted: Option<Vec<EventId>>,
}

#[derive(Debug, Default)]
pub(super) struct TopicHistory {
    pub(super) events: VecDeque<Arc<Event>>,
    /// Newest id that left this topic's history.
    pub(super) evicted_up_to: EventId,
    pub(super) last_id: EventId,
    /// Newest public event's id.
    pub(super) last_public_id: Option<EventId>,
    /// Private events held.
    pub(super) private_held: usize,
    /// Events held that have alternate topics.
    pub(super) alternates_held: usize,
}

impl State {
    /// An empty history; ids of this run start at `run_start`.
    pub(super) fn new(run_start: EventId) -> Self {
        Self {
            last_id: EventId::default(),
            topics: HashMap::new(),
            ledger: Ledger::default(),
            run_start,
            forgotten_up_to: EventId::default(),
        }
    }

    /// Drops the oldest event of `topic`.
    pub(super) fn pop_oldest(&mut self, topic: &TopicName) {
        if let Some(history) = self.topics.get_mut(topic) {
            self.ledger.pop_front(history, topic);
        }
    }

    /// Appends `event` to its topic, then drops that topic's events past `max_events` or
    /// older than `cutoff` (Unix seconds): one lookup of the topic for all of it.
    pub(super) fn append(&mut self, event: &Arc<Event>, max_events: usize, cutoff: f64) {
        let history = self.topics.entry(event.topic.clone()).or_default();
        self.ledger.push(history, event);
        while history.events.len() > max_events
            || history.events.front().is_some_and(|e| e.timestamp < cutoff)
        {
            self.ledger.pop_front(history, &event.topic);
        }
    }

    /// Forgets a topic whole.
    pub(super) fn forget(&mut self, topic: &TopicName) {
        if let Some(mut history) = self.topics.remove(topic) {
            while !history.events.is_empty() {
                self.ledger.pop_front(&mut history, topic);
            }
            self.ledger.recency.remove(&history.last_id);
            self.forgotten_up_to = self.forgotten_up_to.max(history.last_id);
        }
    }
}

impl Ledger {
    /// Drops the oldest event of `history` (the history of `topic`).
    fn pop_front(&mut self, history: &mut TopicHistory, topic: &TopicName) {
        let Some(old) = history.events.pop_front() else {
            return;
        };
        history.evicted_up_to = old.id;
        if let Some(evicted) = &mut self.evicted {
            evicted.push(old.id);
        }
        history.private_held -= usize::from(old.private);
        history.alternates_held -= usize::from(!old.alternates.is_empty());
        if let Some(custom) = &old.custom_id {
            if let Some(bearers) = self.custom_ids.get_mut(custom.as_str()) {
                bearers.remove(&old.id);
                if bearers.is_empty() {
                    self.custom_ids.remove(custom.as_str());
                }
            }
        }
        self.bytes = self.bytes.saturating_sub(old.weight());
        self.events -= 1;
        self.oldest.remove(&old.id);
        if let Some(front) = history.events.front() {
            self.oldest.insert(front.id, topic.clone());
        }
        if history.events.capacity() > 2 * history.events.len() + 16 {
            history.events.shrink_to_fit();
        }
    }

    /// Appends `event` to `history` (the history of its topic).
    fn push(&mut self, history: &mut TopicHistory, event: &Arc<Event>) {
        if history.last_id != EventId::default() {
            self.recency.remove(&history.last_id);
        }
        history.last_id = event.id;
        history.alternates_held += usize::from(!event.alternates.is_empty());
        if let Some(custom) = &event.custom_id {
            self.custom_ids
                .entry(custom.as_str().into())
                .or_default()
                .insert(event.id, Arc::clone(event));
        }
        if event.private {
            history.private_held += 1;
        } else {
            history.last_public_id = Some(event.id);
        }
        self.recency.insert(event.id, event.topic.clone());
        if history.events.is_empty() {
            self.oldest.insert(event.id, event.topic.clone());
        }
        history.events.push_back(Arc::clone(event));
        self.bytes += event.weight();
        self.events += 1;
    }
}
