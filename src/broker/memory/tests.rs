//! The memory broker's bookkeeping, checked after every publish: each bound holds and every
//! index agrees with the histories it indexes, through publishes to many topics that evict by
//! count, bytes, age and the topic cap in turn.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::sse::{EventName, LineText};

/// Counts deliveries; subscribes to nothing, so any topic may be forgotten.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Delivery for Counting {
    fn deliver(&self, _: &Arc<Event>) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed);
        0
    }
    fn subscribed_patterns(&self) -> Vec<Pattern> {
        Vec::new()
    }
    fn is_subscribed(&self, _: &TopicName) -> bool {
        false
    }
    fn is_named(&self, _: &TopicName) -> bool {
        false
    }
}

/// Every invariant of [`State`] against `limits`.
fn check(state: &State, limits: &Limits) {
    let mut bytes = 0;
    let mut events = 0;
    let mut oldest = BTreeMap::new();
    let mut recency = BTreeMap::new();
    for (name, history) in &state.topics {
        assert!(
            history.events.len() <= limits.history,
            "{name}: over the count"
        );
        assert!(history.events.iter().all(|e| &e.topic == name));
        assert!(history
            .events
            .iter()
            .zip(history.events.iter().skip(1))
            .all(|(a, b)| a.id < b.id));
        bytes += history.events.iter().map(|e| e.weight()).sum::<usize>();
        events += history.events.len();
        if let Some(front) = history.events.front() {
            oldest.insert(front.id, name.clone());
        }
        recency.insert(history.last_id, name.clone());
        assert_eq!(
            history.private_held,
            history.events.iter().filter(|e| e.private).count()
        );
    }
    let ledger = &state.ledger;
    assert_eq!(ledger.bytes, bytes, "bytes total");
    assert_eq!(ledger.events, events, "events total");
    assert!(ledger.bytes <= limits.max_bytes, "over the byte bound");
    assert!(
        state.topics.len() <= limits.max_topics,
        "over the topic cap"
    );
    assert_eq!(ledger.oldest, oldest, "index by oldest event");
    assert_eq!(ledger.recency, recency, "index by newest id");
    let held: Vec<EventId> = state
        .topics
        .values()
        .flat_map(|h| h.events.iter().map(|e| e.id))
        .collect();
    assert!(
        ledger
            .custom_ids
            .values()
            .flat_map(|bearers| bearers.keys())
            .all(|id| held.contains(id)),
        "a custom id of an event gone"
    );
}

fn publish_many(limits: Limits, publishes: usize) -> (MemoryBroker, Arc<Counting>) {
    let delivery = Arc::new(Counting::default());
    let broker = MemoryBroker::new(Arc::clone(&delivery) as Arc<dyn Delivery>, limits);
    let mut last = EventId::default();
    for i in 0..publishes {
        let topic = TopicName::new(&format!("t{}", (i * 7) % 11)).unwrap();
        let mut draft = Draft::new(topic, EventName::message(), "x".repeat(i % 300));
        draft.private = i % 5 == 0;
        if i % 3 == 0 {
            draft.custom_id = Some(LineText::new(&format!("c{}", i % 17), 64).unwrap());
        }
        let event = broker.publish_now(draft).unwrap();
        assert!(event.id > last, "ids increase");
        last = event.id;
        check(&broker.lock(), &limits);
    }
    (broker, delivery)
}

#[test]
fn every_bound_and_index_holds_after_each_publish() {
    let limits = Limits {
        history: 5,
        max_age: Duration::from_secs(3600),
        max_bytes: 6_000,
        max_topics: 7,
    };
    let (broker, delivery) = publish_many(limits, 2_000);
    assert_eq!(
        delivery.0.load(Ordering::Relaxed),
        2_000,
        "every publish delivered"
    );
    let state = broker.lock();
    assert_eq!(
        state.topics.len(),
        7,
        "the cap made room by forgetting topics"
    );
    assert!(state.forgotten_up_to > EventId::default());
}

#[test]
fn events_past_their_age_leave_with_the_next_publish() {
    let limits = Limits {
        history: 1_000,
        max_age: Duration::ZERO,
        max_bytes: usize::MAX,
        max_topics: 100,
    };
    let (broker, _) = publish_many(limits, 500);
    let state = broker.lock();
    // An event older than the publish that followed it on its topic is gone.
    for history in state.topics.values() {
        let newest = history.events.back().map_or(0.0, |e| e.timestamp);
        assert!(history.events.iter().all(|e| e.timestamp >= newest));
    }
}

/// Forgetting a topic whole (the cap) leaves no trace of it in any index.
#[test]
fn a_forgotten_topic_leaves_every_index() {
    let limits = Limits {
        history: 10,
        max_age: Duration::from_secs(3600),
        max_bytes: usize::MAX,
        max_topics: 100,
    };
    let (broker, _) = publish_many(limits, 200);
    let mut state = broker.lock();
    let names: Vec<TopicName> = state.topics.keys().cloned().collect();
    for name in &names {
        state.forget(name);
        check(&state, &limits);
    }
    assert!(state.topics.is_empty());
    assert_eq!((state.ledger.bytes, state.ledger.events), (0, 0));
    assert!(state.ledger.recency.is_empty() && state.ledger.oldest.is_empty());
    assert!(state.ledger.custom_ids.is_empty());
}
