//! Single-use values shared by every node ([`OnceStore`]): subscribe tickets made on one node
//! and redeemed on any. `SET key value PX ttl NX` stores one; `GETDEL` takes it, atomically,
//! so of two nodes redeeming one ticket at once exactly one gets it. Keys are
//! `PREFIX{tag}once:KEY`, spread over the partitions by the key's hash, on each partition's
//! primary (a replica could answer a ticket already taken).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::RedisBroker;
use crate::broker::{BrokerError, OnceStore};

impl RedisBroker {
    /// The partition and full key of `key`.
    fn once_key(&self, key: &str) -> (usize, String) {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let p = (hash % self.layout.count() as u64) as usize;
        (p, self.key(p, &format!("once:{key}")))
    }
}

impl OnceStore for RedisBroker {
    fn put_once<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: std::time::Duration,
    ) -> BoxFuture<'a, Result<bool, BrokerError>> {
        async move {
            let (p, key) = self.once_key(key);
            let mut con = self.con(p);
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let set: Option<String> = self
                .timed(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(value)
                        .arg("PX")
                        .arg(millis)
                        .arg("NX")
                        .query_async(&mut con),
                )
                .await?;
            Ok(set.is_some())
        }
        .boxed()
    }

    fn take_once<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, BrokerError>> {
        async move {
            let (p, key) = self.once_key(key);
            let mut con = self.con(p);
            self.timed(redis::cmd("GETDEL").arg(&key).query_async(&mut con))
                .await
        }
        .boxed()
    }
}
