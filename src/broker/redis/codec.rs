//! Events to and from Redis: stream entries (`e` event type, `m` message, `p` private flag) and
//! channel messages (`id \n topic \n event \n flags \n message`, flags `p` for private).

use std::sync::Arc;

use redis::Value;

use crate::event::{Draft, Event};
use crate::sse::{EventId, EventName};
use crate::topic::TopicName;

pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Stream entries (`[[id, [field, value, ...]], ...]`) as events of `topic`.
pub(super) fn decode_entries(topic: &TopicName, entries: Value) -> Vec<Arc<Event>> {
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut parts) = entry else {
                return None;
            };
            let fields = parts.pop()?;
            let id: EventId = text(parts.first()?)?.parse().ok()?;
            let Value::Array(fields) = fields else {
                return None;
            };
            let (mut name, mut message, mut private) = (None, None, false);
            for pair in fields.chunks(2) {
                match (
                    pair.first().and_then(text).as_deref(),
                    pair.get(1).and_then(text),
                ) {
                    (Some("e"), Some(value)) => name = EventName::new(&value).ok(),
                    (Some("m"), Some(value)) => message = Some(value),
                    (Some("p"), Some(value)) => private = value == "1",
                    _ => {}
                }
            }
            let draft = Draft {
                topic: topic.clone(),
                name: name.unwrap_or_else(EventName::message),
                message: message?,
                private,
            };
            Some(Arc::new(Event::new(id, draft, id.ms as f64 / 1000.0)))
        })
        .collect()
}

/// A channel message: `id \n topic \n event \n flags \n message` (the message may hold
/// newlines).
pub(super) fn decode_message(payload: &[u8]) -> Option<Event> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(5, '\n');
    let id: EventId = parts.next()?.parse().ok()?;
    let topic = TopicName::new(parts.next()?).ok()?;
    let name = EventName::new(parts.next()?).ok()?;
    let private = parts.next()? == "p";
    let message = parts.next()?.to_owned();
    let timestamp = id.ms as f64 / 1000.0;
    Some(Event::new(
        id,
        Draft {
            topic,
            name,
            message,
            private,
        },
        timestamp,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_channel_messages() {
        let event = decode_message(b"17-3\nchat/a\nmessage\n\nline\nbreak").unwrap();
        assert_eq!(event.id, EventId::new(17, 3));
        assert_eq!(event.topic.as_str(), "chat/a");
        assert_eq!(event.message, "line\nbreak");
        assert!(!event.private);
        assert!(
            decode_message(b"17-3\nchat/a\nmessage\np\nx")
                .unwrap()
                .private
        );
        assert!(decode_message(b"17-3\nbad topic\nmessage\n\nx").is_none());
        assert!(decode_message(b"nope").is_none());
    }
}
