//! A published event and its encodings.
//!
//! The live frame is encoded once when the event is created and the burst frames the first time
//! a burst stream needs them; every subscriber then writes the same shared bytes. The replay
//! frame is built for each resume and not kept, so a resume costs memory only while it is sent.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use crate::json;
use crate::sse::{EventId, EventName, FrameBuilder, LineText};
use crate::topic::TopicName;

/// Fixed bytes per held event beyond its text and frame: the struct, its `Arc`, the topic
/// handle and the history slot.
pub const EVENT_OVERHEAD: usize = 256;

/// What a publisher hands in: validated, not yet numbered.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Topic to publish to.
    pub topic: TopicName,
    /// The `event:` type.
    pub name: EventName,
    /// The message text (any Unicode; JSON escaping keeps it on one `data:` line).
    pub message: String,
    /// Only subscribers whose token grants `subscribe` on the topic receive it.
    pub private: bool,
    /// Alternate topics (Mercure): subscribers of any of them receive the event, once.
    pub alternates: Vec<TopicName>,
    /// The publisher's own id (Mercure `id`), used as the SSE id instead of the hub's.
    pub custom_id: Option<LineText>,
    /// The SSE `retry` to send with it (Mercure `retry`), milliseconds.
    pub retry: Option<u64>,
}

impl Draft {
    /// A public event of one topic, with the hub's id: what the native API publishes.
    pub fn new(topic: TopicName, name: EventName, message: String) -> Self {
        Self {
            topic,
            name,
            message,
            private: false,
            alternates: Vec::new(),
            custom_id: None,
            retry: None,
        }
    }
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
    /// Only subscribers whose token grants `subscribe` on the topic receive it.
    pub private: bool,
    /// Alternate topics.
    pub alternates: Vec<TopicName>,
    /// The publisher's own id, if it gave one.
    pub custom_id: Option<LineText>,
    /// The SSE `retry` to send with it.
    pub retry: Option<u64>,
    /// The id on the wire, on both APIs: the publisher's, else `urn:ssehub:MS-SEQ`.
    wire_id: LineText,
    live: Bytes,
    burst: OnceLock<Box<[Bytes]>>,
    mercure: OnceLock<Bytes>,
}

impl Event {
    /// Numbers a draft and encodes its live frame.
    pub fn new(id: EventId, draft: Draft, timestamp: f64) -> Self {
        let wire_id = draft.custom_id.clone().unwrap_or_else(|| generated(id));
        let (message, topic) = (draft.message.as_str(), draft.topic.as_str());
        let live = FrameBuilder::with_capacity(
            112 + message.len() + topic.len() + draft.name.as_str().len() + wire_id.as_str().len(),
        )
        .event(&draft.name)
        .id_text(&wire_id)
        .json_data(|out| live_json(out, timestamp, message, topic))
        .finish();
        Self {
            id,
            topic: draft.topic,
            name: draft.name,
            message: draft.message,
            timestamp,
            private: draft.private,
            alternates: draft.alternates,
            custom_id: draft.custom_id,
            retry: draft.retry,
            wire_id,
            live,
            burst: OnceLock::new(),
            mercure: OnceLock::new(),
        }
    }

    /// The id clients see (and resume with).
    pub fn wire_id(&self) -> &str {
        self.wire_id.as_str()
    }

    /// The canonical topic, then the alternates.
    pub fn topics(&self) -> impl Iterator<Item = &TopicName> {
        std::iter::once(&self.topic).chain(&self.alternates)
    }

    /// The Mercure frame: `id`, `event` (unless `message`), `retry` if published, and the
    /// message as one `data:` line per line, as the Mercure drafts serialize an update.
    pub fn mercure_frame(&self) -> &Bytes {
        self.mercure.get_or_init(|| {
            let mut frame = FrameBuilder::new().id_text(&self.wire_id);
            if self.name.as_str() != "message" {
                frame = frame.event(&self.name);
            }
            if let Some(retry) = self.retry {
                frame = frame.retry(retry);
            }
            frame.data(&self.message).finish()
        })
    }

