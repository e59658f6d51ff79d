//! The topic listing (`GET /api/topics`) read from Redis: per topic, how much history it
//! holds and its newest ids, over every partition.

use redis::Value;

use super::codec::decode_entries;
use super::RedisBroker;
use crate::broker::{BrokerError, TopicStats};

/// Newest events of each topic a listing reads to tell public from private.
const LISTING_WINDOW: usize = 100;

impl RedisBroker {
    /// Every topic with history, once, whatever partitions hold it.
    pub(super) async fn list_topics(&self) -> Result<Vec<TopicStats>, BrokerError> {
        let mut all: Vec<TopicStats> = Vec::new();
        for p in 0..self.layout.count() {
            for stats in self.list_in(p).await? {
                match all.iter_mut().find(|s| s.name == stats.name) {
                    Some(seen) => {
                        seen.history = (seen.history + stats.history).min(self.settings.history);
                        seen.public_history =
                            (seen.public_history + stats.public_history).min(self.settings.history);
                        seen.last_id = seen.last_id.max(stats.last_id);
                        seen.last_public_id = seen.last_public_id.max(stats.last_public_id);
                    }
                    None => all.push(stats),
                }
            }
        }
        Ok(all)
    }

    async fn list_in(&self, p: usize) -> Result<Vec<TopicStats>, BrokerError> {
        let mut con = self.reader(p);
        let names = self.known_topics_in(p).await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for name in &names {
            let key = self.stream_key(p, name.as_str());
            pipe.cmd("XLEN").arg(&key);
            pipe.cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(LISTING_WINDOW);
        }
        let replies: Vec<Value> = self.timed(pipe.query_async(&mut con)).await?;
        Ok(names
            .into_iter()
            .zip(replies.chunks(2))
            .map(|(name, reply)| {
                let history = match reply.first() {
                    // Approximate trimming may leave more in the stream than history holds.
                    Some(Value::Int(n)) => {
                        usize::try_from(*n).unwrap_or(0).min(self.settings.history)
                    }
                    _ => 0,
                };
                let window = reply
                    .get(1)
                    .cloned()
                    .map(|v| decode_entries(&name, v))
                    .unwrap_or_default();
                // Redis keeps no per-topic count of private events: they are counted in
                // the newest LISTING_WINDOW events, exact for topics holding no more.
                let private = window.iter().filter(|e| e.private).count();
                TopicStats {
                    name,
                    last_id: window.first().map(|e| e.id),
                    history,
                    last_public_id: window.iter().find(|e| !e.private).map(|e| e.id),
                    public_history: history.saturating_sub(private),
                }
            })
            .collect())
    }
}
