//! Forgetting in Redis what history no longer holds: streams of topics idle longer than the
//! history age, and stale alternate-topic ids, every few seconds.

use std::sync::Arc;
use std::time::Duration;

use redis::{Script, Value};

use super::RedisBroker;
use crate::broker::BrokerError;

impl RedisBroker {
    /// Removes streams of topics idle longer than the history age, every few seconds.
    pub(super) async fn expire_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            for p in 0..self.layout.count() {
                if let Err(err) = self.expire(p).await {
                    tracing::debug!(%err, partition = p, "history expiry skipped");
                }
            }
        }
    }

    async fn expire(&self, p: usize) -> Result<(), BrokerError> {
        let mut con = self.con(p);
        let cutoff = (crate::event::unix_now() * 1000.0) as u64;
        let cutoff = cutoff.saturating_sub(self.settings.max_age.as_millis() as u64);
        let stale: Vec<String> = self
            .timed(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.key(p, "alternates"))
                    .arg("-inf")
                    .arg(format!("({cutoff}"))
                    .query_async(&mut con),
            )
            .await?;
        for alternate in stale {
            let mut pipe = redis::pipe();
            pipe.cmd("DEL")
                .arg(self.key(p, &format!("alt:{alternate}")));
            pipe.cmd("ZREM")
                .arg(self.key(p, "alternates"))
                .arg(&alternate);
            let _: Vec<Value> = self.timed(pipe.query_async(&mut con)).await?;
        }
        let idle: Vec<(String, u64)> = self
            .timed(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.key(p, "topics"))
                    .arg("-inf")
                    .arg(format!("({cutoff}"))
                    .arg("WITHSCORES")
                    .query_async(&mut con),
            )
            .await?;
        for (topic, last_ms) in idle {
            // Remember that events up to this topic's last one are gone for good.
            let script = Script::new(
                r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'forgotten') or '0')
if cur < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'forgotten', ARGV[1]) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1",
            );
            let _: i64 = self
                .timed(
                    script
                        .key(self.key(p, "meta"))
                        .key(self.stream_key(p, &topic))
                        .key(self.key(p, "topics"))
                        .arg(last_ms)
                        .arg(&topic)
                        .invoke_async(&mut con),
                )
                .await?;
        }
        Ok(())
    }
}
