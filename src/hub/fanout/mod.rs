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

use std::sync::{Arc, Mutex, MutexGuard};

use super::activity::Activity;
use crate::broker::Delivery;
use crate::event::Event;
use crate::sse::EventId;
use crate::topic::{Pattern, Selector, TopicName};

mod index;
mod members;
mod subscription;
mod table;

use members::Members;
use table::Table;

use subscription::Slot;
pub use subscription::{Access, Lagged, Subscription};

/// The subscribers of one hub on this node.
#[derive(Debug)]
pub struct Fanout {
    /// A std mutex: held for map look-ups and queue appends only, never across an `.await`.
    table: Mutex<Table>,
    queue: usize,
    max_patterns: usize,
    /// Events per second per topic, counted as events pass (at most `max_patterns` topics).
    activity: Activity,
}

/// Why a subscription could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooManyPatterns {
    /// Past the cap on distinct topics and patterns subscribed.
    #[error("too many subscribed topics")]
    Topics,
    /// Past the caps on patterns the index cannot narrow (`--max-broad-patterns`) or on the
    /// look-ups a topic makes.
    #[error("too many subscription patterns that match every topic alike")]
    Broad,
}

impl Fanout {
    /// Queues of at most `queue` events each; at most `max_patterns` distinct topics and
    /// prefixes subscribed at once.
    pub fn new(queue: usize, max_patterns: usize) -> Self {
        Self {
            table: Mutex::new(Table::new(crate::config::DEFAULT_MAX_BROAD_PATTERNS)),
            queue: queue.max(1),
            max_patterns: max_patterns.max(1),
            activity: Activity::new(max_patterns),
        }
    }

    /// Sets how many patterns the index cannot narrow may be subscribed at once
    /// (`--max-broad-patterns`).
    pub fn set_max_broad(&self, max: usize) {
        self.lock().max_broad = max;
    }

    /// Wakes every subscription's waiting stream once, as an event would: shutdown does, so
    /// that a waiting stream sees the cancelled token without a wait of its own on it (a
    /// future of ~80 bytes, kept by every idle stream).
    pub fn wake_all(&self) {
        let table = self.lock();
        let lists = table
            .exact
            .values()
            .chain(table.prefix.values())
            .chain(table.matchers.values().map(|m| &m.members));
        for list in lists {
            list.for_each(|slot| slot.ready.notify_one());
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
        self.subscribe_from(patterns, access)
            .map(|(subscription, _)| subscription)
    }

    /// As [`Fanout::subscribe`], with where the subscription starts: the newest event
    /// delivered before it (`None` if none was, since this node started). Every event after
    /// that one reaches the subscription; none before it does.
    ///
    /// # Errors
    /// As [`Fanout::subscribe`].
    pub fn subscribe_from(
        self: &Arc<Self>,
        patterns: &[Pattern],
        access: Option<Access>,
    ) -> Result<(Subscription, Option<EventId>), TooManyPatterns> {
        let slot = Arc::new(Slot {
            access,
            ..Slot::default()
        });
        let mut table = self.lock();
        let new = patterns.iter().filter(|p| !table.contains(p)).count();
        if new > 0 && table.len() + new > self.max_patterns {
            return Err(TooManyPatterns::Topics);
        }
        let new_matchers: Vec<&Selector> = patterns
            .iter()
            .filter_map(|p| match p {
                Pattern::Matcher(selector) if !table.contains(p) => Some(selector),
                _ => None,
            })
            .collect();
        if !new_matchers.is_empty() {
            table
                .admit(&new_matchers)
                .map_err(|_| TooManyPatterns::Broad)?;
        }
        let mut kept = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let list = match pattern {
                Pattern::Exact(name) => table.exact.entry(name.clone()).or_default(),
                Pattern::Prefix(prefix) => table.prefix.entry(Arc::clone(prefix)).or_default(),
                Pattern::Matcher(selector) => {
                    // Thousands of subscribers sending the same pattern share one compiled
                    // copy (tens of KiB of automata); theirs is dropped.
                    let (shared, members) = table.matcher(selector);
                    members.insert(Arc::clone(&slot));
                    kept.push(Pattern::Matcher(shared));
                    continue;
                }
            };
            list.insert(Arc::clone(&slot));
            kept.push(pattern.clone());
        }
        let start = (table.delivered != EventId::default()).then_some(table.delivered);
        let subscription = Subscription {
            slot,
            patterns: kept,
            fanout: Arc::clone(self),
        };
        Ok((subscription, start))
    }

    /// Whether any event was delivered here yet.
    pub fn delivered_any(&self) -> bool {
        self.lock().delivered != EventId::default()
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
                .filter_map(|id| table.matchers.get(id))
                .map(|m| m.members.len())
                .sum()
        };
        let exact = table.exact.get(topic).map_or(0, Members::len);
        matched
            + exact
            + topic
                .prefixes()
                .filter_map(|prefix| table.prefix.get(prefix))
                .map(Members::len)
                .sum::<usize>()
    }

    /// Topics that have exact subscribers now.
    pub fn subscribed_topics(&self) -> Vec<TopicName> {
        self.lock().exact.keys().cloned().collect()
    }

    /// Events per second per topic.
    pub fn activity(&self) -> &Activity {
        &self.activity
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
            list.remove(slot);
            if list.is_empty() {
                match pattern {
                    Pattern::Exact(name) => {
                        table.exact.remove(name);
                    }
                    Pattern::Prefix(prefix) => {
                        table.prefix.remove(prefix);
                    }
                    Pattern::Matcher(selector) => table.remove_matcher(selector),
                }
            }
        }
    }
}

impl Delivery for Fanout {
    fn deliver(&self, event: &Arc<Event>) -> usize {
        let mut table = self.lock();
        table.delivered = table.delivered.max(event.id);
        let mut reached = 0;
        // A subscriber matched by several topics or patterns is offered the event several
        // times in a row and keeps it once (its queue refuses ids it already has).
        for topic in event.topics() {
            let mut offer = |list: &Members| {
                list.for_each(|slot| reached += usize::from(slot.offer(event, self.queue)));
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
                for id in table.matching(topic).iter() {
                    if let Some(matcher) = table.matchers.get(id) {
                        offer(&matcher.members);
                    }
                }
            }
        }
        drop(table);
        self.activity.record(event);
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
            .chain(
                table
                    .matchers
                    .values()
                    .map(|m| Pattern::Matcher(m.selector.clone())),
            )
            .collect()
    }

    fn is_named(&self, topic: &TopicName) -> bool {
        self.lock().exact.contains_key(topic)
    }

    fn is_subscribed(&self, topic: &TopicName) -> bool {
        let mut table = self.lock();
        table.exact.contains_key(topic)
            || (!table.prefix.is_empty() && topic.prefixes().any(|p| table.prefix.contains_key(p)))
            || table.any_matcher_matches(topic)
    }
}

#[cfg(test)]
mod tests;
