//! Where the Redis broker's commands go: one Redis named by its URL, the primary that the
//! sentinels name, or, per partition, the primary of the Cluster shard serving its slot;
//! followed through failovers (and, in a Cluster, slot moves).
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

use super::partition::Layout;
use super::sentinel::{locate, replica, role, Target};
use super::topology;
use crate::broker::BrokerError;

/// One connected Redis server: a client for new connections (subscriptions, commit lanes)
/// and a shared command connection.
pub(super) struct Node {
    pub client: redis::Client,
    pub commands: ConnectionManager,
    /// `host:port`.
    pub addr: String,
    /// The URL it was opened with.
    pub url: String,
}

/// Where one partition's commands and deliveries go.
#[derive(Clone)]
struct Route {
    primary: Arc<Node>,
    feed: Arc<Node>,
}

/// See the module docs.
pub(super) struct Link {
    target: Target,
    ca: Option<Vec<u8>>,
    timeout: Duration,
    /// Deliver from a replica (Sentinel or Cluster with replicas to wait for): see
    /// [`Link::feed`].
    from_replica: bool,
    layout: Layout,
    /// Per partition (one, but for a Cluster).
    routes: Mutex<Vec<Route>>,
    /// One look-up at a time.
    resolving: tokio::sync::Mutex<()>,
}

impl Link {
    /// Connects to the primary (failing fast if none answers), and with `from_replica` (and
    /// Sentinel) to a replica to deliver from.
    pub(super) async fn connect(
        target: Target,
        layout: Layout,
        ca: Option<Vec<u8>>,
        timeout: Duration,
        from_replica: bool,
    ) -> Result<Self, BrokerError> {
        let url = match &target {
            Target::Single(url) => url.clone(),
            target @ Target::Sentinel { .. } => locate(target, ca.as_deref(), timeout).await?.0,
            Target::Cluster { seeds, access } => {
                let shards = topology::shards(seeds, access, ca.as_deref(), timeout).await?;
                let shard = topology::serving(&shards, layout.slot(0))
                    .ok_or_else(|| BrokerError::Unavailable("no shard serves a slot".into()))?;
                access.url(&shard.primary)
            }
        };
        let primary = Arc::new(open(&url, ca.as_deref(), timeout).await?);
        let route = Route {
            feed: Arc::clone(&primary),
            primary,
        };
        let link = Self {
            from_replica: from_replica && !matches!(target, Target::Single(_)),
            routes: Mutex::new(vec![route; layout.count()]),
            layout,
            target,
            ca,
            timeout,
            resolving: tokio::sync::Mutex::new(()),
        };
        link.recheck().await;
        if link.is_cluster() {
            // Every partition must have found its shard before the node says it started.
            link.cluster_routes(true).await?;
        }
        Ok(link)
    }

    fn route(&self, partition: usize) -> Route {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes[partition % routes.len()].clone()
    }

    /// Partition `p`'s primary: where its commands go.
    pub(super) fn primary(&self, p: usize) -> Arc<Node> {
        self.route(p).primary
    }

    /// Where the node subscribes to partition `p` and reads what it delivers: the primary, or
    /// with replicas to wait for, a healthy replica. A replica only has what reached it, so an
    /// event delivered from one survives the primary's death (the replica furthest ahead is
    /// promoted), and one lost with the primary reached no stream.
    pub(super) fn feed(&self, p: usize) -> Arc<Node> {
        self.route(p).feed
    }

