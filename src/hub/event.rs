//! A published event and its encodings.
//!
//! The live frame is encoded once when the event is created; the replay and burst encodings are
//! made the first time a stream needs them. Every subscriber then writes the same shared bytes.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;

use super::topic::TopicName;
use crate::sse::{EventId, EventName, FrameBuilder};

/// What a publisher hands in: validated, not yet numbered.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Topic to publish to.
    pub topic: TopicName,
    /// The `event:` type.
    pub name: EventName,
    /// The message text (any Unicode; JSON escaping keeps it on one `data:` line).
    pub message: String,
}

/// A numbered event, shared by history and every subscriber.
#[derive(Debug)]
pub struct Event {
    /// Unique, increasing in publish order across the whole hub (see the README's "Event ids").
    pub id: EventId,
    /// The topic it was published to.
    pub topic: TopicName,
    /// The `event:` type.
    pub name: EventName,
    /// The message text.
    pub message: String,
    /// Publish time, Unix seconds.
    pub timestamp: f64,
    live: Bytes,
    replay: OnceLock<Bytes>,
    burst: OnceLock<Box<[Bytes]>>,
}

impl Event {
    /// Numbers a draft and encodes its live frame.
    pub fn new(id: EventId, draft: Draft, timestamp: f64) -> Self {
        let live = encode(
            id,
            &draft.name,
            json!({"timestamp": timestamp, "data": {"message": draft.message, "topic": draft.topic.as_str()}}),
        );
        Self {
            id,
            topic: draft.topic,
            name: draft.name,
            message: draft.message,
            timestamp,
            live,
            replay: OnceLock::new(),
            burst: OnceLock::new(),
        }
    }

    /// The frame live streams write.
    pub fn live_frame(&self) -> &Bytes {
        &self.live
    }

    /// The frame for an event replayed from history: the live one with `"replayed": true`.
    pub fn replay_frame(&self) -> &Bytes {
        self.replay.get_or_init(|| {
            encode(
                self.id,
                &self.name,
                json!({"timestamp": self.timestamp, "data": {
                    "message": self.message, "topic": self.topic.as_str(), "replayed": true}}),
            )
        })
    }

    /// The frames of a burst: `total` repeats, each with its sequence number and the time it is
    /// due (publish time plus `interval` per earlier repeat). `total` and `interval` are fixed
    /// for a process, so the first caller's values are kept.
    pub fn burst_frames(&self, total: u32, interval: Duration) -> &[Bytes] {
        self.burst.get_or_init(|| {
            (1..=total)
                .map(|sequence| {
                    let due = self.timestamp + interval.as_secs_f64() * f64::from(sequence - 1);
                    encode(
                        self.id,
                        &self.name,
                        json!({"timestamp": due, "data": {
                            "message": self.message, "topic": self.topic.as_str(),
                            "sequence": sequence, "total": total, "remaining": total - sequence}}),
                    )
                })
                .collect()
        })
    }
}

fn encode(id: EventId, name: &EventName, data: serde_json::Value) -> Bytes {
    FrameBuilder::new()
        .event(name)
        .id(id)
        .data(&data.to_string())
        .finish()
}

/// Now, as Unix seconds with sub-second precision.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Parser;

    #[test]
    fn frames_carry_the_message_exactly() {
        let message = "line\nbreak \"quoted\" \r\nevent: close\n\n".to_owned();
        let event = Event::new(
            EventId::new(1, 9),
            Draft {
                topic: TopicName::default_topic(),
                name: EventName::message(),
                message: message.clone(),
            },
            1.5,
        );
        let frames = event.burst_frames(3, Duration::from_secs(1));
        for (i, frame) in frames
            .iter()
            .chain([event.live_frame(), event.replay_frame()])
            .enumerate()
        {
            let parsed = Parser::new().feed(frame);
            assert_eq!(parsed.len(), 1);
            assert_eq!(parsed[0].event, "message");
            assert_eq!(parsed[0].id.as_deref(), Some("1-9"));
            let data: serde_json::Value = serde_json::from_str(&parsed[0].data).unwrap();
            assert_eq!(data["data"]["message"], message.as_str(), "frame {i}");
        }
        let second: serde_json::Value =
            serde_json::from_str(&Parser::new().feed(&frames[1])[0].data).unwrap();
        assert_eq!(second["data"]["sequence"], 2);
        assert_eq!(second["data"]["remaining"], 1);
        assert_eq!(second["timestamp"], 2.5);
    }
}
