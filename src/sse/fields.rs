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

    /// The default event type, `message`.
    pub fn message() -> Self {
        Self("message".into())
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

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The text was not an `MS-SEQ` event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id is two numbers joined by '-', like 1732400000000-42")]
pub struct BadEventId;

impl std::str::FromStr for EventId {
    type Err = BadEventId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = text.trim().split_once('-').ok_or(BadEventId)?;
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
    fn event_ids_round_trip_and_order() {
        let id: EventId = "1700000000000-42".parse().unwrap();
        assert_eq!(id, EventId::new(1_700_000_000_000, 42));
        assert_eq!(id.to_string(), "1700000000000-42");
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