    /// Whether this is a Redis Cluster.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster { .. })
    }

    /// Whether the primary can move (Sentinel, Cluster).
    pub(super) fn follows_failovers(&self) -> bool {
        !matches!(self.target, Target::Single(_))
    }

    /// Asks the sentinels (or the cluster) where the primary and a replica to deliver from
    /// are, and moves if either changed. Does nothing for a single Redis, or when a look-up is
    /// already running.
    pub(super) async fn recheck(&self) {
        if !self.follows_failovers() {
            return;
        }
        let Ok(_one) = self.resolving.try_lock() else {
            return;
        };
        if self.is_cluster() {
            if let Err(err) = self.cluster_routes(false).await {
                tracing::debug!(%err, "no cluster shape yet");
            }
            return;
        }
        match locate(&self.target, self.ca.as_deref(), self.timeout).await {
            Ok((url, addr)) if addr != self.primary(0).addr => {
                match open(&url, self.ca.as_deref(), self.timeout).await {
                    Ok(node) => {
                        tracing::warn!(redis = %node.addr, "Redis primary moved; following it");
                        self.set(0, |r| r.primary = Arc::new(node));
                    }
                    Err(err) => tracing::debug!(%err, "the new primary does not answer yet"),
                }
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(%err, "no primary from the sentinels yet"),
        }
        let feed = self.feed(0);
        let wanted = if self.from_replica {
            replica(&self.target, self.ca.as_deref(), self.timeout)
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let primary = self.primary(0);
        let next = match wanted {
            // Keep a healthy replica we already deliver from.
            Some((_, addr)) if addr == feed.addr => return,
            Some((url, _)) => match open(&url, self.ca.as_deref(), self.timeout).await {
                Ok(node) => Arc::new(node),
                Err(_) => return,
            },
            // No healthy replica: deliver from the primary, once it answers as one. Right
            // after a primary dies, its replica loses its link and is no longer healthy
            // either; following the dead primary then would subscribe to it again if it came
            // back (restarted, or thawed) before the sentinels convert it, and deliver events
            // the promoted replica never had. Meanwhile the current feed is kept.
            None if Arc::ptr_eq(&feed, &primary) => return,
            None if !self.answers_as_primary(&primary).await => return,
            None => primary,
        };
        tracing::warn!(redis = %next.addr, "delivering from another Redis");
        self.set(0, |r| r.feed = next);
    }

    /// Whether `node` says itself it is a primary (`ROLE` is `master`).
    async fn answers_as_primary(&self, node: &Node) -> bool {
        role(&node.url, self.ca.as_deref(), self.timeout)
            .await
            .is_ok_and(|r| r == "master")
    }

    /// Whether the node may deliver from `feed` now (Sentinel; always, otherwise): a replica
    /// whose link to its primary is up (`slave connected`: synced), or the primary a majority
    /// of the sentinels names, answering as one. A dead primary started again answers as a
    /// primary, with events the promoted one never had, until the sentinels convert it: it is
    /// refused, however the node came to follow it.
    pub(super) async fn may_deliver_from(&self, feed: &Node) -> bool {
        if !matches!(self.target, Target::Sentinel { .. }) {
            return true;
        }
        match role(&feed.url, self.ca.as_deref(), self.timeout).await {
            Ok(role) if role == "slave connected" => true,
            Ok(role) if role == "master" => locate(&self.target, self.ca.as_deref(), self.timeout)
                .await
                .is_ok_and(|(_, addr)| addr == feed.addr),
            _ => false,
        }
    }

    fn set(&self, p: usize, change: impl FnOnce(&mut Route)) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(route) = routes.get_mut(p) {
            change(route);
        }
    }

    /// Asks the cluster which shard serves each partition's slot, and moves each partition to
    /// that shard's primary (and, with replicas to wait for, delivers from one of its online
    /// replicas, keeping the one it has while it stays online). With `strict`, a partition
    /// that finds no shard is an error.
    async fn cluster_routes(&self, strict: bool) -> Result<(), BrokerError> {
        let Target::Cluster { seeds, access } = &self.target else {
            return Ok(());
        };
        let current = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        for route in &current {
            for node in [&route.primary, &route.feed] {
                if !nodes.iter().any(|n| n.addr == node.addr) {
                    nodes.push(Arc::clone(node));
                }
            }
        }
        let mut ask: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
        ask.extend(
            seeds
                .iter()
                .filter(|s| !ask.contains(s))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let shards = topology::shards(&ask, access, self.ca.as_deref(), self.timeout).await?;
        let mut next = current.clone();
        for (p, route) in next.iter_mut().enumerate() {
            let Some(shard) = topology::serving(&shards, self.layout.slot(p)) else {
                if strict {
                    return Err(BrokerError::Unavailable(format!(
                        "no shard serves partition {p}'s slot"
                    )));
                }
                continue;
            };
            let Ok(primary) = self.node(&mut nodes, &shard.primary, access).await else {
                continue;
            };
            route.primary = primary;
            route.feed = if !self.from_replica {
                Arc::clone(&route.primary)
            } else if shard.replicas.contains(&route.feed.addr) {
                Arc::clone(&route.feed)
            } else {
                let mut feed = Arc::clone(&route.primary);
                for addr in &shard.replicas {
                    // As with Sentinel: a replica the cluster calls online may still hold its
                    // own data (a dead primary started again and turned into a replica keeps
                    // the events it had, refused ones included, until its first sync). Only
                    // one that says itself its link to the primary is up (`slave connected`)
                    // is delivered from.
                    let url = access.url(addr);
                    if !role(&url, self.ca.as_deref(), self.timeout)
                        .await
                        .is_ok_and(|r| r == "slave connected")
                    {
                        continue;
                    }
                    if let Ok(node) = self.node(&mut nodes, addr, access).await {
                        feed = node;
                        break;
                    }
                }
                feed
            };
        }
        for (p, (old, new)) in current.iter().zip(&next).enumerate() {
            if !Arc::ptr_eq(&old.primary, &new.primary) {
                tracing::warn!(partition = p, redis = %new.primary.addr, "partition moved to another primary");
            }
            if !Arc::ptr_eq(&old.feed, &new.feed) {
                tracing::info!(partition = p, redis = %new.feed.addr, "partition delivered from another Redis");
            }
        }
        *self.routes.lock().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The connected node at `addr`, opened if new.
    async fn node(
        &self,
        nodes: &mut Vec<Arc<Node>>,
        addr: &str,
        access: &topology::Access,
    ) -> Result<Arc<Node>, BrokerError> {
        if let Some(node) = nodes.iter().find(|n| n.addr == addr) {
            return Ok(Arc::clone(node));
        }
        let url = access.url(addr);
        let node = Arc::new(open(&url, self.ca.as_deref(), self.timeout).await?);
        nodes.push(Arc::clone(&node));
        Ok(node)
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

/// A client for `url`. The CA (`--redis-ca`) is for TLS connections only: a `redis://` URL
/// ignores it, so one setting (the image sets it to its CA bundle) serves cleartext and TLS
/// brokers alike.
pub(super) fn client(url: &str, ca: Option<&[u8]>) -> Result<redis::Client, BrokerError> {
    match ca.filter(|_| url.starts_with("rediss://")) {
        None => redis::Client::open(url).map_err(setup),
        Some(ca) => {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            };
            redis::Client::build_with_tls(url, certificates).map_err(setup)
        }
    }
}

/// A client and command connection for `url` (`ca`: see [`client`]).
async fn open(url: &str, ca: Option<&[u8]>, timeout: Duration) -> Result<Node, BrokerError> {
    let client = client(url, ca)?;
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
        url: url.to_owned(),
    })
}

/// A RESP3 connection to `url` whose pushes (pub/sub messages, disconnection) go to `sender`.
pub(super) async fn open_push(
    url: &str,
    ca: Option<&[u8]>,
    timeout: Duration,
    sender: impl redis::aio::AsyncPushSender,
) -> Result<redis::aio::MultiplexedConnection, BrokerError> {
    let separator = if url.contains('?') { '&' } else { '?' };
    let client = client(&format!("{url}{separator}protocol=resp3"), ca)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_push_sender(sender);
    tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| BrokerError::Unavailable("timed out connecting to Redis".into()))?
    .map_err(unavailable)
}

fn setup(err: redis::RedisError) -> BrokerError {
    BrokerError::Setup(err.to_string())
}

fn unavailable(err: redis::RedisError) -> BrokerError {
    BrokerError::Unavailable(err.to_string())
}
