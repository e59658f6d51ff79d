//! The fan-out's table: who listens to what, and which URI templates and URL patterns match a
//! topic, kept cheap under the fan-out lock whatever subscribers send.
//!
//! - Patterns are filed by the literal text they require (`index`), and the patterns the index
//!   cannot tell apart are capped (`--max-broad-patterns`): those sharing one (prefix, suffix)
//!   key beyond the first, and those with none. With the number of look-ups a topic makes also
//!   capped ([`MAX_PROBES`]), a topic never met before runs at most a few hundred patterns,
//!   whatever set of subscriptions anonymous clients hold.
//! - Which patterns match a topic is remembered per topic, as pattern ids. A new pattern does
//!   not clear what is remembered: each entry notes the ids that existed when it was made, and
//!   catches up on the patterns added since from a short log of additions. A pattern that goes
//!   leaves its id behind in entries, skipped when read and dropped when the entry catches up,
//!   so one client opening and closing subscriptions costs every other topic nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::index::{Admission, MatcherIndex};
use super::members::Members;
use crate::sse::EventId;
use crate::topic::{Pattern, Selector, TopicName};

/// Topics whose matching patterns are remembered, at most.
const MATCH_CACHE: usize = 16_384;
/// Additions remembered for entries to catch up from; an entry older than that is remade.
const ADDED_LOG: usize = 256;
/// Look-ups one topic may need in the pattern index (distinct literal shapes and URL bases).
pub(super) const MAX_PROBES: usize = 256;

/// One subscribed pattern and its subscribers.
#[derive(Debug)]
pub(super) struct Matcher {
    pub(super) selector: Selector,
    pub(super) members: Members,
}

#[derive(Debug)]
struct Cached {
    /// Ids below this existed when the entry was made (or last caught up).
    seen: u64,
    ids: Arc<[u64]>,
}

/// Why a pattern could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Crowded {
    /// The pattern index would need too many look-ups per topic.
    Probes,
    /// Too many patterns the index cannot tell apart.
    Broad,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) exact: HashMap<TopicName, Members>,
    pub(super) prefix: HashMap<Arc<str>, Members>,
    /// URI templates and URL patterns by id. Subscriptions of the same text share one id and
    /// one compiled selector.
    pub(super) matchers: HashMap<u64, Matcher>,
    ids: HashMap<Selector, u64>,
    index: MatcherIndex,
    matched: HashMap<TopicName, Cached>,
    /// Ids added lately, oldest first; every id from `floor` on is here.
    added: VecDeque<u64>,
    floor: u64,
    next_id: u64,
    pub(super) max_broad: usize,
    /// The newest event delivered: where a subscription made now starts (events are delivered
    /// in id order, under this table's lock).
    pub(super) delivered: EventId,
}

impl Table {
    pub(super) fn new(max_broad: usize) -> Self {
        Self {
            max_broad,
            ..Self::default()
        }
    }

    pub(super) fn list(&mut self, pattern: &Pattern) -> Option<&mut Members> {
        match pattern {
            Pattern::Exact(name) => self.exact.get_mut(name),
            Pattern::Prefix(prefix) => self.prefix.get_mut(prefix),
            Pattern::Matcher(selector) => {
                let id = self.ids.get(selector)?;
                self.matchers.get_mut(id).map(|m| &mut m.members)
            }
        }
    }

    pub(super) fn contains(&self, pattern: &Pattern) -> bool {
        match pattern {
            Pattern::Exact(name) => self.exact.contains_key(name),
            Pattern::Prefix(prefix) => self.prefix.contains_key(prefix),
            Pattern::Matcher(selector) => self.ids.contains_key(selector),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.exact.len() + self.prefix.len() + self.matchers.len()
    }

    /// Checks that `selectors` (not yet in the table) fit the index's caps, together.
    pub(super) fn admit(&self, selectors: &[&Selector]) -> Result<(), Crowded> {
        let mut probes = self.index.probes();
        let mut broad = self.index.broad();
        for selector in selectors {
            let Admission {
                new_probes,
                new_broad,
            } = self.index.admission(selector);
            probes += new_probes;
            broad += usize::from(new_broad);
        }
        if probes > MAX_PROBES {
            return Err(Crowded::Probes);
        }
        if broad > self.max_broad {
            return Err(Crowded::Broad);
        }
        Ok(())
    }

    /// The shared copy of `selector` and its subscribers, added if new.
    pub(super) fn matcher(&mut self, selector: &Selector) -> (Selector, &mut Members) {
        let id = match self.ids.get(selector) {
            Some(&id) => id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.index.insert(selector);
                self.ids.insert(selector.clone(), id);
                self.added.push_back(id);
                if self.added.len() > ADDED_LOG {
                    if let Some(oldest) = self.added.pop_front() {
                        self.floor = oldest + 1;
                    }
                }
                id
            }
        };
        let matcher = self.matchers.entry(id).or_insert_with(|| Matcher {
            selector: selector.clone(),
            members: Members::default(),
        });
        (matcher.selector.clone(), &mut matcher.members)
    }

    /// Forgets a pattern nobody subscribes to any more (its id stays in cached entries, where
    /// it is skipped).
    pub(super) fn remove_matcher(&mut self, selector: &Selector) {
        if let Some(id) = self.ids.remove(selector) {
            self.matchers.remove(&id);
            self.index.remove(selector);
        }
    }

    /// The ids of the patterns that match `topic` (some may have gone since: callers skip ids
    /// not in `matchers`).
    pub(super) fn matching(&mut self, topic: &TopicName) -> Arc<[u64]> {
        let now = self.next_id;
        if let Some(cached) = self.matched.get_mut(topic) {
            if cached.seen == now {
                return Arc::clone(&cached.ids);
            }
            if cached.seen >= self.floor {
                // Catch up: drop the ids gone since, check the ones added since.
                let (seen, matchers) = (cached.seen, &self.matchers);
                let mut ids: Vec<u64> = cached
                    .ids
                    .iter()
                    .copied()
                    .filter(|id| matchers.contains_key(id))
                    .collect();
                ids.extend(self.added.iter().copied().filter(|&id| {
                    id >= seen
                        && matchers
                            .get(&id)
                            .is_some_and(|m| m.selector.matches(topic.as_str()))
                }));
                cached.ids = ids.into();
                cached.seen = now;
                return Arc::clone(&cached.ids);
            }
        }
        let ids: Arc<[u64]> = self
            .index
            .matching(topic.as_str())
            .iter()
            .filter_map(|selector| self.ids.get(selector).copied())
            .collect();
        if self.matched.len() >= MATCH_CACHE && !self.matched.contains_key(topic) {
            self.matched.clear();
        }
        self.matched.insert(
            topic.clone(),
            Cached {
                seen: now,
                ids: Arc::clone(&ids),
            },
        );
        ids
    }

    /// Whether some pattern matches `topic`.
    pub(super) fn any_matcher_matches(&mut self, topic: &TopicName) -> bool {
        !self.matchers.is_empty()
            && self
                .matching(topic)
                .iter()
                .any(|id| self.matchers.contains_key(id))
    }
}
