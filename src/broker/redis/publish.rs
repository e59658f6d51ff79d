//! The publish path to Redis: the script's arguments, and running it, on the shared connection
//! or (with replicas to wait for) through the commit lanes; and a partition's tick (Cluster).

use redis::Cmd;

use super::{unavailable, RedisBroker};
use crate::broker::BrokerError;
use crate::event::Draft;
use crate::sse::EventId;
use crate::topic::TopicName;

impl RedisBroker {
    /// The publish script for `draft`, as an `EVALSHA`.
    pub(super) fn publish_cmd(&self, p: usize, draft: &Draft) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.publish.get_hash())
            .arg(3)
            .arg(self.key(p, "meta"))
            .arg(self.stream_key(p, draft.topic.as_str()))
            .arg(self.key(p, "topics"))
            .arg(draft.topic.as_str())
            .arg(draft.name.as_str())
            .arg(&draft.message)
            .arg(self.settings.history)
            .arg(self.settings.max_age.as_millis() as u64)
            .arg(self.key(p, "events"))
            .arg(if draft.private { "1" } else { "0" })
            .arg(
                draft
                    .alternates
                    .iter()
                    .map(TopicName::as_str)
                    .collect::<Vec<_>>()
                    .join("\t"),
            )
            .arg(draft.custom_id.as_ref().map_or("", |i| i.as_str()))
            .arg(draft.retry.map(|r| r.to_string()).unwrap_or_default())
            .arg(self.key(p, "id:"))
            .arg(self.key(p, ""))
            .arg(self.layout.count())
            .arg(p)
            .arg(if self.link.is_cluster() {
                "SPUBLISH"
            } else {
                "PUBLISH"
            })
            .arg(if self.link.is_cluster() {
                self.key(p, "ch:")
            } else {
                String::new()
            });
        cmd
    }

    /// Runs the publish script on the shared connection (no replicas to wait for), loading
    /// it first if the server does not know it (`NOSCRIPT`: it did not run).
    pub(super) async fn publish_now(&self, p: usize, cmd: &Cmd) -> Result<String, BrokerError> {
        let mut con = self.con(p);
        let started = std::time::Instant::now();
        let limit = self.settings.timeout;
        let mut answer = tokio::time::timeout(limit, cmd.query_async(&mut con)).await;
        if matches!(&answer, Ok(Err(err)) if err.code() == Some("NOSCRIPT")) {
            let _ = self.publish.load_async(&mut con).await;
            answer = tokio::time::timeout(limit, cmd.query_async(&mut con)).await;
        }
        self.settings
            .round_trip
            .record(started.elapsed().as_secs_f64());
        let answer = answer
            .map_err(|_| BrokerError::Unavailable("Redis did not answer in time".into()))
            .and_then(|a| a.map_err(unavailable));
        if answer.is_err() {
            self.link.suspect();
        }
        answer
    }
}

impl RedisBroker {
    /// Runs the tick script on partition `p`'s primary: its watermark, above `floor`.
    pub(super) async fn tick_partition(
        &self,
        p: usize,
        floor: EventId,
    ) -> Result<EventId, BrokerError> {
        let mut con = self.con(p);
        let id: String = self
            .timed(
                self.tick
                    .key(self.key(p, "meta"))
                    .arg(floor.ms)
                    .arg(floor.seq)
                    .arg(self.layout.count())
                    .arg(p)
                    .arg(self.key(p, "ticks"))
                    .invoke_async(&mut con),
            )
            .await?;
        id.parse()
            .map_err(|_| BrokerError::Unavailable(format!("Redis returned a bad id {id:?}")))
    }
}
