//! Pacing of burst streams' first copies, so that the seed's rhythm holds at scale.
//!
//! A burst stream's copies are due one `--interval` apart, each after the one before it went
//! out. When thousands of streams take the same event, their first copies go out as fast as the
//! server can write, and their second and third copies come due at that same pace. If writing a
//! later round costs the server even a little more than the first did (on loopback the writer
//! also pays for waking the reader, which depends on whether the client was busy or waiting),
//! the later rounds fall behind their schedule and every client behind the slowdown sees a long
//! gap: measured at 19,000 streams on one core, worst interval errors of 20–160 ms from run to
//! run, the same as a minimal tokio broadcaster on that machine.
//!
//! The pacer hands out first-copy slots at least `--burst-pace` apart, so the first round runs
//! slightly below the server's write rate and later rounds have slack to keep their schedule.
//! The price is the first copy's latency at scale (19,000 streams × 20 µs = 380 ms for the last
//! one; at 1,000 streams, 20 ms); with few streams nothing waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Slots for first copies, `step` apart, shared by every burst stream of a server (a clone
/// shares them too).
#[derive(Debug, Clone)]
pub struct Pacer {
    step: Duration,
    next: Arc<Mutex<Option<Instant>>>,
}

impl Pacer {
    /// A pacer giving out slots `step` apart; `Duration::ZERO` paces nothing.
    pub fn new(step: Duration) -> Self {
        Self {
            step,
            next: Arc::new(Mutex::new(None)),
        }
    }

    /// The time a first copy may go out: `now`, or the next free slot if the slots handed out
    /// recently run ahead of `now`.
    pub fn slot(&self, now: Instant) -> Instant {
        if self.step.is_zero() {
            return now;
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.map_or(now, |free| free.max(now));
        *next = Some(slot + self.step);
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_a_step_apart_only_while_they_run_ahead() {
        let pacer = Pacer::new(Duration::from_micros(20));
        let now = Instant::now();
        let slots: Vec<_> = (0..4).map(|_| pacer.slot(now) - now).collect();
        assert_eq!(slots, [0, 20, 40, 60].map(Duration::from_micros));
        // Once the queue of slots has passed, a first copy goes out at once.
        let later = now + Duration::from_millis(1);
        assert_eq!(pacer.slot(later), later);
        assert_eq!(Pacer::new(Duration::ZERO).slot(now), now);
    }
}
