//! Events per second per topic, for the hub console and `GET /api/topics`.
//!
//! Counted where every event passes: the local fan-out. Both brokers hand every event they
//! number to every node's fan-out (the memory broker directly, Redis through its one channel),
//! whoever published it and whether or not anyone here subscribes, so a topic's rate is the
//! hub's, not one node's. Rates cannot be derived from what history holds (its count stops
//! growing at `--history`) nor from ids (their sequence is hub-wide, not per topic).
//!
//! Cost: one map increment per event and topic, under this module's own lock (never the
//! fan-out's). Memory: only topics with an event in the last [`WINDOW_SECS`] seconds are held,
//! at most `cap` of them (further topics are not counted until room frees up), each a fixed
//! ring of per-second counts. [`Activity::rotate`], called once a second by the server's
//! housekeeping, starts a new second and forgets topics that went quiet.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::topic::TopicName;

/// Seconds a rate is averaged over.
pub const WINDOW_SECS: usize = 5;
/// Slots of the ring: the completed seconds and the one being counted.
const SLOTS: usize = WINDOW_SECS + 1;

/// Events of one topic in one second: all, and the public ones (what a caller without a grant
/// on the topic may know of).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Count {
    all: u32,
    public: u32,
}

/// Events per second of one topic over the last completed seconds.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Every event.
    pub all: f64,
    /// Public events only.
    pub public: f64,
}

/// See the module docs.
#[derive(Debug)]
pub struct Activity {
    /// A std mutex: held for one increment or one pass over the map, never across an `.await`.
    inner: Mutex<Inner>,
    cap: usize,
}

#[derive(Debug)]
struct Inner {
    topics: HashMap<TopicName, [Count; SLOTS]>,
    /// How long each slot counted (the current one: still counting).
    spans: [Duration; SLOTS],
    /// The slot being counted.
    at: usize,
    /// When the current slot started.
    since: Instant,
}

impl Activity {
    /// Counts at most `cap` topics at a time.
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                topics: HashMap::new(),
                spans: [Duration::ZERO; SLOTS],
                at: 0,
                since: Instant::now(),
            }),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every operation leaves the counts consistent: a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an event on each topic it names (one lookup of each).
    pub fn record(&self, event: &Event) {
        let mut inner = self.lock();
        let at = inner.at;
        for topic in event.topics() {
            let full = inner.topics.len() >= self.cap;
            let ring = match inner.topics.entry(topic.clone()) {
                Entry::Occupied(counted) => counted.into_mut(),
                Entry::Vacant(_) if full => continue,
                Entry::Vacant(new) => new.insert([Count::default(); SLOTS]),
            };
            let slot = &mut ring[at];
            slot.all = slot.all.saturating_add(1);
            if !event.private {
                slot.public = slot.public.saturating_add(1);
            }
        }
    }

    /// Ends the second being counted (about once a second; the real span is measured) and
    /// forgets topics with no event in the window.
    pub fn rotate(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let at = inner.at;
        inner.spans[at] = now.saturating_duration_since(inner.since);
        inner.since = now;
        let next = (at + 1) % SLOTS;
        inner.at = next;
        inner.spans[next] = Duration::ZERO;
        inner.topics.retain(|_, ring| {
            ring[next] = Count::default();
            ring.iter().any(|c| c.all > 0)
        });
    }

    /// Each counted topic's rate over the completed seconds of the window.
    pub fn rates(&self) -> HashMap<TopicName, Rate> {
        let inner = self.lock();
        let span: f64 = inner
            .spans
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != inner.at)
            .map(|(_, d)| d.as_secs_f64())
            .sum();
        if span <= 0.0 {
            return HashMap::new();
        }
        inner
            .topics
            .iter()
            .map(|(name, ring)| {
                let (all, public) = ring
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != inner.at)
                    .fold((0u64, 0u64), |(a, p), (_, c)| {
                        (a + u64::from(c.all), p + u64::from(c.public))
                    });
                let rate = Rate {
                    all: all as f64 / span,
                    public: public as f64 / span,
                };
                (name.clone(), rate)
            })
            .collect()
    }

    /// Topics counted now.
    pub fn len(&self) -> usize {
        self.lock().topics.len()
    }

    /// Whether no topic is counted now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Draft;
    use crate::sse::EventId;

    fn event(topic: &str, seq: u64, private: bool) -> Event {
        let mut draft = Draft::new(
            TopicName::new(topic).unwrap(),
            crate::sse::EventName::message(),
            "m".into(),
        );
        draft.private = private;
        Event::new(EventId::new(1, seq), draft, 1.0)
    }

    #[test]
    fn counts_per_topic_over_completed_seconds_only() {
        let activity = Activity::new(10);
        for seq in 1..=4 {
            activity.record(&event("a", seq, seq == 4));
        }
        activity.record(&event("b", 5, false));
        // Nothing completed yet: no rate.
        assert!(activity.rates().is_empty());
        std::thread::sleep(Duration::from_millis(50));
        activity.rotate();
        activity.record(&event("a", 6, false)); // the new second: not in the rate yet
        let rates = activity.rates();
        let a = rates[&TopicName::new("a").unwrap()];
        let b = rates[&TopicName::new("b").unwrap()];
        // 4 and 1 events over one span of at least 50 ms.
        assert!((a.all / b.all - 4.0).abs() < 1e-9, "{a:?} {b:?}");
        assert!((a.public / b.all - 3.0).abs() < 1e-9, "{a:?} {b:?}");
        assert!(a.all > 0.0 && a.all <= 4.0 / 0.05 + 1e-9, "{a:?}");
    }

    #[test]
    fn quiet_topics_are_forgotten_and_the_map_is_capped() {
        let activity = Activity::new(2);
        activity.record(&event("a", 1, false));
        activity.record(&event("b", 2, false));
        activity.record(&event("c", 3, false)); // over the cap: not counted
        assert_eq!(activity.len(), 2);
        assert!(!activity.rates().contains_key(&TopicName::new("c").unwrap()));
        for _ in 0..SLOTS - 1 {
            activity.rotate();
            assert_eq!(activity.len(), 2, "still in the window");
        }
        activity.rotate();
        assert!(activity.is_empty(), "out of the window");
        activity.record(&event("c", 4, false));
        assert_eq!(activity.len(), 1, "room again");
    }
}
