//! Topic names and subscription patterns, validated once at the edge.
//!
//! A topic is 1 to 128 bytes of segments of `[A-Za-z0-9_.:-]` joined by `/` (no empty segment).
//! A pattern is a topic, `prefix/*` (every topic under `prefix/`, at any depth) or `*` (all).

pub mod budget;
pub mod compiled;
pub mod literal;
pub mod selector;
pub mod template;

use std::fmt;
use std::sync::Arc;

pub use selector::{Selector, SelectorError};

/// Longest Mercure topic accepted.
pub const MAX_MERCURE_TOPIC_LEN: usize = 2048;

/// Longest accepted topic name.
pub const MAX_TOPIC_LEN: usize = 128;
/// The topic used when a request names none: the seed's single channel.
pub const DEFAULT_TOPIC: &str = "default";

/// Why a topic or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not a valid topic name (publishing names one topic).
    #[error("invalid topic {0:?}: use 1 to 128 characters of A-Z a-z 0-9 _ . : - in segments separated by '/' (the Mercure endpoint takes any text without control characters)")]
    Name(String),
    /// Not a valid subscription pattern.
    #[error("invalid topic {0:?}: use a topic (1 to 128 characters of A-Z a-z 0-9 _ . : - in segments separated by '/'), 'prefix/*' for every topic under a prefix, or '*'")]
    Pattern(String),
}

/// A validated topic name. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    /// Validates a topic name.
    ///
    /// # Errors
    /// [`TopicError`] when the name is empty, too long, or has a bad character or empty segment.
    ///
    /// # Examples
    /// ```
    /// use ssehub::hub::TopicName;
    /// assert!(TopicName::new("chat/room-1").is_ok());
    /// assert!(TopicName::new("chat//x").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, TopicError> {
        if valid_segments(name) {
            Ok(Self(name.into()))
        } else {
            Err(TopicError::Name(truncate(name)))
        }
    }

    /// A Mercure topic: any UTF-8 text (an IRI, usually) of 1 to 2,048 bytes without control or
    /// format characters. The native API's topics are a subset.
    ///
    /// # Errors
    /// [`TopicError::Name`] otherwise.
    pub fn any(name: &str) -> Result<Self, TopicError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_MERCURE_TOPIC_LEN
            && !crate::sse::has_forbidden_char(name);
        if ok {
            Ok(Self(name.into()))
        } else {
            Err(TopicError::Name(truncate(name)))
        }
    }

    /// The seed's single channel, `default`.
    pub fn default_topic() -> Self {
        Self(DEFAULT_TOPIC.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Every prefix key under which a wildcard subscription could match this topic: `""` (for
    /// `*`), then `a/`, `a/b/`, ... for `a/b/c`.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        let name = self.as_str();
        std::iter::once("").chain(name.match_indices('/').map(move |(at, _)| &name[..=at]))
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a stream subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// One topic.
    Exact(TopicName),
    /// Every topic whose name starts with this prefix (`""` for all, else ending in `/`).
    Prefix(Arc<str>),
    /// A URI template or URL pattern (Mercure subscriptions), evaluated per topic.
    Matcher(Selector),
}

impl Pattern {
    /// Parses `topic`, `prefix/*` or `*`.
    ///
    /// # Errors
    /// [`TopicError`] when the topic part is invalid.
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        if text == "*" {
            return Ok(Self::Prefix("".into()));
        }
        if let Some(prefix) = text.strip_suffix("/*") {
            if valid_segments(prefix) {
                return Ok(Self::Prefix(format!("{prefix}/").into()));
            }
            return Err(TopicError::Pattern(truncate(text)));
        }
        TopicName::new(text)
            .map(Self::Exact)
            .map_err(|_| TopicError::Pattern(truncate(text)))
    }

    /// Whether a topic matches this pattern.
    pub fn matches(&self, topic: &TopicName) -> bool {
        match self {
            Self::Exact(name) => name == topic,
            Self::Prefix(prefix) => topic.as_str().starts_with(&**prefix),
            Self::Matcher(selector) => selector.matches(topic.as_str()),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name.as_str()),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Matcher(selector) => f.write_str(selector.source()),
        }
    }
}

fn valid_segments(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_LEN
        && name.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        })
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_TOPIC_LEN + 8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        for good in ["default", "a", "chat/room-1", "x.y:z_w", &"a".repeat(128)] {
            assert!(TopicName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a b",
            "a\nb",
            "é",
            "*",
            &"a".repeat(129),
        ] {
            assert!(TopicName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns_match_prefixes() {
        let pattern = Pattern::parse("chat/*").unwrap();
        let t = |n| TopicName::new(n).unwrap();
        assert!(pattern.matches(&t("chat/a")));
        assert!(pattern.matches(&t("chat/a/b")));
        assert!(!pattern.matches(&t("chat")));
        assert!(!pattern.matches(&t("chatter/a")));
        assert!(Pattern::parse("*").unwrap().matches(&t("x")));
        assert!(Pattern::parse("a/*/b").is_err());
        assert!(Pattern::parse("/*").is_err());
        let topic = t("a/b/c");
        let prefixes: Vec<&str> = topic.prefixes().collect();
        assert_eq!(prefixes, ["", "a/", "a/b/"]);
    }
}
