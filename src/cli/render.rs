//! How `ssehub subscribe` reads and shows what a stream sends: the native envelope
//! (`{"timestamp", "data": {"message", "topic", ...}}`) or a Mercure update (the data as
//! published), told apart from the stream's own control events (`keepalive`, `close`, `gap`),
//! and printed as one readable line or one JSON object per event.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::sse::SseEvent;

/// What one dispatched event is.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// The native handshake (`keepalive`, status `connected`).
    Handshake,
    /// The native `close`: the response ends after it; `status` says why (`complete`,
    /// `shutdown`, `expired`, `lifetime`).
    Close {
        /// The `status` field.
        status: String,
    },
    /// The native `gap` notice: events after `requested` may have been missed.
    Gap {
        /// The cursor the stream was opened with.
        requested: String,
    },
    /// A published event.
    Event(Shown),
}

/// A published event, as printed.
#[derive(Debug, PartialEq)]
pub struct Shown {
    /// When it was published (native) or received (Mercure, whose updates carry no time).
    pub time: SystemTime,
    /// Its topic (native streams say it; Mercure updates do not).
    pub topic: Option<String>,
    /// Its id.
    pub id: Option<String>,
    /// Its type.
    pub event: String,
    /// Its text.
    pub message: String,
    /// Native live streams: replayed from history on resume.
    pub replayed: bool,
    /// Native bursts: which copy, of how many.
    pub sequence: Option<(u64, u64)>,
}

/// Reads one event of a native stream (`mercure == false`) or a Mercure one.
pub fn classify(event: &SseEvent, mercure: bool) -> Received {
    let id = event.id.clone().filter(|id| !id.is_empty());
    if mercure {
        return Received::Event(Shown {
            time: SystemTime::now(),
            topic: None,
            id,
            event: event.event.clone(),
            message: event.data.clone(),
            replayed: false,
            sequence: None,
        });
    }
    let json: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let inner = &json["data"];
    let text = |key: &str| inner[key].as_str().map(str::to_owned);
    // The stream's own events carry a status and no topic (a publisher may name its own
    // events `close` too: those carry their topic).
    if let (Some(status), None) = (text("status"), inner.get("topic")) {
        match event.event.as_str() {
            "keepalive" => return Received::Handshake,
            "close" => return Received::Close { status },
            "gap" => {
                return Received::Gap {
                    requested: text("requested").unwrap_or_default(),
                }
            }
            _ => {}
        }
    }
    let time = json["timestamp"]
        .as_f64()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .map_or_else(SystemTime::now, |since| UNIX_EPOCH + since);
    let sequence = match (inner["sequence"].as_u64(), inner["total"].as_u64()) {
        (Some(sequence), Some(total)) => Some((sequence, total)),
        _ => None,
    };
    Received::Event(Shown {
        time,
        topic: text("topic"),
        id,
        event: event.event.clone(),
        message: text("message").unwrap_or_else(|| event.data.clone()),
        replayed: inner["replayed"].as_bool().unwrap_or(false),
        sequence,
    })
}

impl Shown {
    /// Writes the event as one line: `TIME  TOPIC  ID  EVENT  MESSAGE` (line breaks in the
    /// message written as `\n`), or as one JSON object with `json`.
    ///
    /// # Errors
    /// Writing failed.
    pub fn write(&self, out: &mut impl Write, json: bool) -> std::io::Result<()> {
        let time = humantime::format_rfc3339_millis(self.time).to_string();
        if json {
            let mut object = json!({
                "time": time,
                "topic": self.topic,
                "id": self.id,
                "event": self.event,
                "message": self.message,
            });
            if self.replayed {
                object["replayed"] = json!(true);
            }
            if let Some((sequence, total)) = self.sequence {
                object["sequence"] = json!(sequence);
                object["total"] = json!(total);
            }
            return writeln!(out, "{object}");
        }
        let mut event = self.event.clone();
        if let Some((sequence, total)) = self.sequence {
            event.push_str(&format!(" {sequence}/{total}"));
        }
        if self.replayed {
            event.push_str(" (replayed)");
        }
        let message = self.message.replace('\r', "\\r").replace('\n', "\\n");
        writeln!(
            out,
            "{time}  {}  {}  {event}  {message}",
            self.topic.as_deref().unwrap_or("-"),
            self.id.as_deref().unwrap_or("-"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, id: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.into(),
            id: id.map(str::to_owned),
            retry: None,
        }
    }

    #[test]
    fn control_events_are_told_from_published_ones() {
        let close = r#"{"timestamp":1.5,"data":{"status":"lifetime","message":"reconnect"}}"#;
        assert_eq!(
            classify(&event("close", Some("urn:ssehub:1-1"), close), false),
            Received::Close {
                status: "lifetime".into()
            }
        );
        let hello = r#"{"timestamp":1.5,"data":{"status":"connected"}}"#;
        assert_eq!(
            classify(&event("keepalive", None, hello), false),
            Received::Handshake
        );
        // A publisher's own `close` event has a topic: it is shown, not obeyed.
        let own = r#"{"timestamp":1.5,"data":{"message":"bye","topic":"t"}}"#;
        assert!(matches!(
            classify(&event("close", Some("urn:ssehub:1-2"), own), false),
            Received::Event(_)
        ));
    }

    #[test]
    fn an_event_is_one_line_or_one_json_object() {
        let data = r#"{"timestamp":1795509003.22,"data":{"message":"two\nlines","topic":"news","sequence":2,"total":3,"remaining":1}}"#;
        let Received::Event(shown) =
            classify(&event("message", Some("urn:ssehub:9-1"), data), false)
        else {
            panic!("not an event");
        };
        let mut text = Vec::new();
        shown.write(&mut text, false).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "2026-11-24T08:30:03.220Z  news  urn:ssehub:9-1  message 2/3  two\\nlines\n"
        );
        let mut line = Vec::new();
        shown.write(&mut line, true).unwrap();
        let object: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(object["message"], "two\nlines");
        assert_eq!(object["topic"], "news");
        assert_eq!(object["sequence"], 2);
        let mercure = classify(&event("book", Some("b-1"), "{\"title\": 1}"), true);
        let Received::Event(shown) = mercure else {
            panic!("not an event");
        };
        assert_eq!(shown.topic, None);
        assert_eq!(shown.message, "{\"title\": 1}");
    }
}
