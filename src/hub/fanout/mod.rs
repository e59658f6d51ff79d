//! Local fan-out: who is subscribed on this node, and each subscriber's own bounded queue.
//!
//! Every subscription owns one queue, however many patterns it names. A publish walks the
//! subscribers of its topic (and of each subscribed prefix of it) under one lock and appends
//! the shared `Arc<Event>` to each queue. Because backends deliver one event at a time, in id
//! order, and under that lock, every queue receives its events in id order, each once: a
//! subscriber matched by two patterns is offered the event twice in a row and keeps it once.
//! There is no merge of several sources on the reading side, so no interleaving of publishes
//! and reads can reorder or drop an event (round 1 merged one broadcast ring per pattern and
//! could skip an event that landed in a ring already polled empty).
//!
//! Memory is what is queued, not what is configured: an empty queue holds no buffer, a topic
//! that exists only because someone subscribed to it is one map entry, and a subscriber that
//! falls `queue` events behind is marked lagged, its queue freed; its stream ends and the client
//! resumes from history.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::broker::Delivery;
use crate::event::Event;
use crate::sse::EventId;
use crate::topic::{Pattern, Selector, TopicName};

mod index;

/// A queue that drained keeps at most this many slots of capacity.
const KEEP_CAPACITY: usize = 32;

/// The subscribers of one hub on this node.
#[derive(Debug)]
pub struct Fanout {
    /// A std mutex: held for map look-ups and queue appends only, never across an `.await`.
    table: Mutex<Table>,
    queue: usize,
    max_patterns: usize,
}

/// Topics whose matching URI templates and URL patterns are remembered, at most.
const MATCH_CACHE: usize = 16_384;

#[derive(Debug, Default)]
struct Table {
    exact: HashMap<TopicName, Vec<Arc<Slot>>>,
    prefix: HashMap<Arc<str>, Vec<Arc<Slot>>>,
    /// URI templates and URL patterns: evaluated per topic, not looked up. Subscriptions of the
    /// same text share this key's compiled selector.
    matchers: HashMap<Selector, Vec<Arc<Slot>>>,
    /// The matchers above by the literal text they require, so a topic runs only those that
    /// can match it.
    index: index::MatcherIndex,
    /// Per topic, the matchers that match it, so a publish runs each pattern once per topic,
    /// not once per publish. Cleared whenever the set of matchers changes (refilled through the
    /// index, which keeps that cheap).
    matched: HashMap<TopicName, Arc<[Selector]>>,
}

impl Table {
    fn list(&mut self, pattern: &Pattern) -> Option<&mut Vec<Arc<Slot>>> {
        match pattern {
            Pattern::Exact(name) => self.exact.get_mut(name),
            Pattern::Prefix(prefix) => self.prefix.get_mut(prefix),
            Pattern::Matcher(selector) => self.matchers.get_mut(selector),
        }
    }

    fn contains(&self, pattern: &Pattern) -> bool {
        match pattern {
            Pattern::Exact(name) => self.exact.contains_key(name),
            Pattern::Prefix(prefix) => self.prefix.contains_key(prefix),
            Pattern::Matcher(selector) => self.matchers.contains_key(selector),
        }
    }

    fn len(&self) -> usize {
        self.exact.len() + self.prefix.len() + self.matchers.len()
    }

    /// The matchers that match `topic`, from the cache or evaluated once.
    fn matching(&mut self, topic: &TopicName) -> Arc<[Selector]> {
        if let Some(found) = self.matched.get(topic) {
            return Arc::clone(found);
        }
        let found: Arc<[Selector]> = self.index.matching(topic.as_str()).into();
        if self.matched.len() >= MATCH_CACHE {
            self.matched.clear();
        }
        self.matched.insert(topic.clone(), Arc::clone(&found));
        found
    }
}

/// Whether a subscriber may receive the private events of a topic (its token's `subscribe`
/// grants). Without one, a subscriber receives public events only.
pub type Access = Arc<dyn Fn(&TopicName) -> bool + Send + Sync>;