    /// What holding this event in history costs, in bytes: its text, its live frame and a
    /// fixed allowance for the rest. (Burst frames, built when a burst stream first takes the
    /// event, add at most `repeats + 1` live frames more; the README's memory formula counts
    /// them.)
    pub fn weight(&self) -> usize {
        EVENT_OVERHEAD
            + self.message.len()
            + self.live.len()
            + self
                .alternates
                .iter()
                .map(|t| t.as_str().len() + 16)
                .sum::<usize>()
    }

    /// The frame live streams write.
    pub fn live_frame(&self) -> &Bytes {
        &self.live
    }

    /// The frame for an event replayed from history: the live one with `"replayed": true`.
    pub fn replay_frame(&self) -> Bytes {
        let data = Live {
            message: &self.message,
            topic: self.topic.as_str(),
            replayed: true,
        };
        encode(
            Some(&self.wire_id),
            &self.name,
            &Envelope {
                timestamp: self.timestamp,
                data,
            },
        )
    }

    /// The frames of a burst: `total` repeats, each with its sequence number and the time it is
    /// due (publish time plus `interval` per earlier repeat), then the `close` frame that ends
    /// the burst. Every stream bursting this event writes these same bytes. `total` and
    /// `interval` are fixed for a process, so the first caller's values are kept.
    pub fn burst_frames(&self, total: u32, interval: Duration) -> &[Bytes] {
        self.burst.get_or_init(|| {
            let due =
                |sequence: u32| self.timestamp + interval.as_secs_f64() * f64::from(sequence - 1);
            let mut frames: Vec<Bytes> = (1..=total)
                .map(|sequence| {
                    let data = Burst {
                        message: &self.message,
                        topic: self.topic.as_str(),
                        sequence,
                        total,
                        remaining: total - sequence,
                    };
                    encode(
                        Some(&self.wire_id),
                        &self.name,
                        &Envelope {
                            timestamp: due(sequence),
                            data,
                        },
                    )
                })
                .collect();
            frames.push(control_frame(
                control::CLOSE,
                due(total),
                control::COMPLETE,
                "stream complete",
            ));
            frames.into_boxed_slice()
        })
    }
}

/// The event types and `close` statuses that native streams send of their own, beside the
/// publishers' events: the session writes them and the AsyncAPI document lists them from here.
pub mod control {
    /// The handshake every native stream opens with: `{"status": "connected"}`.
    pub const KEEPALIVE: &str = "keepalive";
    /// The events after the requested id are no longer all in history.
    pub const GAP: &str = "gap";
    /// The last event of a stream; its `status` says why.
    pub const CLOSE: &str = "close";
    /// `close` status: a burst sent all its copies.
    pub const COMPLETE: &str = "complete";
    /// `close` status: the server is shutting down.
    pub const SHUTDOWN: &str = "shutdown";
    /// `close` status: the stream's token expired.
    pub const EXPIRED: &str = "expired";
    /// `close` status: the stream reached `--max-stream-lifetime`.
    pub const LIFETIME: &str = "lifetime";
    /// `close` status: the stream fell behind (it resumes with `Last-Event-ID`).
    pub const LAGGED: &str = "lagged";
    /// Every `close` status.
    pub const CLOSE_STATUSES: [&str; 5] = [COMPLETE, SHUTDOWN, EXPIRED, LIFETIME, LAGGED];
}

#[derive(Serialize)]
struct Envelope<D> {
    timestamp: f64,
    data: D,
}

/// The `data` of a live event (the AsyncAPI document's `LiveData`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Live<'a> {
    /// The message text.
    message: &'a str,
    /// Its topic.
    topic: &'a str,
    /// Present (and `true`) on an event replayed from history on resume.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    replayed: bool,
}

/// The `data` of one copy of a burst (the AsyncAPI document's `BurstData`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Burst<'a> {
    /// The message text.
    message: &'a str,
    /// Its topic.
    topic: &'a str,
    /// This copy's number, from 1.
    sequence: u32,
    /// Copies in the burst (`--repeats`).
    total: u32,
    /// Copies still to come.
    remaining: u32,
}

