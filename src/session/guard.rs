//! The open-stream count and what else a stream holds until it ends (quota slots, its
//! metrics): released when the session is dropped, however the stream ended.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::metrics::StreamStats;

/// Something a stream holds until it ends (a quota slot, an announcement).
type Held = Box<dyn std::any::Any + Send + Sync>;

/// Counts open streams; the count drops when the session ends (the guard is dropped).
/// It also holds whatever else the stream counts against (per-client and per-subject quotas).
pub struct StreamGuard {
    count: Arc<AtomicUsize>,
    /// Boxed: most streams hold nothing (no quota is on by default), and every idle stream
    /// pays for this field, in places more than once (the connection future's size).
    #[allow(clippy::box_collection)] // a thin pointer is the point: 8 bytes, not a Vec's 24
    held: Option<Box<Vec<Held>>>,
    /// The stream's metrics, once it opened: events sent, and why it ended.
    pub(super) stats: Option<StreamStats>,
}

impl std::fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGuard")
            .field("held", &self.held.as_ref().map_or(0, |h| h.len()))
            .finish()
    }
}

impl StreamGuard {
    /// Takes a slot if fewer than `max` are taken.
    pub fn acquire(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self {
                count: Arc::clone(count),
                held: None,
                stats: None,
            })
    }

    /// Counts the stream in `stats` from now until it ends.
    pub fn observe(&mut self, stats: StreamStats) {
        self.stats = Some(stats);
    }

    /// Keeps `slot` until the stream ends.
    pub fn hold(&mut self, slot: impl std::any::Any + Send + Sync) {
        self.held.get_or_insert_default().push(Box::new(slot));
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}