/// One subscription's queue, shared by the table (writer) and the subscription (reader).
#[derive(Default)]
struct Slot {
    queue: Mutex<Queue>,
    ready: Notify,
    access: Option<Access>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("queue", &self.queue)
            .field("private_access", &self.access.is_some())
            .finish()
    }
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Arc<Event>>,
    /// Id of the newest event appended (or skipped as replayed): anything not newer is a
    /// duplicate.
    last: EventId,
    /// Events dropped because the queue was full; non-zero means lagged.
    dropped: u64,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this subscriber may receive `event`: public, or private with a grant on one of
    /// its topics (the audience of a private update is the union of its topics' audiences).
    fn may_see(&self, event: &Event) -> bool {
        !event.private
            || self
                .access
                .as_ref()
                .is_some_and(|may| event.topics().any(|t| may(t)))
    }

    /// Appends unless it is a duplicate, not for this subscriber, or the queue is full;
    /// whether it was appended.
    fn offer(&self, event: &Arc<Event>, limit: usize) -> bool {
        if !self.may_see(event) {
            return false;
        }
        let mut queue = self.lock();
        if event.id <= queue.last {
            return false;
        }
        queue.last = event.id;
        if queue.dropped > 0 || queue.events.len() >= limit {
            queue.dropped += 1;
            queue.events = VecDeque::new();
            drop(queue);
            self.ready.notify_one();
            return false;
        }
        queue.events.push_back(Arc::clone(event));
        drop(queue);
        self.ready.notify_one();
        true
    }
}

/// Why a subscription could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many subscribed topics")]
pub struct TooManyPatterns;

impl Fanout {
    /// Queues of at most `queue` events each; at most `max_patterns` distinct topics and
    /// prefixes subscribed at once.
    pub fn new(queue: usize, max_patterns: usize) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            queue: queue.max(1),
            max_patterns: max_patterns.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Each operation below is a single insert, remove or append, so a panic while holding
        // the lock cannot leave the table inconsistent: a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to the patterns (deduplicated by the caller); `access` opens private events.
    ///
    /// # Errors
    /// [`TooManyPatterns`] when the new patterns would take the table past its cap.
    pub fn subscribe(
        self: &Arc<Self>,
        patterns: &[Pattern],
        access: Option<Access>,
    ) -> Result<Subscription, TooManyPatterns> {
        let slot = Arc::new(Slot {
            access,
            ..Slot::default()
        });
        let mut table = self.lock();
        let new = patterns.iter().filter(|p| !table.contains(p)).count();
        if new > 0 && table.len() + new > self.max_patterns {
            return Err(TooManyPatterns);
        }
        let mut kept = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let list = match pattern {
                Pattern::Exact(name) => table.exact.entry(name.clone()).or_default(),
                Pattern::Prefix(prefix) => table.prefix.entry(Arc::clone(prefix)).or_default(),
                Pattern::Matcher(selector) => {
                    // Thousands of subscribers sending the same pattern share one compiled
                    // copy (a URL pattern is about 100 KiB of automata); theirs is dropped.
                    let shared = match table.matchers.get_key_value(selector) {
                        Some((shared, _)) => shared.clone(),
                        None => {
                            table.matched.clear();
                            table.index.insert(selector);
                            selector.clone()
                        }
                    };
                    kept.push(Pattern::Matcher(shared.clone()));
                    table
                        .matchers
                        .entry(shared)
                        .or_default()
                        .push(Arc::clone(&slot));
                    continue;
                }
            };
            list.push(Arc::clone(&slot));
            kept.push(pattern.clone());
        }
        Ok(Subscription {
            slot,
            patterns: kept,
            fanout: Arc::clone(self),
        })
    }

    /// Local subscriptions that would receive an event on `topic` (one matching by two
    /// patterns counts twice).
    pub fn subscribers(&self, topic: &TopicName) -> usize {
        let mut table = self.lock();
        let matched: usize = if table.matchers.is_empty() {
            0
        } else {
            let matching = table.matching(topic);
            matching
                .iter()
                .filter_map(|m| table.matchers.get(m))
                .map(Vec::len)
                .sum()
        };
        let exact = table.exact.get(topic).map_or(0, Vec::len);
        matched
            + exact
            + topic
                .prefixes()
                .filter_map(|prefix| table.prefix.get(prefix))
                .map(Vec::len)
                .sum::<usize>()
    }

    /// Topics that have exact subscribers now.
    pub fn subscribed_topics(&self) -> Vec<TopicName> {
        self.lock().exact.keys().cloned().collect()
    }

    /// Distinct topics and prefixes subscribed now.
    pub fn pattern_count(&self) -> usize {
        self.lock().len()
    }

    fn release(&self, slot: &Arc<Slot>, patterns: &[Pattern]) {
        let mut table = self.lock();
        for pattern in patterns {
            let Some(list) = table.list(pattern) else {
                continue;
            };
            if let Some(at) = list.iter().position(|s| Arc::ptr_eq(s, slot)) {
                list.swap_remove(at);
            }
            if list.is_empty() {
                match pattern {
                    Pattern::Exact(name) => {
                        table.exact.remove(name);
                    }
                    Pattern::Prefix(prefix) => {
                        table.prefix.remove(prefix);
                    }
                    Pattern::Matcher(selector) => {
                        table.matchers.remove(selector);
                        table.index.remove(selector);
                        table.matched.clear();
                    }
                }
            }
        }
    }
}

