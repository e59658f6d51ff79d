//! Dropping the channels of topics no stream on this node names any more.
//!
//! A stream that names a topic makes the node `SSUBSCRIBE` to that topic's channel; without
//! this, the channel would stay subscribed after the stream closed, so a client opening and
//! closing streams on ever new topic names would grow the node's (and Redis') subscriptions
//! without bound. Every liveness check the follower asks the fan-out, for each followed topic,
//! whether a local stream still names it; a topic unnamed at two checks in a row (one to two
//! liveness periods, so a reconnecting client does not make the node churn) is unsubscribed.
//!
//! The partition itself stays followed (its tick channel, one per partition), so the merge
//! keeps its watermark. A stream naming the topic again later takes the same path as any new
//! topic (`add_channels`): subscribed, the partition ticked, its history up to the tick merged
//! in. The `sunsubscribe` Redis answers with is expected (`leaving`), not taken for a moved
//! slot.

use redis::Value;

use super::Task;
use crate::topic::TopicName;

impl Task {
    /// Unsubscribes topic channels no local stream has named since the previous check.
    pub(super) async fn prune(&mut self) {
        let delivery = &self.broker.delivery;
        let mut unnamed = std::collections::BTreeSet::new();
        for (&p, wanted) in &self.wanted {
            for topic in &wanted.topics {
                let named = TopicName::any(topic).is_ok_and(|name| delivery.is_named(&name));
                if !named {
                    unnamed.insert((p, topic.clone()));
                }
            }
        }
        let drop: Vec<(usize, String)> = unnamed.intersection(&self.idle).cloned().collect();
        self.idle = unnamed;
        for (p, topic) in drop {
            self.idle.remove(&(p, topic.clone()));
            if let Some(wanted) = self.wanted.get_mut(&p) {
                wanted.topics.remove(&topic);
            }
            // A broken or not yet followed partition subscribes to what is wanted when it is
            // followed (again): nothing to unsubscribe now.
            if self.broken.contains(&p) || !self.merge.follows(p) {
                continue;
            }
            let channel = self.broker.key(p, &format!("ch:{topic}"));
            self.unsubscribe(p, channel).await;
        }
    }

    /// `SUNSUBSCRIBE`s `channel` on the subscription that carries partition `p`. A failure
    /// leaves the channel subscribed: harmless (its events reach no stream), and gone at the
    /// next repair of the subscription.
    async fn unsubscribe(&mut self, p: usize, channel: String) {
        let generation = self.on.get(&p).copied();
        let Some(sub) = self
            .subs
            .values_mut()
            .find(|sub| Some(sub.generation) == generation)
        else {
            return;
        };
        let mut sunsubscribe = redis::cmd("SUNSUBSCRIBE");
        sunsubscribe.arg(&channel);
        let timeout = self.broker.settings.timeout;
        self.leaving.insert(channel);
        let answer = tokio::time::timeout(timeout, sunsubscribe.query_async::<Value>(&mut sub.con));
        if !matches!(answer.await, Ok(Ok(_))) {
            tracing::debug!(
                partition = p,
                "SUNSUBSCRIBE failed; the channel stays subscribed"
            );
        }
    }
}
