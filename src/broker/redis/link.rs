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

use crate::broker::BrokerError;

/// The URL scheme of a Sentinel-managed Redis.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// What `--broker` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// `redis://…` or `rediss://…`: one server.
    Single(String),
    /// `redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER_NAME[?db=N]`.
    Sentinel {
        /// The sentinels' `host:port`s.
        sentinels: Vec<String>,
        /// The monitored primary's name.
        master: String,
        /// `user:password` or `:password` for the data nodes (as written, percent-encoded).
        userinfo: Option<String>,
        /// The database number on the data nodes.
        db: u32,
    },
}

impl Target {
    /// Reads a `--broker` URL.
    ///
    /// # Errors
    /// [`BrokerError::Setup`] for a Sentinel URL without sentinels or a primary's name.
    pub(super) fn parse(url: &str) -> Result<Self, BrokerError> {
        let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) else {
            return Ok(Self::Single(url.to_owned()));
        };
        let bad = |why: &str| BrokerError::Setup(format!("{SENTINEL_SCHEME} URL: {why}"));
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no /MASTER_NAME"))?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (Some(user.to_owned()), hosts),
            None => (None, authority),
        };
        let sentinels: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(':') {
                    h.to_owned()
                } else {
                    format!("{h}:26379")
                }
            })
            .collect();
        if sentinels.is_empty() {
            return Err(bad("no sentinel HOST:PORT"));
        }
        let (master, query) = path.split_once('?').unwrap_or((path, ""));
        if master.is_empty() {
            return Err(bad("no MASTER_NAME after the sentinels"));
        }
        let mut db = 0;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("db", n)) => db = n.parse().map_err(|_| bad("db must be a number"))?,
                _ => return Err(bad("the only query parameter is db")),
            }
        }
        Ok(Self::Sentinel {
            sentinels,
            master: master.to_owned(),
            userinfo,
            db,
        })
    }
}

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

/// The data-node URL and `host:port` of a replica the sentinels call healthy (linked to its
/// primary, not down), if any.
async fn replica(
    target: &Target,
    timeout: Duration,
) -> Result<Option<(String, String)>, BrokerError> {
    let Target::Sentinel {
        sentinels,
        master,
        userinfo,
        db,
    } = target
    else {
        return Ok(None);
    };
    let mut last = BrokerError::Unavailable("no sentinel answered".into());
    for sentinel in sentinels {
        let client = redis::Client::open(format!("redis://{sentinel}")).map_err(setup)?;
        let work = async {
            let mut con = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("replicas")
                .arg(master)
                .query_async::<Vec<Vec<String>>>(&mut con)
                .await
        };
        let replicas = match tokio::time::timeout(timeout, work).await {
            Ok(Ok(replicas)) => replicas,
            Ok(Err(err)) => {
                last = unavailable(err);
                continue;
            }
            Err(_) => continue,
        };
        let healthy = replicas.iter().find_map(|fields| {
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|pair| pair[0] == name)
                    .and_then(|pair| pair.get(1))
                    .map(String::as_str)
            };
            let flags = field("flags")?;
            let down = ["down", "disconnected"].iter().any(|f| flags.contains(f));
            (!down && field("master-link-status") == Some("ok"))
                .then(|| Some((field("ip")?.to_owned(), field("port")?.to_owned())))
                .flatten()
        });
        let Some((host, port)) = healthy else {
            return Ok(None);
        };
        let auth = userinfo
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        return Ok(Some((
            format!("redis://{auth}{host}:{port}/{db}"),
            format!("{host}:{port}"),
        )));
    }
    Err(last)
}

/// The data-node URL and `host:port` of the primary the sentinels name, checked with `ROLE`.
async fn locate(target: &Target, timeout: Duration) -> Result<(String, String), BrokerError> {
    let Target::Sentinel {
        sentinels,
        master,
        userinfo,
        db,
    } = target
    else {
        return Err(BrokerError::Setup("not a Sentinel target".into()));
    };
    let mut last = BrokerError::Unavailable("no sentinel answered".into());
    for sentinel in sentinels {
        let asked = ask_sentinel(sentinel, master, timeout).await;
        let (host, port) = match asked {
            Ok(Some(addr)) => addr,
            Ok(None) => {
                last = BrokerError::Unavailable(format!("sentinel {sentinel} knows no {master}"));
                continue;
            }
            Err(err) => {
                last = err;
                continue;
            }
        };
        let auth = userinfo
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let url = format!("redis://{auth}{host}:{port}/{db}");
        let addr = format!("{host}:{port}");
        match role(&url, timeout).await {
            Ok(role) if role == "master" => return Ok((url, addr)),
            Ok(role) => {
                last = BrokerError::Unavailable(format!("{addr} is a {role}, not a primary"))
            }
            Err(err) => last = err,
        }
    }
    Err(last)
}

async fn ask_sentinel(
    sentinel: &str,
    master: &str,
    timeout: Duration,
) -> Result<Option<(String, u16)>, BrokerError> {
    let client = redis::Client::open(format!("redis://{sentinel}")).map_err(setup)?;
    let work = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query_async::<Option<(String, u16)>>(&mut con)
            .await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| BrokerError::Unavailable(format!("sentinel {sentinel} did not answer")))?
        .map_err(unavailable)
}

async fn role(url: &str, timeout: Duration) -> Result<String, BrokerError> {
    let client = redis::Client::open(url).map_err(setup)?;
    let work = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        let reply: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut con).await?;
        Ok::<_, redis::RedisError>(match reply.first() {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| BrokerError::Unavailable("ROLE did not answer".into()))?
        .map_err(unavailable)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_sentinels_a_primary_and_a_password() {
        assert_eq!(
            Target::parse("redis+sentinel://:s3cret@a:1,b,c:3/main?db=2").unwrap(),
            Target::Sentinel {
                sentinels: vec!["a:1".into(), "b:26379".into(), "c:3".into()],
                master: "main".into(),
                userinfo: Some(":s3cret".into()),
                db: 2,
            }
        );
        assert_eq!(
            Target::parse("redis://x:1/0").unwrap(),
            Target::Single("redis://x:1/0".into())
        );
        for bad in [
            "redis+sentinel://a:1",
            "redis+sentinel://a:1/",
            "redis+sentinel:///m",
            "redis+sentinel://a:1/m?db=x",
            "redis+sentinel://a:1/m?tls=1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
