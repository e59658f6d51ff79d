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
