//! The live modes (native `mode=live` and Mercure): every matching event as it comes, a
//! heartbeat comment after `--heartbeat` of silence, a notice and the end for a subscriber that
//! fell too far behind.

use bytes::Bytes;
use std::pin::Pin;

use tokio::time::{Instant, Sleep};

use super::{heartbeat_frame, Mode, Session, State};
use crate::event::Event;
use crate::metrics::End;
use crate::sse::FrameBuilder;

impl Session {
    /// The live frame of an event in this stream's format.
    pub(super) fn frame_of(&mut self, event: &Event) -> Bytes {
        self.sent();
        match self.mode {
            Mode::Mercure => event.mercure_frame().clone(),
            _ => event.live_frame().clone(),
        }
    }

    pub(super) fn lagged(&mut self, lagged: crate::hub::Lagged) -> Bytes {
        tracing::debug!(%lagged, "disconnecting a slow subscriber");
        self.ending(End::Lagged);
        self.state = State::Done;
        self.subscription = None;
        FrameBuilder::new()
            .comment("lagged behind: reconnect with Last-Event-ID to resume from history")
            .finish()
    }

    /// The next live event, a heartbeat after `--heartbeat` of silence, or the drain's start.
    pub(super) async fn next_live(&mut self, mut timer: Pin<&mut Sleep>) -> Option<Bytes> {
        timer
            .as_mut()
            .reset(Instant::now() + self.settings.heartbeat);
        loop {
            if let Some(frame) = self.shutdown_seen() {
                return Some(frame);
            }
            let subscription = self.subscription.as_mut()?;
            match subscription.try_recv() {
                Ok(Some(event)) => return Some(self.frame_of(&event)),
                Ok(None) => {}
                Err(lagged) => return Some(self.lagged(lagged)),
            }
            tokio::select! {
                biased;
                () = subscription.changed() => {}
                () = timer.as_mut() => return Some(heartbeat_frame()),
            }
        }
    }
}
