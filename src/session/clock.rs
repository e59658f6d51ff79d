//! The rhythm of a burst: one clock per message, so that every stream that took the message
//! together writes copy k together, in one pass, in the order of the first round, at the
//! message's arrival + k × `--interval`.
//!
//! Why not a timer per stream (each copy due one interval after the previous one went out, as
//! round 2 did): thousands of streams' copies then come due spread over the first round's
//! length, in millisecond buckets, and a later round that costs more per write than the first
//! (on loopback the sender's core pays for waking each reader, which depends on how the client
//! reads) falls behind along its whole length: a task-per-connection tokio client saw worst
//! interval errors of 230–270 ms at 19,000 streams. Here round k is one wake-up of every
//! waiting stream, in the order they finished round k-1 (tokio's `Notify` wakes its waiters
//! first come, first served), at a time fixed by the message, not by when earlier copies went
//! out: a round that runs late does not move the next one, and each stream's gap is its place
//! in round k minus its place in round k-1.
//!
//! A stream joins its message's clock only if it wrote its first copy while the first round was
//! still going (within [`JOIN_WINDOW`] of the previous stream's first copy): one that took the
//! message later (a resume, a slow task) keeps its own schedule, each copy one interval after
//! its first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::sse::EventId;

/// Longest pause between two streams' first copies for the later one to still count as part of
/// the first round.
pub const JOIN_WINDOW: Duration = Duration::from_millis(5);

/// The clocks of the messages being burst now, shared by every stream of a server.
#[derive(Debug, Clone, Default)]
pub struct Clocks {
    live: Arc<Mutex<HashMap<EventId, Weak<BurstClock>>>>,
}

/// One message's rounds.
#[derive(Debug)]
pub struct BurstClock {
    anchor: Instant,
    /// The last round fired (0: only the first, which streams write as they take the message).
    fired: AtomicU32,
    notify: Notify,
    /// When the newest first copy went out, in nanoseconds after `anchor`.
    last_first_copy: AtomicU64,
}

impl Clocks {
    /// The clock of `event`, started now (its driver fires rounds 1 to `repeats - 1`) if this
    /// is the first stream to take it.
    pub fn join(&self, event: EventId, repeats: u32, interval: Duration) -> Arc<BurstClock> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(clock) = live.get(&event).and_then(Weak::upgrade) {
            return clock;
        }
        if live.len() >= 64 {
            live.retain(|_, clock| clock.strong_count() > 0);
        }
        let clock = Arc::new(BurstClock {
            anchor: Instant::now(),
            fired: AtomicU32::new(0),
            notify: Notify::new(),
            last_first_copy: AtomicU64::new(0),
        });
        live.insert(event, Arc::downgrade(&clock));
        drop(live);
        let driver = Arc::clone(&clock);
        tokio::spawn(async move {
            for round in 1..repeats {
                tokio::time::sleep_until(driver.anchor + interval * round).await;
                driver.fired.store(round, Ordering::Release);
                driver.notify.notify_waiters();
            }
        });
        clock
    }
}

impl BurstClock {
    /// Records a stream's first copy going out now; whether it is part of the first round
    /// (then it writes the later rounds with this clock).
    pub fn first_copy(&self) -> bool {
        let now = u64::try_from((Instant::now() - self.anchor).as_nanos()).unwrap_or(u64::MAX);
        let previous = self.last_first_copy.fetch_max(now, Ordering::AcqRel);
        let window = u64::try_from(JOIN_WINDOW.as_nanos()).unwrap_or(u64::MAX);
        now.saturating_sub(previous) <= window
    }

    /// When round `round` is due.
    pub fn due(&self, round: u32, interval: Duration) -> Instant {
        self.anchor + interval * round
    }

    /// Waits until round `round` fires (at once if it has). Waiters are woken in the order
    /// they began to wait.
    pub async fn wait(&self, round: u32) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.fired.load(Ordering::Acquire) >= round {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Rounds fire at the message's arrival + k intervals, however late a round's writing runs,
    /// and wake waiters first come, first served.
    #[tokio::test(start_paused = true)]
    async fn rounds_are_anchored_to_the_message_and_keep_the_first_rounds_order() {
        let clocks = Clocks::default();
        let start = Instant::now();
        let clock = clocks.join(EventId::new(1, 1), 3, SECOND);
        assert!(Arc::ptr_eq(
            &clock,
            &clocks.join(EventId::new(1, 1), 3, SECOND)
        ));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for stream in 0..5u32 {
            let (clock, order) = (Arc::clone(&clock), Arc::clone(&order));
            assert!(clock.first_copy());
            tasks.push(tokio::spawn(async move {
                for round in 1..3 {
                    clock.wait(round).await;
                    order.lock().unwrap().push((round, stream, start.elapsed()));
                    // Round 1 runs late for stream 4: round 2 is not moved.
                    if stream == 4 && round == 1 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
            }));
            tokio::task::yield_now().await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap();
        let round = |r: u32| -> Vec<(u32, Duration)> {
            order
                .iter()
                .filter(|(k, ..)| *k == r)
                .map(|(_, s, at)| (*s, *at))
                .collect()
        };
        let expect = |at: Duration| (0..5).map(|s| (s, at)).collect::<Vec<_>>();
        assert_eq!(round(1), expect(SECOND));
        // Stream 4 began to wait for round 2 last (its round 1 ran late): round 2 still fires
        // at its time, and stream 4 goes last in it.
        let two = round(2);
        assert_eq!(two[..4], expect(2 * SECOND)[..4]);
        assert_eq!(two[4], (4, 2 * SECOND));
    }

    /// A stream whose first copy comes after the first round ended keeps its own schedule.
    #[tokio::test(start_paused = true)]
    async fn a_stream_that_joins_after_the_first_round_is_on_its_own_clock() {
        let clocks = Clocks::default();
        let clock = clocks.join(EventId::new(1, 2), 3, SECOND);
        assert!(clock.first_copy());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(
            clock.first_copy(),
            "2 ms after the previous first copy: same round"
        );
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(!clock.first_copy(), "400 ms later: a round of its own");
        assert_eq!(clock.due(2, SECOND) - clock.anchor, 2 * SECOND);
    }

    /// A round that has fired is not waited for.
    #[tokio::test(start_paused = true)]
    async fn a_fired_round_does_not_wait() {
        let clock = Clocks::default().join(EventId::new(1, 3), 2, SECOND);
        tokio::time::sleep(2 * SECOND).await;
        let start = Instant::now();
        clock.wait(1).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
