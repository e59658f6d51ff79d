//! Validated single-line SSE field values.
//!
//! `event:` and `id:` end at the first line break, so a value holding CR or LF would let the
//! rest of it become new fields. These types are the only way to put a value in those fields.

use std::fmt;
use std::sync::Arc;

/// Longest accepted event type name.
pub const MAX_EVENT_NAME: usize = 64;

/// Why a field value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The event type is empty, too long, or has characters outside `[A-Za-z0-9_.:-]`.
    #[error("event type must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")]
    BadEventName,
    /// Empty, too long, or holding a control or format character.
    #[error("must be 1 to {MAX_LINE_TEXT} bytes without control or format characters")]
    BadText,
}

/// The event type of an event published without one (what `EventSource` calls `message`).
pub const DEFAULT_EVENT: &str = "message";

/// Longest [`LineText`] (Mercure ids, event types).
pub const MAX_LINE_TEXT: usize = 1024;

/// Whether `text` holds a character [`forbidden_char`] refuses. Printable ASCII (all of most
/// topics and ids) is answered a byte at a time, without decoding characters.
pub fn has_forbidden_char(text: &str) -> bool {
    let printable = text.bytes().all(|b| (0x20..0x7f).contains(&b));
    !printable && text.chars().any(forbidden_char)
}

/// Whether `c` may not appear in a topic, id or event type: C0 and C1 controls, DEL, and the
/// Unicode format characters (general category Cf), which the Mercure drafts exclude.
pub fn forbidden_char(c: char) -> bool {
    let code = u32::from(c);
    code < 0x20
        || (0x7f..=0x9f).contains(&code)
        || matches!(
            code,
            0xad | 0x600..=0x605
                | 0x61c
                | 0x6dd
                | 0x70f
                | 0x890..=0x891
                | 0x8e2
                | 0x180e
                | 0x200b..=0x200f
                | 0x202a..=0x202e
                | 0x2060..=0x2064
                | 0x2066..=0x206f
                | 0xfeff
                | 0xfff9..=0xfffb
                | 0x110bd
                | 0x110cd
                | 0x13430..=0x1343f
                | 0x1bca0..=0x1bca3
                | 0x1d173..=0x1d17a
                | 0xe0001
                | 0xe0020..=0xe007f
        )
}

/// A regular-expression character class (`[...]`) of the characters [`forbidden_char`] refuses,
/// spelt as the characters themselves (no escapes, which regular-expression dialects read
/// differently): for the API document's patterns.
pub fn forbidden_class() -> String {
    let mut class = String::from("[");
    let mut code = 0u32;
    while code <= 0x10ffff {
        let refused = |c: u32| char::from_u32(c).is_some_and(forbidden_char);
        if refused(code) {
            let start = code;
            while code < 0x10ffff && refused(code + 1) {
                code += 1;
            }
            class.extend(char::from_u32(start));
            if code > start {
                class.push('-');
                class.extend(char::from_u32(code));
            }
        }
        code += 1;
    }
    class.push(']');
    class
}

/// Single-line text from outside (a publisher-chosen id): no control or format character, so
/// it can never end its field or forge another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LineText(Arc<str>);