/// The `data` of a `close` event (the AsyncAPI document's `CloseData`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Status<'a> {
    /// Why the stream ends (see [`control::CLOSE_STATUSES`]).
    status: &'a str,
    /// The same, for a person.
    message: &'a str,
}

/// A frame of the stream's own (`close`, `keepalive`, ...): no id, data
/// `{"timestamp": ..., "data": {"status": ..., "message": ...}}`.
pub fn control_frame(event: &str, timestamp: f64, status: &str, message: &str) -> Bytes {
    let name = EventName::new(event).unwrap_or_else(|_| EventName::message());
    encode(
        None,
        &name,
        &Envelope {
            timestamp,
            data: Status { status, message },
        },
    )
}

fn encode(id: Option<&LineText>, name: &EventName, data: &impl Serialize) -> Bytes {
    // Serialising these plain structs cannot fail.
    let json = serde_json::to_string(data).unwrap_or_default();
    let frame = FrameBuilder::new().event(name);
    let frame = match id {
        Some(id) => frame.id_text(id),
        None => frame,
    };
    frame.data(&json).finish()
}

/// The live frame's JSON, `{"timestamp":T,"data":{"message":M,"topic":P}}`: the bytes
/// serialising `Envelope<Live>` gives (tested), written by hand because every publish makes one
/// (`crate::json` says why).
fn live_json(out: &mut impl bytes::BufMut, timestamp: f64, message: &str, topic: &str) {
    json::raw(out, r#"{"timestamp":"#);
    json::number(out, timestamp);
    json::raw(out, r#","data":{"message":"#);
    json::string(out, message);
    json::raw(out, r#","topic":"#);
    json::string(out, topic);
    json::raw(out, "}}");
}

/// The hub's id for an event as wire text.
fn generated(id: EventId) -> LineText {
    LineText::from(id)
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
    fn the_live_json_is_what_serde_writes() {
        for (message, topic) in [("hi", "default"), ("a \"q\" \\ \n\u{1}é", "a/b")] {
            let serde = serde_json::to_string(&Envelope {
                timestamp: 1_796_113_538.024,
                data: Live {
                    message,
                    topic,
                    replayed: false,
                },
            })
            .unwrap();
            let mut ours = Vec::new();
            live_json(&mut ours, 1_796_113_538.024, message, topic);
            assert_eq!(String::from_utf8(ours).unwrap(), serde);
        }
    }

    #[test]
    fn frames_carry_the_message_exactly() {
        let message = "line\nbreak \"quoted\" \r\nevent: close\n\n".to_owned();
        let event = Event::new(
            EventId::new(1, 9),
            Draft {
                topic: TopicName::default_topic(),
                name: EventName::message(),
                message: message.clone(),
                private: false,
                alternates: Vec::new(),
                custom_id: None,
                retry: None,
            },
            1.5,
        );
        let frames = event.burst_frames(3, Duration::from_secs(1));
        for (i, frame) in frames[..3]
            .iter()
            .chain([event.live_frame(), &event.replay_frame()])
            .enumerate()
        {
            let parsed = Parser::new().feed(frame);
            assert_eq!(parsed.len(), 1);
            assert_eq!(parsed[0].event, "message");
            assert_eq!(parsed[0].id.as_deref(), Some("urn:ssehub:1-9"));
            let data: serde_json::Value = serde_json::from_str(&parsed[0].data).unwrap();
            assert_eq!(data["data"]["message"], message.as_str(), "frame {i}");
        }
        let second: serde_json::Value =
            serde_json::from_str(&Parser::new().feed(&frames[1])[0].data).unwrap();
        assert_eq!(second["data"]["sequence"], 2);
        assert_eq!(second["data"]["remaining"], 1);
        assert_eq!(second["timestamp"], 2.5);
        let close = Parser::new().feed(&frames[3]);
        assert_eq!(close[0].event, "close");
        assert_eq!(close[0].id, None);
    }
}
