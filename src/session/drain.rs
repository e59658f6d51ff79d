//! How a stream ends early: at its deadline (token `exp`, `--max-stream-lifetime`) or through
//! the drain that shutdown starts, spread so that clients do not all reconnect at once.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::{sleep_until, Duration, Instant, Sleep};

use super::{Mode, Session, State};
use crate::event::control;
use crate::sse::FrameBuilder;

/// Time a burst must leave before the grace period runs out to be finished on shutdown.
const DRAIN_MARGIN: Duration = Duration::from_millis(500);

/// A number in `[0, 1)`, different for every call (spreads drains and reconnects).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() % 1_000_000) as f64 / 1_000_000.0
}

impl Session {
    /// The next frame, or the `close` that ends the stream at `at`.
    pub(super) async fn next_before(
        &mut self,
        at: Instant,
        status: &'static str,
        timer: Pin<&mut Sleep>,
    ) -> Option<Bytes> {
        // Both waits below are cancel-safe: dropping one loses no frame.
        let expired = tokio::select! {
            biased;
            () = sleep_until(at) => true,
            frame = self.next_frame(timer) => return frame,
        };
        debug_assert!(expired);
        let message = match status {
            control::EXPIRED => "the token expired: reconnect with a fresh one",
            control::SHUTDOWN => "server shutting down",
            _ => "the stream reached its longest lifetime: reconnect",
        };
        Some(self.finish(status, message))
    }

    /// Plans this stream's end when shutdown begins. A live stream ends at a random point of
    /// `--drain-spread` (delivering events until then) and gets a `retry:` hint now, spread as
    /// well, so its client's reconnect does not land with every other one; a burst that ends
    /// within the grace period is finished; anything else ends at once.
    pub(super) fn begin_drain(&mut self) -> Bytes {
        self.draining = true;
        let now = Instant::now();
        let settings = Arc::clone(&self.settings);
        let close_now = match (&self.state, self.mode) {
            (State::Repeating { sent, due, .. }, Mode::Burst) => {
                let after_next = settings.repeats.saturating_sub(*sent + 1);
                let final_copy = *due + settings.interval * after_next;
                final_copy + DRAIN_MARGIN > now + settings.shutdown_grace
            }
            (_, Mode::Burst) => true,
            _ => false,
        };
        if close_now {
            return self.finish(control::SHUTDOWN, "server shutting down");
        }
        if self.mode != Mode::Burst {
            let at = now + settings.drain_spread.mul_f64(jitter());
            if self.deadline.is_none_or(|(current, _)| at < current) {
                self.deadline = Some((at, control::SHUTDOWN));
            }
        }
        let spread_ms = u64::try_from(settings.drain_spread.as_millis()).unwrap_or(u64::MAX);
        let retry = settings.retry_ms + (spread_ms as f64 * jitter()) as u64;
        FrameBuilder::new().retry(retry).finish()
    }

    /// The start of the drain, when shutdown has begun and this stream has not planned its end
    /// yet. Checked before each wait for an event; shutdown wakes those waits
    /// ([`crate::hub::Hub::wake_all`]), so they need no wait of their own on the token.
    pub(super) fn shutdown_seen(&mut self) -> Option<Bytes> {
        (!self.draining && self.shutdown.is_cancelled()).then(|| self.begin_drain())
    }
}
