//! Reading history back from Redis: the newest id issued, one topic's stream between two ids,
//! and which topics a set of patterns names there (alternate topics included).

use std::sync::Arc;

use redis::Value;

use super::codec::{decode_entries, text};
use super::RedisBroker;
use crate::broker::BrokerError;
use crate::event::Event;
use crate::sse::EventId;
use crate::topic::{Pattern, TopicName};

impl RedisBroker {
    /// The newest id Redis has issued (`0-0` before the first publish).
    pub(super) async fn last_issued(&self) -> Result<EventId, BrokerError> {
        let mut con = self.reader();
        let (ms, seq): (Option<u64>, Option<u64>) = self
            .timed(
                redis::cmd("HMGET")
                    .arg(self.key("meta"))
                    .arg("ms")
                    .arg("seq")
                    .query_async(&mut con),
            )
            .await?;
        Ok(EventId::new(ms.unwrap_or(0), seq.unwrap_or(0)))
    }

    /// Reads one topic's history after `after` (and up to `until`, if given): the newest id
    /// no longer in history (a cursor before it missed events) and the events.
    pub(super) async fn read_topic(
        &self,
        topic: &TopicName,
        after: EventId,
        until: Option<EventId>,
        count: usize,
        newest: bool,
    ) -> Result<(Option<EventId>, Vec<Arc<Event>>), BrokerError> {
        let mut con = self.reader();
        let start = format!("({}", after.raw());
        let end = until.map_or_else(|| "+".to_owned(), |id| id.raw());
        let value: Value = self
            .timed(
                self.read
                    .key(self.stream_key(topic.as_str()))
                    .arg(&start)
                    .arg(&end)
                    .arg(count.max(1))
                    .arg(if newest { "rev" } else { "fwd" })
                    .arg(self.settings.history)
                    .arg(self.settings.max_age.as_millis() as u64)
                    .invoke_async(&mut con),
            )
            .await?;
        let Value::Array(mut parts) = value else {
            return Err(BrokerError::Unavailable(
                "unexpected reply to a history read".into(),
            ));
        };
        let entries = parts.pop().unwrap_or(Value::Nil);
        let deleted = parts
            .pop()
            .and_then(|v| text(&v))
            .and_then(|t| t.parse().ok());
        let mut events = decode_entries(topic, entries);
        if newest {
            events.reverse();
        }
        Ok((deleted, events))
    }

    /// Every topic with a stream in Redis.
    pub(super) async fn known_topics(&self) -> Result<Vec<TopicName>, BrokerError> {
        self.topic_set("topics").await
    }

    /// The topic names held in the sorted set `set` (under the key prefix).
    async fn topic_set(&self, set: &str) -> Result<Vec<TopicName>, BrokerError> {
        let mut con = self.reader();
        let names: Vec<String> = self
            .timed(
                redis::cmd("ZRANGE")
                    .arg(self.key(set))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut con),
            )
            .await?;
        Ok(names
            .iter()
            .filter_map(|n| TopicName::any(n).ok())
            .collect())
    }

    /// Topics matching the patterns that Redis knows.
    pub(super) async fn matching_topics(
        &self,
        patterns: &[Pattern],
    ) -> Result<Vec<TopicName>, BrokerError> {
        let mut names: Vec<TopicName> = patterns
            .iter()
            .filter_map(|p| match p {
                Pattern::Exact(name) => Some(name.clone()),
                Pattern::Prefix(_) | Pattern::Matcher(_) => None,
            })
            .collect();
        if patterns.iter().any(|p| !matches!(p, Pattern::Exact(_))) {
            for name in self.known_topics().await? {
                if patterns.iter().any(|p| p.matches(&name)) && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        // Topics whose events have an alternate topic that matches: read them too (replay
        // then keeps only the events that match by one of their topics).
        let mut con = self.reader();
        for alternate in self.topic_set("alternates").await? {
            if !patterns.iter().any(|p| p.matches(&alternate)) {
                continue;
            }
            let canonical: Vec<String> = self
                .timed(
                    redis::cmd("SMEMBERS")
                        .arg(self.key(&format!("alt:{alternate}")))
                        .query_async(&mut con),
                )
                .await?;
            for name in canonical.iter().filter_map(|c| TopicName::any(c).ok()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }
}
