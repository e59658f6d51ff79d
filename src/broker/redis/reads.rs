//! Reading history back from Redis: the newest id issued, one topic's streams between two ids
//! (its own partition's and partition 0's), and which topics a set of patterns names there
//! (alternate topics included).

use std::sync::Arc;

use redis::Value;

use super::codec::{decode_entries, text};
use super::RedisBroker;
use crate::broker::BrokerError;
use crate::event::Event;
use crate::sse::EventId;
use crate::topic::{Pattern, TopicName};

impl RedisBroker {
    /// The newest id partition `p` has issued (`0-p` before its first publish): every id it
    /// issues later is greater.
    pub(super) async fn last_issued(&self, p: usize) -> Result<EventId, BrokerError> {
        let mut con = self.reader(p);
        let (ms, n): (Option<u64>, Option<u64>) = self
            .timed(
                redis::cmd("HMGET")
                    .arg(self.key(p, "meta"))
                    .arg("ms")
                    .arg("seq")
                    .query_async(&mut con),
            )
            .await?;
        let count = self.layout.count() as u64;
        Ok(EventId::new(
            ms.unwrap_or(0),
            n.unwrap_or(0) * count + p as u64,
        ))
    }

    /// The newest id any partition has issued.
    pub(super) async fn newest_issued(&self) -> Result<EventId, BrokerError> {
        let mut newest = EventId::default();
        for p in 0..self.layout.count() {
            newest = newest.max(self.last_issued(p).await?);
        }
        Ok(newest)
    }

    /// Whether `id` was issued by the partition its sequence number names.
    pub(super) async fn issued(&self, id: EventId) -> Result<bool, BrokerError> {
        let p = (id.seq % self.layout.count() as u64) as usize;
        Ok(id <= self.last_issued(p).await?)
    }

    /// Reads one topic's history after `after` (and up to `until`, if given), from every
    /// partition that may hold it: the newest id no longer in history (a cursor before it
    /// missed events) and the events, in id order.
    pub(super) async fn read_topic(
        &self,
        topic: &TopicName,
        after: EventId,
        until: Option<EventId>,
        count: usize,
        newest: bool,
    ) -> Result<(Option<EventId>, Vec<Arc<Event>>), BrokerError> {
        let mut gone = None;
        let mut events = Vec::new();
        for p in self.layout.holding(topic) {
            let (deleted, mut found) = self.read_in(p, topic, after, until, count, newest).await?;
            gone = gone.max(deleted);
            events.append(&mut found);
        }
        events.sort_unstable_by_key(|e| e.id);
        if events.len() > count {
            if newest {
                events.drain(..events.len() - count);
            } else {
                events.truncate(count);
            }
        }
        Ok((gone, events))
    }

    /// [`Self::read_topic`] in partition `p` only.
    pub(super) async fn read_in(
        &self,
        p: usize,
        topic: &TopicName,
        after: EventId,
        until: Option<EventId>,
        count: usize,
        newest: bool,
    ) -> Result<(Option<EventId>, Vec<Arc<Event>>), BrokerError> {
        let mut con = self.reader(p);
        let start = format!("({}", after.raw());
        let end = until.map_or_else(|| "+".to_owned(), |id| id.raw());
        let value: Value = self
            .timed(
                self.read
                    .key(self.stream_key(p, topic.as_str()))
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

    /// Every topic with a stream in partition `p`.
    pub(super) async fn known_topics_in(&self, p: usize) -> Result<Vec<TopicName>, BrokerError> {
        self.topic_set(p, "topics").await
    }

    /// Every topic with a stream in Redis.
    async fn known_topics(&self) -> Result<Vec<TopicName>, BrokerError> {
        let mut names = Vec::new();
        for p in 0..self.layout.count() {
            for name in self.known_topics_in(p).await? {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    /// The topic names held in partition `p`'s sorted set `set`.
    async fn topic_set(&self, p: usize, set: &str) -> Result<Vec<TopicName>, BrokerError> {
        let mut con = self.reader(p);
        let names: Vec<String> = self
            .timed(
                redis::cmd("ZRANGE")
                    .arg(self.key(p, set))
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
        for p in 0..self.layout.count() {
            let mut con = self.reader(p);
            for alternate in self.topic_set(p, "alternates").await? {
                if !patterns.iter().any(|pattern| pattern.matches(&alternate)) {
                    continue;
                }
                let canonical: Vec<String> = self
                    .timed(
                        redis::cmd("SMEMBERS")
                            .arg(self.key(p, &format!("alt:{alternate}")))
                            .query_async(&mut con),
                    )
                    .await?;
                for name in canonical.iter().filter_map(|c| TopicName::any(c).ok()) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        Ok(names)
    }

    /// What a node must follow for `patterns`, per partition: the channel of each exact topic
    /// in every partition that may hold it (its own, and 0 for events with alternates), or,
    /// for any other pattern, every partition whole (`None`).
    pub(super) fn wants_for(&self, patterns: &[Pattern]) -> Vec<(usize, Option<String>)> {
        if patterns.iter().any(|p| !matches!(p, Pattern::Exact(_))) {
            return (0..self.layout.count()).map(|p| (p, None)).collect();
        }
        let mut out = Vec::new();
        for pattern in patterns {
            if let Pattern::Exact(topic) = pattern {
                for p in self.layout.holding(topic) {
                    out.push((p, Some(topic.as_str().to_owned())));
                }
            }
        }
        out
    }

    /// The newest `ms` of a removed topic's last event, over every partition: a resume from
    /// before it may have missed events.
    pub(super) async fn forgotten_ms(&self) -> Result<Option<u64>, BrokerError> {
        let mut forgotten: Option<u64> = None;
        for p in 0..self.layout.count() {
            let mut con = self.reader(p);
            let ms: Option<u64> = self
                .timed(
                    redis::cmd("HGET")
                        .arg(self.key(p, "meta"))
                        .arg("forgotten")
                        .query_async(&mut con),
                )
                .await?;
            forgotten = forgotten.max(ms);
        }
        Ok(forgotten)
    }
}
