//! What one SSE stream sends, as a sequence of byte chunks: the burst mode (the seed's
//! contract) and the live mode. No HTTP here: `http::stream` wraps a [`Session`] in a body.
//!
//! Every frame written is either a shared pre-encoded event frame or one of the fixed control
//! frames below, so no input reaches the wire except through the encoder.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use bytes::Bytes;
use serde_json::json;
use tokio::time::{sleep, Instant, Sleep};

use crate::event::{control, control_frame, unix_now};

mod burst;
mod drain;
mod guard;
mod live;
mod pace;
use crate::hub::{Event, Replay, Subscription};
use crate::metrics::End;
use crate::sse::{EventId, EventName, FrameBuilder, LineText};
pub use guard::StreamGuard;
pub use pace::Pacer;

/// How a stream behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The seed's: one message repeated, then `close`, then the end.
    Burst,
    /// Every matching event, until shutdown or the client leaves.
    Live,
    /// The Mercure protocol's stream: live, each event as the publisher sent it (`id`, `event`,
    /// `retry`, one `data:` line per line), and only comments of the hub's own.
    Mercure,
}

/// Fixed settings of every session of a server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Repeats of a burst.
    pub repeats: u32,
    /// Pause between repeats.
    pub interval: Duration,
    /// Idle time before a heartbeat comment.
    pub heartbeat: Duration,
    /// `retry:` hint of live streams, milliseconds.
    pub retry_ms: u64,
    /// On shutdown, live streams end at a random point of this window (not all at once).
    pub drain_spread: Duration,
    /// How long shutdown waits: a burst that ends within it is finished.
    pub shutdown_grace: Duration,
    /// First copies of bursts go out at most one per `--burst-pace` (see [`pace`]).
    pub pacer: Pacer,
}

enum State {
    /// Waiting for an event (burst: the one to repeat; live: the next one).
    Waiting,
    /// Burst: `sent` repeats of `event` are out and the next is due at `due`. Each copy is due
    /// one interval after the one before it actually went out, so a copy that was late
    /// (thousands of other streams due in the same instant) does not make the next gap short.
    Repeating {
        event: Arc<Event>,
        sent: u32,
        due: Instant,
    },
    Done,
}

/// One stream's state machine. Call [`Session::next_chunk`] until it returns `None`.
pub struct Session {
    mode: Mode,
    settings: Arc<Settings>,
    subscription: Option<Subscription>,
    /// Frames due before anything else (handshake, gap notice).
    queued: VecDeque<Bytes>,
    /// Live mode: events to replay after `queued`, encoded one at a time as they are sent (a
    /// resume holds references to shared events, not a copy of their frames).
    replaying: VecDeque<Arc<Event>>,
    state: State,
    shutdown: Shutdown,
    /// When the stream must end (token `exp`, `--max-stream-lifetime`, a drain) and the
    /// `close` status.
    deadline: Option<(Instant, &'static str)>,
    /// Shutdown began and this stream has planned its end.
    draining: bool,
    guard: StreamGuard,
}

impl Session {
    /// A session over a fresh subscription and the replay the hub returned for it.
    pub fn new(
        mode: Mode,
        settings: Arc<Settings>,
        subscription: Subscription,
        replay: Replay,
        requested: Option<&str>,
        shutdown: Shutdown,
        guard: StreamGuard,
    ) -> Self {
        let mut queued = VecDeque::new();
        if mode == Mode::Mercure {
            // A comment, so the response starts at once (EventSource's `open`); a lost cursor
            // is reported in the `Mercure-Last-Event-ID` header instead of an event.
            queued.push_back(Bytes::from_static(b":\n\n"));
        } else {
            let mut opening = FrameBuilder::new();
            if mode == Mode::Live {
                opening = opening.retry(settings.retry_ms);
                // Where the stream starts, as its last event id: a client that reconnects (or
                // hands the stream to another tab) before any event came resumes from here and
                // misses nothing published in between.
                // `earliest` (Mercure's reserved cursor, read by both APIs) when no event was
                // ever issued.
                match replay.start {
                    Some(start) if start == EventId::default() => {
                        if let Ok(earliest) = LineText::new("earliest", 8) {
                            opening = opening.id_text(&earliest);
                        }
                    }
                    Some(start) => opening = opening.id(start),
                    None => {}
                }
            }
            queued.push_back(
                opening
                    .event(&name(control::KEEPALIVE))
                    .data(
                        &json!({"timestamp": unix_now(), "data": {"status": "connected"}})
                            .to_string(),
                    )
                    .finish(),
            );
            if replay.gap {
                queued.push_back(gap_frame(requested.unwrap_or("")));
            }
        }
        let mut subscription = Some(subscription);
        let mut replaying = VecDeque::new();
        let state = match mode {
            Mode::Live | Mode::Mercure => {
                replaying = replay.events.into();
                State::Waiting
            }
            Mode::Burst => match replay.events.into_iter().next() {
                Some(event) => {
                    subscription = None;
                    State::Repeating {
                        event,
                        sent: 0,
                        due: Instant::now(),
                    }
                }
                None => State::Waiting,
            },
        };
        Self {
            deadline: None,
            draining: false,
            mode,
            settings,
            subscription,
            queued,
            replaying,
            state,
            shutdown,
            guard,
        }
    }

    /// Keeps `thing` until the stream ends (what the stream counts against or announces).
    pub fn hold(&mut self, thing: impl std::any::Any + Send + Sync) {
        self.guard.hold(thing);
    }

