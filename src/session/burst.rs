//! The seed's mode: one event, sent `--repeats` times `--interval` apart (each copy one interval
//! after the previous one went out, the first when the [`Pacer`](super::Pacer) gives it a
//! slot), then `close` and the end of the response.

use bytes::Bytes;
use std::pin::Pin;

use tokio::time::{Instant, Sleep};

use super::{heartbeat_frame, Session, State};
use crate::event::{control, control_frame, unix_now};
use crate::metrics::End;

impl Session {
    pub(super) async fn next_burst(&mut self, mut timer: Pin<&mut Sleep>) -> Option<Bytes> {
        let (repeats, interval) = (self.settings.repeats, self.settings.interval);
        if let State::Waiting = self.state {
            timer
                .as_mut()
                .reset(Instant::now() + self.settings.heartbeat);
            let event = loop {
                if let Some(frame) = self.shutdown_seen() {
                    return Some(frame);
                }
                let subscription = self.subscription.as_mut()?;
                match subscription.try_recv() {
                    Ok(Some(event)) => break event,
                    Ok(None) => {}
                    // Unreachable in practice (the first event is taken at once); end cleanly
                    // so the client reconnects and resumes.
                    Err(_) => return Some(self.finish(control::LAGGED, "reconnect to resume")),
                }
                tokio::select! {
                    biased;
                    () = subscription.changed() => {}
                    () = timer.as_mut() => return Some(heartbeat_frame()),
                }
            };
            self.subscription = None;
            let due = self.settings.pacer.slot(Instant::now());
            self.state = State::Repeating {
                event,
                sent: 0,
                due,
            };
        }
        let State::Repeating { sent, due, .. } = &self.state else {
            return None;
        };
        let (sent, due) = (*sent, *due);
        if sent >= repeats {
            return Some(self.complete());
        }
        if due > Instant::now() {
            // Nothing changes before this wait, so dropping the future here (the connection
            // went away) loses no frame.
            timer.as_mut().reset(due);
            tokio::select! {
                biased;
                () = self.shutdown.cancelled(), if !self.draining => return Some(self.begin_drain()),
                () = timer => {}
            }
        }
        let State::Repeating { event, sent, due } = &mut self.state else {
            return None;
        };
        *due = Instant::now() + interval;
        let frame = event.burst_frames(repeats, interval)[*sent as usize].clone();
        *sent += 1;
        self.sent();
        Some(frame)
    }

    /// The shared `close` frame that ends a burst.
    pub(super) fn complete(&mut self) -> Bytes {
        let frame = match &self.state {
            State::Repeating { event, .. } => event
                .burst_frames(self.settings.repeats, self.settings.interval)
                .last()
                .cloned(),
            _ => None,
        };
        self.ending(End::Complete);
        self.state = State::Done;
        self.subscription = None;
        frame.unwrap_or_else(|| {
            control_frame(
                control::CLOSE,
                unix_now(),
                control::COMPLETE,
                "stream complete",
            )
        })
    }
}
