//! A node's delivery from Redis: its one `SUBSCRIBE` connection, kept alive with backoff, and
//! the catch-up from the streams that makes a reconnect leave no gap.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often the subscription checks that its Redis still answers.
const LIVENESS: Duration = Duration::from_secs(1);

use futures_util::StreamExt;

use super::codec::decode_message;
use super::RedisBroker;
use crate::broker::BrokerError;
use crate::event::Event;

impl RedisBroker {
    /// Keeps the node's one subscription alive, forever.
    pub(super) async fn deliver_forever(self: Arc<Self>, ready: tokio::sync::oneshot::Sender<()>) {
        let mut ready = Some(ready);
        let mut backoff = Duration::from_millis(100);
        loop {
            let tried = self.link.feed(0);
            match self.subscribe_and_deliver(&mut ready).await {
                Ok(()) => tracing::warn!("Redis subscription ended; reconnecting"),
                Err(err) => tracing::warn!(%err, ?backoff, "Redis subscription failed; retrying"),
            }
            self.live.store(false, Ordering::Release);
            // Back off, but try at once where the node now delivers from (a failover found).
            let until = tokio::time::Instant::now() + backoff;
            while tokio::time::Instant::now() < until && Arc::ptr_eq(&self.link.feed(0), &tried) {
                tokio::time::sleep(Duration::from_millis(50).min(backoff)).await;
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
            if self.live.load(Ordering::Acquire) {
                backoff = Duration::from_millis(100);
            }
        }
    }

    async fn subscribe_and_deliver(
        &self,
        ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), BrokerError> {
        let feed = self.link.feed(0);
        if !self.link.may_deliver_from(&feed).await {
            self.link.suspect();
            return Err(BrokerError::Unavailable(format!(
                "{} is neither the primary nor a synced replica now",
                feed.addr
            )));
        }
        let mut pubsub = self.timed(feed.client.get_async_pubsub()).await?;
        self.timed(pubsub.subscribe(self.key(0, "events"))).await?;
        // Anything published from here on is buffered on the subscription; first deliver what
        // was missed while it was down, from the streams.
        self.catch_up().await?;
        self.live.store(true, Ordering::Release);
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        tracing::info!(redis = %feed.addr, "Redis subscription live");
        let (mut sink, mut messages) = pubsub.split();
        // A frozen or partitioned Redis sends nothing and no error: a ping every second
        // finds out; so does the primary moving elsewhere (Sentinel).
        let mut tick = tokio::time::interval(LIVENESS);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { return Ok(()) };
                    match decode_message(message.get_payload_bytes()) {
                        Some(event) => self.hand_over(Arc::new(event)),
                        None => tracing::warn!("ignoring a malformed message on the events channel"),
                    }
                }
                _ = tick.tick() => {
                    if !Arc::ptr_eq(&self.link.feed(0), &feed) {
                        return Ok(());
                    }
                    let pong = tokio::time::timeout(self.settings.timeout, sink.ping::<redis::Value>());
                    if !matches!(pong.await, Ok(Ok(_))) {
                        self.link.suspect();
                        return Err(BrokerError::Unavailable("the subscription stopped answering".into()));
                    }
                }
            }
        }
    }

    /// Delivers an event unless an equal or newer one was delivered already.
    fn hand_over(&self, event: Arc<Event>) {
        let mut delivered = self.lock_delivered();
        if event.id > *delivered {
            *delivered = event.id;
            self.delivery.deliver(&event);
        }
    }

    /// Delivers what was published while the subscription was down. Called once the new
    /// subscription is active: everything issued after the high-water mark read first arrives
    /// on it, so only events up to that mark are read from the streams. (Topics are read one
    /// after another; without the mark, an event read from a later topic could be handed over
    /// before an older one still on its way, which would then be dropped as already seen.)
    async fn catch_up(&self) -> Result<(), BrokerError> {
        let after = *self.lock_delivered();
        let patterns = self.delivery.subscribed_patterns();
        if patterns.is_empty() {
            return Ok(());
        }
        let high = self.last_issued(0).await?;
        let mut missed = Vec::new();
        for topic in self.matching_topics(&patterns).await? {
            let (_, events) = self
                .read_topic(&topic, after, Some(high), self.settings.history, false)
                .await?;
            missed.extend(events);
        }
        missed.sort_unstable_by_key(|e| e.id);
        if !missed.is_empty() {
            tracing::info!(events = missed.len(), "caught up from Redis history");
        }
        for event in missed {
            self.hand_over(event);
        }
        Ok(())
    }
}
