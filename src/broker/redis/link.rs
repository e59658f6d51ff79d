//! Where the Redis broker's commands go: one Redis named by its URL, or the primary that the
//! sentinels name, followed through failovers.
//!
//! With Sentinel the node asks the sentinels for the primary's address
//! (`SENTINEL get-master-addr-by-name`), checks with `ROLE` that the server there really is a
//! primary, and connects. It asks again every second and whenever a command fails, so a
//! failover (the old primary dead, frozen, or demoted to a replica) moves the node's commands
//! to the new primary. Delivery may come from a replica instead ([`Link::feed`]); when the
//! feed moves, the subscription task notices and resubscribes, filling the gap from the
//! streams.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::sentinel::{locate, replica, Target};
use crate::broker::BrokerError;

/// One connected Redis server: a client for new connections (subscriptions, commit lanes)
/// and a shared command connection.
pub(super) struct Node {
    pub client: redis::Client,
    pub commands: ConnectionManager,
    /// `host:port`.
    pub addr: String,
}

/// See the module docs.
pub(super) struct Link {
    target: Target,
    ca: Option<Vec<u8>>,
    timeout: Duration,
    /// Deliver from a replica (Sentinel with replicas to wait for): see [`Link::feed`].
    from_replica: bool,
    primary: Mutex<Arc<Node>>,
    feed: Mutex<Arc<Node>>,
    /// One look-up at a time.
    resolving: tokio::sync::Mutex<()>,
}

impl Link {
    /// Connects to the primary (failing fast if none answers), and with `from_replica` (and
    /// Sentinel) to a replica to deliver from.
    pub(super) async fn connect(
        target: Target,
        ca: Option<Vec<u8>>,
        timeout: Duration,
        from_replica: bool,
    ) -> Result<Self, BrokerError> {
        let url = match &target {
            Target::Single(url) => url.clone(),
            target @ Target::Sentinel { .. } => locate(target, timeout).await?.0,
        };
        let primary = Arc::new(open(&url, ca.as_deref(), timeout).await?);
        let link = Self {
            from_replica: from_replica && matches!(target, Target::Sentinel { .. }),
            target,
            ca,
            timeout,
            feed: Mutex::new(Arc::clone(&primary)),
            primary: Mutex::new(primary),
            resolving: tokio::sync::Mutex::new(()),
        };
        link.recheck().await;
        Ok(link)
    }

    /// The primary: where commands go.
    pub(super) fn primary(&self) -> Arc<Node> {
        Arc::clone(&self.primary.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Where the node subscribes and reads what it delivers: the primary, or with Sentinel and
    /// replicas to wait for, a healthy replica. A replica only has what reached it, so an
    /// event delivered from one survives the primary's death (Sentinel promotes the replica
    /// furthest ahead), and one lost with the primary reached no stream.
    pub(super) fn feed(&self) -> Arc<Node> {
        Arc::clone(&self.feed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether the primary can move (Sentinel).
    pub(super) fn follows_failovers(&self) -> bool {
        matches!(self.target, Target::Sentinel { .. })
    }

    /// Asks the sentinels where the primary and a replica to deliver from are, and moves if
    /// either changed. Does nothing for a single Redis, or when a look-up is already running.
    pub(super) async fn recheck(&self) {
        if !self.follows_failovers() {
            return;
        }
        let Ok(_one) = self.resolving.try_lock() else {
            return;
        };
        match locate(&self.target, self.timeout).await {
            Ok((url, addr)) if addr != self.primary().addr => {
                match open(&url, self.ca.as_deref(), self.timeout).await {
                    Ok(node) => {
                        tracing::warn!(redis = %node.addr, "Redis primary moved; following it");
                        *self.primary.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(node);
                    }
                    Err(err) => tracing::debug!(%err, "the new primary does not answer yet"),
                }
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(%err, "no primary from the sentinels yet"),
        }
        let feed = self.feed();
        let wanted = if self.from_replica {
            replica(&self.target, self.timeout).await.ok().flatten()
        } else {
            None
        };
        let primary = self.primary();
        let next = match wanted {
            // Keep a healthy replica we already deliver from.
            Some((_, addr)) if addr == feed.addr => return,
            Some((url, _)) => match open(&url, self.ca.as_deref(), self.timeout).await {
                Ok(node) => Arc::new(node),
                Err(_) => return,
            },
            // No healthy replica: deliver from the primary.
            None if Arc::ptr_eq(&feed, &primary) => return,
            None => primary,
        };
        tracing::warn!(redis = %next.addr, "delivering from another Redis");
        *self.feed.lock().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// Rechecks in the background (Sentinel only): after a command failed.
    pub(super) fn suspect(self: &Arc<Self>) {
        if self.follows_failovers() {
            let link = Arc::clone(self);
            tokio::spawn(async move { link.recheck().await });
        }
    }

    /// Rechecks every second, forever (Sentinel only).
    pub(super) async fn watch_forever(self: Arc<Self>) {
        if !self.follows_failovers() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.recheck().await;
        }
    }
}

/// A client and command connection for `url`.
async fn open(url: &str, ca: Option<&[u8]>, timeout: Duration) -> Result<Node, BrokerError> {
    let client = match ca {
        None => redis::Client::open(url).map_err(setup)?,
        Some(ca) => {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            };
            redis::Client::build_with_tls(url, certificates).map_err(setup)?
        }
    };
    let addr = client.get_connection_info().addr().to_string();
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    let commands = tokio::time::timeout(timeout, client.get_connection_manager_with_config(config))
        .await
        .map_err(|_| BrokerError::Unavailable("timed out connecting to Redis".into()))?
        .map_err(unavailable)?;
    Ok(Node {
        client,
        commands,
        addr,
    })
}

fn setup(err: redis::RedisError) -> BrokerError {
    BrokerError::Setup(err.to_string())
}

fn unavailable(err: redis::RedisError) -> BrokerError {
    BrokerError::Unavailable(err.to_string())
}
