//! Where a topic's keys live: the partitions of a Redis Cluster deployment.
//!
//! With one Redis (or Sentinel) there is one partition and keys are `PREFIX` + name, as they
//! always were. With a Redis Cluster, topics are spread over a fixed number of partitions, and
//! every key and channel of partition `p` carries one hash tag, `PREFIX{TAG}:` + name, so that
//! its id counter, its topics' streams and its delivery channel sit in one slot and the publish
//! script stays atomic. The tags are chosen once, deterministically, so that partition `p`'s
//! slot falls in the `p`-th of `P` equal slices of the 16,384 slots: the slices a cluster
//! created with `redis-cli --cluster create` hands out evenly to its primaries.
//!
//! A topic's partition is `CRC16(topic) mod P`. An event published with alternate topics
//! (Mercure's several topics per update) goes to partition 0, which every node follows: a
//! stream that names any of its topics then sees it wherever its other topics live. Such
//! events do not shard; single-topic events do.
//!
//! Ids stay `MS-SEQ` and comparable across partitions: partition `p` issues `SEQ = n × P + p`
//! (its `n`-th event), so no two partitions ever issue the same id.

use crate::event::Draft;
use crate::topic::TopicName;

/// Slots of a Redis Cluster.
const SLOTS: u32 = 16_384;

/// See the module docs.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    prefix: String,
    /// Per partition, what follows the prefix (`""` for a single partition).
    tags: Vec<String>,
}

impl Layout {
    /// One partition, keys as `PREFIX` + name.
    pub(super) fn single(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            tags: vec![String::new()],
        }
    }

    /// `count` partitions (at least 1), each pinned to a slot by its hash tag.
    pub(super) fn cluster(prefix: &str, count: usize) -> Self {
        let count = count.clamp(1, SLOTS as usize);
        let tags = (0..count)
            .map(|p| {
                let (low, high) = slice(p, count);
                (0u64..)
                    .map(|n| format!("p{p}.{n}"))
                    .find(|tag| (low..high).contains(&slot(tag.as_bytes())))
                    .map(|tag| format!("{{{tag}}}:"))
                    .unwrap_or_default()
            })
            .collect();
        Self {
            prefix: prefix.to_owned(),
            tags,
        }
    }

    /// How many partitions.
    pub(super) fn count(&self) -> usize {
        self.tags.len()
    }

    /// The partition of `topic`.
    pub(super) fn of(&self, topic: &TopicName) -> usize {
        (slot(topic.as_str().as_bytes()) as usize) % self.count()
    }

    /// The partition an event is published to: its topic's, or 0 when it has alternates.
    pub(super) fn of_draft(&self, draft: &Draft) -> usize {
        if draft.alternates.is_empty() {
            self.of(&draft.topic)
        } else {
            0
        }
    }

    /// The partitions that may hold events of `topic`: its own, and 0 (events with alternates).
    pub(super) fn holding(&self, topic: &TopicName) -> Vec<usize> {
        let own = self.of(topic);
        if own == 0 {
            vec![0]
        } else {
            vec![own, 0]
        }
    }

    /// The key (or channel) `name` of partition `p`.
    pub(super) fn key(&self, p: usize, name: &str) -> String {
        format!("{}{}{name}", self.prefix, self.tags[p % self.count()])
    }

    /// The slot partition `p`'s keys hash to (what the cluster routes by).
    pub(super) fn slot(&self, p: usize) -> u16 {
        let tag = &self.tags[p % self.count()];
        let inner = tag.trim_start_matches('{');
        let inner = inner.split('}').next().unwrap_or_default();
        if inner.is_empty() {
            slot(self.key(p, "meta").as_bytes())
        } else {
            slot(inner.as_bytes())
        }
    }
}

/// The `p`-th of `count` equal slices of the slots, as `low..high`.
fn slice(p: usize, count: usize) -> (u16, u16) {
    let low = (p as u32 * SLOTS / count as u32) as u16;
    let high = ((p as u32 + 1) * SLOTS / count as u32) as u16;
    (low, high.max(low + 1))
}

/// The Redis Cluster slot of a tag's bytes (CRC16-XMODEM mod 16,384; the caller strips braces).
fn slot(bytes: &[u8]) -> u16 {
    (crc16(bytes) as u32 % SLOTS) as u16
}

/// CRC16-CCITT (XMODEM), the hash Redis Cluster uses.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"x"), 16287);
        assert_eq!(slot(b"t2"), 4748);
    }

    #[test]
    fn one_partition_keeps_the_old_keys() {
        let layout = Layout::single("ssehub:");
        assert_eq!(layout.key(0, "meta"), "ssehub:meta");
        assert_eq!(layout.key(0, "topic:a"), "ssehub:topic:a");
        assert_eq!(layout.of(&TopicName::any("a").unwrap()), 0);
        assert_eq!(layout.holding(&TopicName::any("a").unwrap()), vec![0]);
    }

    #[test]
    fn partitions_spread_over_the_slot_slices() {
        let layout = Layout::cluster("ssehub:", 16);
        for p in 0..16 {
            let (low, high) = slice(p, 16);
            assert!((low..high).contains(&layout.slot(p)), "partition {p}");
            assert!(layout.key(p, "meta").starts_with("ssehub:{p"));
        }
        let mut used = [0usize; 16];
        for n in 0..1600 {
            used[layout.of(&TopicName::any(&format!("/t/{n}")).unwrap())] += 1;
        }
        assert!(used.iter().all(|&n| n > 60), "{used:?}");
    }
}
