//! One subscription's side of the fan-out: its bounded queue (the [`Slot`] the table appends
//! to) and the [`Subscription`] handle its stream reads from, which unsubscribes when dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::Fanout;
use crate::event::Event;
use crate::sse::EventId;
use crate::topic::{Pattern, TopicName};

/// A queue that drained keeps at most this many slots of capacity.
const KEEP_CAPACITY: usize = 32;

/// Whether a subscriber may receive the private events of a topic (its token's `subscribe`
/// grants). Without one, a subscriber receives public events only.
pub type Access = Arc<dyn Fn(&TopicName) -> bool + Send + Sync>;

/// One subscription's queue, shared by the table (writer) and the subscription (reader).
#[derive(Default)]
pub(super) struct Slot {
    pub(super) queue: Mutex<Queue>,
    /// Set (under the queue's lock) when an event or a lag is queued, cleared when the reader
    /// empties the queue: the reader's "anything more?" after each event is a load, not a lock.
    /// A stale `false` only sends the reader to wait on `ready`, whose permit the append leaves.
    pub(super) pending: AtomicBool,
    pub(super) ready: Notify,
    pub(super) access: Option<Access>,
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
pub(super) struct Queue {
    pub(super) events: VecDeque<Arc<Event>>,
    /// Id of the newest event appended (or skipped as replayed): anything not newer is a
    /// duplicate.
    last: EventId,
    /// Events dropped because the queue was full; non-zero means lagged.
    dropped: u64,
}

impl Slot {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
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
    pub(super) fn offer(&self, event: &Arc<Event>, limit: usize) -> bool {
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
            self.pending.store(true, Ordering::Release);
            drop(queue);
            self.ready.notify_one();
            return false;
        }
        queue.events.push_back(Arc::clone(event));
        self.pending.store(true, Ordering::Release);
        drop(queue);
        self.ready.notify_one();
        true
    }
}

/// The subscriber fell more than the queue size behind and lost its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber lagged behind by {0} events")]
pub struct Lagged(pub u64);

/// One stream's subscription. Dropping it unsubscribes (and removes entries nobody uses).
#[derive(Debug)]
pub struct Subscription {
    pub(super) slot: Arc<Slot>,
    pub(super) patterns: Vec<Pattern>,
    pub(super) fanout: Arc<Fanout>,
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

    /// Waits until an event may be ready, or [`Fanout::wake_all`] woke every subscription
    /// (shutdown). A wake-up that came while nobody waited is kept for the next wait, so a
    /// check then this wait misses nothing; a wake-up may find nothing new.
    pub async fn changed(&self) {
        self.slot.ready.notified().await;
    }

    /// The next event in id order if one is ready now.
    ///
    /// # Errors
    /// [`Lagged`] when the subscriber fell too far behind.
    pub fn try_recv(&mut self) -> Result<Option<Arc<Event>>, Lagged> {
        if !self.slot.pending.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut queue = self.slot.lock();
        if queue.dropped > 0 {
            return Err(Lagged(queue.dropped));
        }
        let event = queue.events.pop_front();
        if queue.events.is_empty() {
            self.slot.pending.store(false, Ordering::Relaxed);
            if queue.events.capacity() > KEEP_CAPACITY {
                queue.events = VecDeque::new();
            }
        }
        Ok(event)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.fanout.release(&self.slot, &self.patterns);
    }
}
