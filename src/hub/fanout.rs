//! Local fan-out: one broadcast ring per subscribed topic or prefix.
//!
//! A publish writes one `Arc<Event>` into the ring of its topic and of each subscribed prefix
//! of it; every subscriber reads the same slot, so the publish path does no per-subscriber
//! allocation or lock. A ring holds `queue` events: a subscriber that falls further behind is
//! told it lagged (and is disconnected by its stream, to resume from history) instead of
//! growing memory or slowing anyone else.
//!
//! Brokers call [`Fanout::deliver`] in id order, one event at a time; a subscription with
//! several rings merges them by id, so every subscriber sees events in id order, once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::select_all;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::event::Event;
use super::topic::{Pattern, TopicName};
use crate::sse::EventId;

type Ring = broadcast::Sender<Arc<Event>>;

/// The rings of one hub.
#[derive(Debug)]
pub struct Fanout {
    /// A std mutex: held for map look-ups and ring writes only, never across an `.await`.
    rings: Mutex<Rings>,
    queue: usize,
}

#[derive(Debug, Default)]
struct Rings {
    exact: HashMap<TopicName, Ring>,
    prefix: HashMap<Arc<str>, Ring>,
}

impl Fanout {
    /// Rings of `queue` events each.
    pub fn new(queue: usize) -> Self {
        Self {
            rings: Mutex::new(Rings::default()),
            queue: queue.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Rings> {
        // A panic while holding the lock cannot leave the maps inconsistent (each operation is
        // a single insert, remove or send), so a poisoned lock is still usable.
        self.rings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands an event to every local subscriber whose patterns match it. Returns how many
    /// subscriptions it reached. Callers deliver in id order.
    pub fn deliver(&self, event: &Arc<Event>) -> usize {
        let rings = self.lock();
        let mut reached = 0;
        if let Some(ring) = rings.exact.get(&event.topic) {
            reached += ring.send(Arc::clone(event)).unwrap_or(0);
        }
        if !rings.prefix.is_empty() {
            for prefix in event.topic.prefixes() {
                if let Some(ring) = rings.prefix.get(prefix) {
                    reached += ring.send(Arc::clone(event)).unwrap_or(0);
                }
            }
        }
        reached
    }

    /// Subscribes to the patterns (deduplicated by the caller).
    pub fn subscribe(self: &Arc<Self>, patterns: &[Pattern]) -> Subscription {
        let mut rings = self.lock();
        let queue = self.queue;
        let receivers = patterns
            .iter()
            .map(|pattern| match pattern {
                Pattern::Exact(name) => rings
                    .exact
                    .entry(name.clone())
                    .or_insert_with(|| broadcast::channel(queue).0)
                    .subscribe(),
                Pattern::Prefix(prefix) => rings
                    .prefix
                    .entry(Arc::clone(prefix))
                    .or_insert_with(|| broadcast::channel(queue).0)
                    .subscribe(),
            })
            .collect::<Vec<_>>();
        Subscription {
            heads: receivers.iter().map(|_| None).collect(),
            receivers,
            patterns: patterns.to_vec(),
            fanout: Arc::clone(self),
            last_id: EventId::default(),
        }
    }

    /// Local subscriptions that would receive an event on `topic`.
    pub fn subscribers(&self, topic: &TopicName) -> usize {
        let rings = self.lock();
        let exact = rings.exact.get(topic).map_or(0, Ring::receiver_count);
        exact
            + topic
                .prefixes()
                .filter_map(|prefix| rings.prefix.get(prefix))
                .map(Ring::receiver_count)
                .sum::<usize>()
    }

    /// Every pattern someone subscribes to now.
    pub fn subscribed_patterns(&self) -> Vec<Pattern> {
        let rings = self.lock();
        rings
            .exact
            .keys()
            .cloned()
            .map(Pattern::Exact)
            .chain(rings.prefix.keys().cloned().map(Pattern::Prefix))
            .collect()
    }

    /// Topics that have exact subscribers now.
    pub fn subscribed_topics(&self) -> Vec<TopicName> {
        self.lock().exact.keys().cloned().collect()
    }

    fn release(&self, patterns: &[Pattern]) {
        let mut rings = self.lock();
        for pattern in patterns {
            match pattern {
                Pattern::Exact(name) => {
                    if rings
                        .exact
                        .get(name)
                        .is_some_and(|r| r.receiver_count() == 0)
                    {
                        rings.exact.remove(name);
                    }
                }
                Pattern::Prefix(prefix) => {
                    if rings
                        .prefix
                        .get(prefix)
                        .is_some_and(|r| r.receiver_count() == 0)
                    {
                        rings.prefix.remove(prefix);
                    }
                }
            }
        }
    }
}

/// The subscriber fell more than the queue size behind and lost its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber lagged behind by {0} events")]
pub struct Lagged(pub u64);

/// One stream's subscription. Dropping it unsubscribes (and removes rings nobody reads).
#[derive(Debug)]
pub struct Subscription {
    receivers: Vec<broadcast::Receiver<Arc<Event>>>,
    /// Per receiver, an event taken from it but not yet handed out (multi-ring merge only).
    heads: Vec<Option<Arc<Event>>>,
    patterns: Vec<Pattern>,
    fanout: Arc<Fanout>,
    last_id: EventId,
}

impl Subscription {
    /// Skips every event up to and including `id` (already delivered from history).
    pub fn skip_through(&mut self, id: EventId) {
        self.last_id = self.last_id.max(id);
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
            let (index, result) = if self.receivers.len() == 1 {
                (0, self.receivers[0].recv().await)
            } else {
                let waits = self.receivers.iter_mut().map(|r| Box::pin(r.recv()));
                let (result, index, _) = select_all(waits).await;
                (index, result)
            };
            match result {
                Ok(event) => self.heads[index] = Some(event),
                Err(RecvError::Lagged(n)) => return Err(Lagged(n)),
                // The ring is gone only when the hub is gone: wait forever (shutdown ends the stream).
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    /// The next event in id order if one is ready now.
    ///
    /// # Errors
    /// [`Lagged`] when the subscriber fell too far behind.
    pub fn try_recv(&mut self) -> Result<Option<Arc<Event>>, Lagged> {
        loop {
            for (receiver, head) in self.receivers.iter_mut().zip(self.heads.iter_mut()) {
                if head.is_none() {
                    match receiver.try_recv() {
                        Ok(event) => *head = Some(event),
                        Err(TryRecvError::Lagged(n)) => return Err(Lagged(n)),
                        Err(TryRecvError::Empty | TryRecvError::Closed) => {}
                    }
                }
            }
            // Brokers deliver in id order and an event reaches all its rings at once, so the
            // smallest head is the next event overall.
            let next = self
                .heads
                .iter()
                .enumerate()
                .filter_map(|(i, head)| head.as_ref().map(|e| (e.id, i)))
                .min();
            let Some((id, index)) = next else {
                return Ok(None);
            };
            let event = self.heads[index].take();
            if id > self.last_id {
                self.last_id = id;
                return Ok(event);
            }
            // A duplicate (several patterns matched) or already replayed: skip it.
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.receivers.clear();
        self.fanout.release(&self.patterns);
    }
}