impl Delivery for Fanout {
    fn deliver(&self, event: &Arc<Event>) -> usize {
        let mut table = self.lock();
        let mut reached = 0;
        // A subscriber matched by several topics or patterns is offered the event several
        // times in a row and keeps it once (its queue refuses ids it already has).
        for topic in event.topics() {
            let mut offer = |list: &Vec<Arc<Slot>>| {
                for slot in list {
                    reached += usize::from(slot.offer(event, self.queue));
                }
            };
            if let Some(list) = table.exact.get(topic) {
                offer(list);
            }
            if !table.prefix.is_empty() {
                for prefix in topic.prefixes() {
                    if let Some(list) = table.prefix.get(prefix) {
                        offer(list);
                    }
                }
            }
            if !table.matchers.is_empty() {
                for selector in table.matching(topic).iter() {
                    if let Some(list) = table.matchers.get(selector) {
                        offer(list);
                    }
                }
            }
        }
        reached
    }

    fn subscribed_patterns(&self) -> Vec<Pattern> {
        let table = self.lock();
        table
            .exact
            .keys()
            .cloned()
            .map(Pattern::Exact)
            .chain(table.prefix.keys().cloned().map(Pattern::Prefix))
            .chain(table.matchers.keys().cloned().map(Pattern::Matcher))
            .collect()
    }

    fn is_subscribed(&self, topic: &TopicName) -> bool {
        let mut table = self.lock();
        table.exact.contains_key(topic)
            || (!table.prefix.is_empty() && topic.prefixes().any(|p| table.prefix.contains_key(p)))
            || (!table.matchers.is_empty() && !table.matching(topic).is_empty())
    }
}

/// The subscriber fell more than the queue size behind and lost its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber lagged behind by {0} events")]
pub struct Lagged(pub u64);

/// One stream's subscription. Dropping it unsubscribes (and removes entries nobody uses).
#[derive(Debug)]
pub struct Subscription {
    slot: Arc<Slot>,
    patterns: Vec<Pattern>,
    fanout: Arc<Fanout>,
}

impl Subscription {
    /// Whether this subscriber may receive `event` (public, or private and granted).
    pub fn may_see(&self, event: &Event) -> bool {
        self.slot.may_see(event)
    }

    /// Skips every event up to and including `id` (already delivered from history).
    pub fn skip_through(&mut self, id: EventId) {
        let mut queue = self.slot.lock();
        queue.last = queue.last.max(id);
        while queue.events.front().is_some_and(|e| e.id <= id) {
            queue.events.pop_front();
        }
    }

    /// The next event in id order, waiting for one.
    ///
    /// # Errors
    /// [`Lagged`] when the subscriber fell too far behind.
    pub async fn recv(&mut self) -> Result<Arc<Event>, Lagged> {
        loop {
            if let Some(event) = self.try_recv()? {
                return Ok(event);
            }
            // `notify_one` keeps a permit when nobody waits, so an append between the check
            // above and this wait is not missed.
            self.slot.ready.notified().await;
        }
    }

    /// The next event in id order if one is ready now.
    ///
    /// # Errors
    /// [`Lagged`] when the subscriber fell too far behind.
    pub fn try_recv(&mut self) -> Result<Option<Arc<Event>>, Lagged> {
        let mut queue = self.slot.lock();
        if queue.dropped > 0 {
            return Err(Lagged(queue.dropped));
        }
        let event = queue.events.pop_front();
        if queue.events.is_empty() && queue.events.capacity() > KEEP_CAPACITY {
            queue.events = VecDeque::new();
        }
        Ok(event)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.fanout.release(&self.slot, &self.patterns);
    }
}

#[cfg(test)]
mod tests;