impl LineText {
    /// Validates text of 1 to `max` bytes.
    ///
    /// # Errors
    /// [`FieldError::BadText`].
    pub fn new(text: &str, max: usize) -> Result<Self, FieldError> {
        if text.is_empty() || text.len() > max || has_forbidden_char(text) {
            return Err(FieldError::BadText);
        }
        Ok(Self(text.into()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<EventId> for LineText {
    /// `urn:ssehub:` and two numbers: always single-line text.
    fn from(id: EventId) -> Self {
        Self(id.wire().into())
    }
}

/// An event type (`event:` field): 1 to 64 of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(Arc<str>);

impl EventName {
    /// Validates an event type name.
    ///
    /// # Errors
    /// [`FieldError::BadEventName`] when empty, longer than 64 bytes or with other characters.
    ///
    /// # Examples
    /// ```
    /// use ssehub::sse::EventName;
    /// assert!(EventName::new("message").is_ok());
    /// assert!(EventName::new("x\nid: 1").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, FieldError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_EVENT_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok {
            Ok(Self(name.into()))
        } else {
            Err(FieldError::BadEventName)
        }
    }

    /// A Mercure event type: 1 to 256 bytes with no control or format character (so no line
    /// break can end the field early).
    ///
    /// # Errors
    /// [`FieldError::BadText`] otherwise.
    pub fn any(name: &str) -> Result<Self, FieldError> {
        LineText::new(name, MAX_LINE_TEXT).map(|text| Self(text.0))
    }

    /// The default event type, `message`.
    pub fn message() -> Self {
        Self(DEFAULT_EVENT.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event id (`id:` field): `MS-SEQ`, two decimal numbers, the same shape as a Redis stream
/// id. Ids compare as `(ms, seq)` pairs; the hub issues them in increasing order (see the
/// README's "Event ids"). Being two numbers, an id can never hold a line break or NUL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// Milliseconds since the Unix epoch when it was issued (never decreasing).
    pub ms: u64,
    /// A counter that increases with every event of the hub.
    pub seq: u64,
}

impl EventId {
    /// The id `ms-seq`.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }
}

/// Hub-generated ids are IRIs (draft-07 requires one): `urn:ssehub:MS-SEQ`.
pub const ID_PREFIX: &str = "urn:ssehub:";

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ID_PREFIX}{}-{}", self.ms, self.seq)
    }
}

impl EventId {
    /// `urn:ssehub:MS-SEQ`, as `to_string` gives it without the formatting machinery (every
    /// publish makes one).
    pub fn wire(&self) -> String {
        let mut ms = itoa::Buffer::new();
        let mut seq = itoa::Buffer::new();
        let (ms, seq) = (ms.format(self.ms), seq.format(self.seq));
        let mut text = String::with_capacity(ID_PREFIX.len() + ms.len() + 1 + seq.len());
        text.push_str(ID_PREFIX);
        text.push_str(ms);
        text.push('-');
        text.push_str(seq);
        text
    }

    /// The bare `MS-SEQ` form (a Redis stream id).
    pub fn raw(&self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }
}

/// The text was not an `MS-SEQ` event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an event id is urn:ssehub: and two numbers joined by '-', like urn:ssehub:1732400000000-42"
)]
pub struct BadEventId;

impl std::str::FromStr for EventId {
    type Err = BadEventId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let text = text.strip_prefix(ID_PREFIX).unwrap_or(text);
        let (ms, seq) = text.split_once('-').ok_or(BadEventId)?;
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadEventId);
            }
            s.parse::<u64>().map_err(|_| BadEventId)
        };
        Ok(Self::new(number(ms)?, number(seq)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_shortcut_agrees_with_every_character() {
        let samples = (0u32..0x3000).filter_map(char::from_u32);
        for c in samples {
            for text in [c.to_string(), format!("topic/{c}"), format!("{c}-{c}")] {
                assert_eq!(
                    has_forbidden_char(&text),
                    text.chars().any(forbidden_char),
                    "{:?}",
                    u32::from(c)
                );
            }
        }
        assert!(!has_forbidden_char("https://example.com/books/1"));
        assert!(has_forbidden_char("a\u{200b}b"));
    }

    #[test]
    fn the_forbidden_class_names_exactly_the_forbidden_characters() {
        let refused = regex::Regex::new(&format!("^{}$", forbidden_class())).unwrap();
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let code = u32::from(c);
            assert_eq!(
                refused.is_match(&c.to_string()),
                forbidden_char(c),
                "U+{code:04X}"
            );
        }
    }

    #[test]
    fn event_ids_round_trip_and_order() {
        let id: EventId = "1700000000000-42".parse().unwrap();
        assert_eq!(id, EventId::new(1_700_000_000_000, 42));
        assert_eq!(id.to_string(), "urn:ssehub:1700000000000-42");
        assert_eq!(id.wire(), id.to_string());
        assert_eq!(
            EventId::new(0, u64::MAX).wire(),
            EventId::new(0, u64::MAX).to_string()
        );
        assert_eq!(id.raw(), "1700000000000-42");
        assert_eq!("urn:ssehub:1700000000000-42".parse::<EventId>(), Ok(id));
        assert!(LineText::new("id-[\"x\"]", 64).is_ok());
        for bad in ["", "a\nb", "a\u{200b}b", "a\u{85}b", "a\u{7f}"] {
            assert!(LineText::new(bad, 64).is_err(), "{bad:?}");
            assert!(EventName::any(bad).is_err(), "{bad:?}");
        }
        assert!(EventName::any("my type with spaces").is_ok());
        assert!(EventId::new(1, 9) < EventId::new(2, 1));
        assert!(EventId::new(1, 1) < EventId::new(1, 2));
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "+1-2",
            "1 -2",
            "99999999999999999999-1",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?}");
        }
    }
}
