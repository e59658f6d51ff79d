//! The publish path to Redis: the batch script's arguments (what is fixed per partition, and
//! each event's), and a partition's tick (Cluster). The batches themselves are made by the
//! [`commit`](super::commit) lanes.

use redis::{Cmd, Script};

use super::partition::Layout;
use super::scripts::PUBLISH_FIELDS;
use super::{BrokerError, RedisBroker, RedisSettings};
use crate::event::Draft;
use crate::sse::EventId;
use crate::topic::TopicName;

/// One event's arguments to the publish script, in its order (see `PUBLISH_LUA`).
pub(super) struct Entry {
    fields: [Vec<u8>; PUBLISH_FIELDS],
}

impl Entry {
    /// Bytes the entry adds to a batch: what bounds a batch's size.
    pub(super) fn len(&self) -> usize {
        self.fields.iter().map(Vec::len).sum()
    }

    /// Appends the entry to a batch command.
    pub(super) fn append_to(&self, cmd: &mut Cmd) {
        for field in &self.fields {
            cmd.arg(field.as_slice());
        }
    }
}

/// The publish script's `EVALSHA` for partition `p`, without events: each batch starts from a
/// clone of it.
pub(super) fn head(
    layout: &Layout,
    settings: &RedisSettings,
    script: &Script,
    cluster: bool,
    p: usize,
) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash())
        .arg(2)
        .arg(layout.key(p, "meta"))
        .arg(layout.key(p, "topics"))
        .arg(settings.history)
        .arg(settings.max_age.as_millis() as u64)
        .arg(layout.key(p, "events"))
        .arg(layout.key(p, "id:"))
        .arg(layout.key(p, ""))
        .arg(layout.count())
        .arg(p)
        .arg(if cluster { "SPUBLISH" } else { "PUBLISH" })
        .arg(if cluster {
            layout.key(p, "ch:")
        } else {
            String::new()
        });
    cmd
}

impl RedisBroker {
    /// `draft`'s arguments to the publish script of partition `p`.
    pub(super) fn entry(&self, p: usize, draft: &Draft) -> Entry {
        let alternates = draft
            .alternates
            .iter()
            .map(TopicName::as_str)
            .collect::<Vec<_>>()
            .join("\t");
        Entry {
            fields: [
                self.stream_key(p, draft.topic.as_str()).into_bytes(),
                draft.topic.as_str().as_bytes().to_vec(),
                draft.name.as_str().as_bytes().to_vec(),
                draft.message.as_bytes().to_vec(),
                if draft.private {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                },
                alternates.into_bytes(),
                draft
                    .custom_id
                    .as_ref()
                    .map_or_else(Vec::new, |i| i.as_str().as_bytes().to_vec()),
                draft
                    .retry
                    .map(|r| r.to_string().into_bytes())
                    .unwrap_or_default(),
            ],
        }
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
