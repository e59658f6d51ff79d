//! Events to and from Redis: stream entries (`e` event type, `m` message, `p` private flag) and
//! channel messages (`id \n topic \n event \n flags \n message`, flags `p` for private).

use std::sync::Arc;

use redis::Value;

use crate::event::{Draft, Event};
use crate::sse::fields::MAX_LINE_TEXT;
use crate::sse::{EventId, EventName, LineText};
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
            let (mut alternates, mut custom_id, mut retry) = (String::new(), String::new(), None);
            for pair in fields.chunks(2) {
                match (
                    pair.first().and_then(text).as_deref(),
                    pair.get(1).and_then(text),
                ) {
                    (Some("e"), Some(value)) => name = EventName::any(&value).ok(),
                    (Some("m"), Some(value)) => message = Some(value),
                    (Some("p"), Some(value)) => private = value == "1",
                    (Some("a"), Some(value)) => alternates = value,
                    (Some("i"), Some(value)) => custom_id = value,
                    (Some("r"), Some(value)) => retry = value.parse().ok(),
                    _ => {}
                }
            }
            let draft = Draft {
                topic: topic.clone(),
                name: name.unwrap_or_else(EventName::message),
                message: message?,
                private,
                alternates: split_topics(&alternates),
                custom_id: LineText::new(&custom_id, MAX_LINE_TEXT).ok(),
                retry,
            };
            Some(Arc::new(Event::new(id, draft, id.ms as f64 / 1000.0)))
        })
        .collect()
}

/// Tab-separated topics (topics hold no control characters, so no tab).
fn split_topics(text: &str) -> Vec<TopicName> {
    text.split('\t')
        .filter(|t| !t.is_empty())
        .filter_map(|t| TopicName::any(t).ok())
        .collect()
}

/// A channel message: `id \n topics \n event \n flags \n custom-id \n retry \n message`
/// (topics tab-separated, the canonical first; only the message may hold newlines).
pub(super) fn decode_message(payload: &[u8]) -> Option<Event> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(7, '\n');
    let id: EventId = parts.next()?.parse().ok()?;
    let mut topics = split_topics(parts.next()?).into_iter();
    let topic = topics.next()?;
    let alternates = topics.collect();
    let name = EventName::any(parts.next()?).ok()?;
    let private = parts.next()? == "p";
    let custom_id = LineText::new(parts.next()?, MAX_LINE_TEXT).ok();
    let retry = parts.next()?.parse().ok();
    let message = parts.next()?.to_owned();
    let timestamp = id.ms as f64 / 1000.0;
    Some(Event::new(
        id,
        Draft {
            topic,
            name,
            message,
            private,
            alternates,
            custom_id,
            retry,
        },
        timestamp,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_channel_messages() {
        let event = decode_message(b"17-3\nchat/a\nmessage\n\n\n\nline\nbreak").unwrap();
        assert_eq!(event.id, EventId::new(17, 3));
        assert_eq!(event.topic.as_str(), "chat/a");
        assert_eq!(event.message, "line\nbreak");
        assert!(!event.private);
        let mercure =
            decode_message(b"17-4\nhttps://x/a\thttps://x/b\nmy type\np\nid-1\n500\nx").unwrap();
        assert!(mercure.private);
        assert_eq!(mercure.alternates[0].as_str(), "https://x/b");
        assert_eq!(mercure.wire_id(), "id-1");
        assert_eq!(mercure.retry, Some(500));
        assert!(decode_message(b"17-3\n\nmessage\n\n\n\nx").is_none());
        assert!(decode_message(b"nope").is_none());
    }
}