    /// Ends the stream with a `close` event of `status` after `after`.
    #[must_use]
    pub fn ending_after(mut self, after: Duration, status: &'static str) -> Self {
        self.deadline = Instant::now().checked_add(after).map(|at| (at, status));
        self
    }

    /// The stream's timer, for the writer to keep (pinned) for as long as the stream and to
    /// pass to every [`Session::next_chunk`]: the heartbeat's, or the next burst copy's.
    ///
    /// One timer per stream, moved rather than remade: moving a registered timer later is one
    /// atomic update, where a fresh timer per wait took the timer driver's lock twice (to
    /// register, to cancel) for every event delivered. Kept by the writer, not the session,
    /// because a timer must stay pinned where it is, and the writer's future already is.
    pub fn timer(&self) -> Sleep {
        sleep(self.settings.heartbeat)
    }

    /// The next bytes to write, or `None` when the response should end. `timer` is the one
    /// [`Session::timer`] gave for this stream.
    pub async fn next_chunk(&mut self, timer: Pin<&mut Sleep>) -> Option<Bytes> {
        if let Some(frame) = self.pending_frame() {
            return Some(frame);
        }
        if matches!(self.state, State::Done) {
            return None;
        }
        if self.shutdown.is_cancelled() && !self.draining {
            return Some(self.begin_drain());
        }
        // Whatever was sent since the last call is written by now (the writer asks for the
        // next chunk only then): count it once for the whole write, not per event.
        if let Some(stats) = &mut self.guard.stats {
            stats.flush();
        }
        match self.deadline {
            // The mode's own wait, not `next_frame`: one async layer less in every stream.
            None => match self.mode {
                Mode::Live | Mode::Mercure => self.next_live(timer).await,
                Mode::Burst => self.next_burst(timer).await,
            },
            // Boxed: only streams with a deadline pay for the extra timer, per frame.
            Some((at, status)) => Box::pin(self.next_before(at, status, timer)).await,
        }
    }

    async fn next_frame(&mut self, timer: Pin<&mut Sleep>) -> Option<Bytes> {
        match self.mode {
            Mode::Live | Mode::Mercure => self.next_live(timer).await,
            Mode::Burst => self.next_burst(timer).await,
        }
    }

    /// A frame that is ready now without waiting, if any: used to write several pending live
    /// events in one go.
    pub fn ready_frame(&mut self) -> Option<Bytes> {
        if let Some(frame) = self.pending_frame() {
            return Some(frame);
        }
        match (&self.state, self.mode) {
            // The last copy of a burst is followed by `close` at once.
            (State::Repeating { sent, .. }, _) if *sent >= self.settings.repeats => {
                return Some(self.complete());
            }
            (State::Waiting, Mode::Live | Mode::Mercure) => {}
            _ => return None,
        }
        match self.subscription.as_mut()?.try_recv() {
            Ok(event) => event.map(|e| self.frame_of(&e)),
            Err(lagged) => Some(self.lagged(lagged)),
        }
    }

    /// Whether the response should end now (nothing more will be sent).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done) && self.queued.is_empty() && self.replaying.is_empty()
    }

    /// The handshake and notices first, then replayed events. A queue is freed once empty: a
    /// stream lives on long after its first frames, and a resume's list of events can be long.
    fn pending_frame(&mut self) -> Option<Bytes> {
        if let Some(frame) = self.queued.pop_front() {
            if self.queued.is_empty() {
                self.queued = VecDeque::new();
            }
            return Some(frame);
        }
        let event = self.replaying.pop_front()?;
        if self.replaying.is_empty() {
            self.replaying = VecDeque::new();
        }
        self.sent();
        Some(match self.mode {
            Mode::Mercure => event.mercure_frame().clone(),
            _ => event.replay_frame(),
        })
    }

    /// Counts one event frame sent (a plain add; handed over once per write).
    fn sent(&mut self) {
        if let Some(stats) = &mut self.guard.stats {
            stats.sent();
        }
    }

    /// Records why the stream ends (the first reason wins).
    fn ending(&mut self, end: End) {
        if let Some(stats) = &mut self.guard.stats {
            stats.end(end);
        }
    }

    /// The `close` frame; the response ends after it.
    fn finish(&mut self, status: &str, message: &str) -> Bytes {
        self.ending(match status {
            "shutdown" => End::Shutdown,
            "expired" => End::Expired,
            "lifetime" => End::Lifetime,
            "lagged" => End::Lagged,
            _ => End::Complete,
        });
        self.state = State::Done;
        self.subscription = None;
        if self.mode == Mode::Mercure {
            return FrameBuilder::new().comment(status).finish();
        }
        control_frame(control::CLOSE, unix_now(), status, message)
    }
}

fn name(text: &str) -> EventName {
    EventName::new(text).unwrap_or_else(|_| EventName::message())
}

fn heartbeat_frame() -> Bytes {
    Bytes::from_static(b": heartbeat\n\n")
}

/// The documented `gap` event: events after the requested id may have been missed.
fn gap_frame(requested: &str) -> Bytes {
    FrameBuilder::new()
        .event(&name(control::GAP))
        .data(
            &json!({"timestamp": unix_now(), "data": {
                "status": control::GAP,
                "requested": requested,
                "message": "events after the requested id are no longer all in history; continuing from the oldest held"
            }})
            .to_string(),
        )
        .finish()
}

#[cfg(test)]
mod tests;
