//! Asking a Redis Cluster who serves what: what a `redis+cluster://` (or, with TLS to every
//! node, `rediss+cluster://`) URL names, and, from `CLUSTER SHARDS`, the primary and healthy
//! replicas that hold a slot.
//!
//! Any reachable node answers for the whole cluster, so the seeds need not be every node, and
//! a node learns a failover (a replica promoted) or a resharding (a slot moved) by asking again.

use std::time::Duration;

use redis::Value;

use super::codec::text;
use crate::broker::BrokerError;

/// The URL scheme of a Redis Cluster.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";
/// The URL scheme of a Redis Cluster reached by TLS (every node, at its `tls-port`).
pub const CLUSTER_TLS_SCHEME: &str = "rediss+cluster://";

/// One shard: its slot ranges, its primary and its replicas that are online.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Shard {
    pub slots: Vec<(u16, u16)>,
    /// `host:port`.
    pub primary: String,
    /// `host:port`s.
    pub replicas: Vec<String>,
}

/// How a cluster's data nodes are reached: the user info of the URL, and whether by TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Access {
    /// `user:password` or `:password` (as written, percent-encoded).
    pub userinfo: Option<String>,
    /// `rediss+cluster://`: TLS to every node, at the port it announces as its `tls-port`.
    pub tls: bool,
}

impl Access {
    /// The URL of the data node at `addr`.
    pub(super) fn url(&self, addr: &str) -> String {
        let auth = self
            .userinfo
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://{auth}{addr}")
    }
}

/// A cluster URL read: the seeds, and how to reach the data nodes.
type Seeds = (Vec<String>, Access);

/// Whether `url` names a Redis Cluster.
pub fn is_cluster(url: &str) -> bool {
    url.starts_with(CLUSTER_SCHEME) || url.starts_with(CLUSTER_TLS_SCHEME)
}

/// `redis+cluster://` or `rediss+cluster://` then `[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]`:
/// the seeds and how to reach the nodes (`None` for another scheme).
pub(super) fn parse(url: &str) -> Option<Result<Seeds, BrokerError>> {
    let (rest, tls) = match url.strip_prefix(CLUSTER_SCHEME) {
        Some(rest) => (rest, false),
        None => (url.strip_prefix(CLUSTER_TLS_SCHEME)?, true),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (userinfo, seeds) = hosts(authority, 6379);
    if seeds.is_empty() {
        return Some(Err(BrokerError::Setup(format!(
            "{CLUSTER_SCHEME} URL: no HOST:PORT"
        ))));
    }
    Some(Ok((seeds, Access { userinfo, tls })))
}

/// The user info and `host:port`s of a URL's authority (`[USERINFO@]HOST[:PORT][,…]`), with
/// `default_port` where a host has none.
pub(super) fn hosts(authority: &str, default_port: u16) -> (Option<String>, Vec<String>) {
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (Some(user.to_owned()), hosts),
        None => (None, authority),
    };
    let hosts = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.contains(':') {
                h.to_owned()
            } else {
                format!("{h}:{default_port}")
            }
        })
        .collect();
    (userinfo, hosts)
}

/// The cluster's shards, as the first of `nodes` that answers sees them (`ca`: see
/// `link::client`).
pub(super) async fn shards(
    nodes: &[String],
    access: &Access,
    ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<Vec<Shard>, BrokerError> {
    let mut last = BrokerError::Unavailable("no cluster node answered".into());
    for addr in nodes {
        let client = super::link::client(&access.url(addr), ca)?;
        let work = async {
            let mut con = client.get_multiplexed_async_connection().await?;
            redis::cmd("CLUSTER")
                .arg("SHARDS")
                .query_async::<Value>(&mut con)
                .await
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(reply)) => {
                let shards = decode(reply, access.tls);
                if !shards.is_empty() {
                    return Ok(shards);
                }
                last = BrokerError::Unavailable(format!("{addr} lists no shards"));
            }
            Ok(Err(err)) => last = BrokerError::Unavailable(err.to_string()),
            Err(_) => last = BrokerError::Unavailable(format!("{addr} did not answer")),
        }
    }
    Err(last)
}

/// The shard serving `slot`.
pub(super) fn serving(shards: &[Shard], slot: u16) -> Option<&Shard> {
    shards
        .iter()
        .find(|s| !s.primary.is_empty() && s.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
}

/// Field pairs of a RESP2 array or a RESP3 map.
fn pairs(value: Value) -> Vec<(String, Value)> {
    match value {
        Value::Map(map) => map
            .into_iter()
            .filter_map(|(k, v)| Some((text(&k)?, v)))
            .collect(),
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut items = items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                if let Some(k) = text(&k) {
                    out.push((k, v));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

/// The shards of a `CLUSTER SHARDS` reply; with `tls`, each node at its `tls-port`.
fn decode(reply: Value, tls: bool) -> Vec<Shard> {
    let Value::Array(shards) = reply else {
        return Vec::new();
    };
    shards
        .into_iter()
        .map(|shard| {
            let mut out = Shard::default();
            for (field, value) in pairs(shard) {
                match (field.as_str(), value) {
                    ("slots", Value::Array(bounds)) => {
                        out.slots = bounds
                            .chunks(2)
                            .filter_map(|b| {
                                let low = u16::try_from(number(b.first()?)?).ok()?;
                                let high = u16::try_from(number(b.get(1)?)?).ok()?;
                                Some((low, high))
                            })
                            .collect();
                    }
                    ("nodes", Value::Array(nodes)) => {
                        for node in nodes {
                            let fields = pairs(node);
                            let get =
                                |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                            let host = get("endpoint")
                                .and_then(text)
                                .filter(|h| !h.is_empty() && h != "?")
                                .or_else(|| get("ip").and_then(text));
                            let port = if tls {
                                get("tls-port").and_then(number)
                            } else {
                                get("port").and_then(number)
                            };
                            let (Some(host), Some(port)) = (host, port) else {
                                continue;
                            };
                            let addr = format!("{host}:{port}");
                            let online = get("health").and_then(text).as_deref() == Some("online");
                            match get("role").and_then(text).as_deref() {
                                Some("master") if online => out.primary = addr,
                                Some("replica") if online => out.replicas.push(addr),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_seeds_and_a_password() {
        let (seeds, access) = parse("redis+cluster://:pw@a:1,b").unwrap().unwrap();
        assert_eq!(seeds, vec!["a:1".to_owned(), "b:6379".to_owned()]);
        assert_eq!(access.userinfo.as_deref(), Some(":pw"));
        assert_eq!(access.url("c:7"), "redis://:pw@c:7");
        let (seeds, access) = parse("rediss+cluster://a:1").unwrap().unwrap();
        assert_eq!(seeds, vec!["a:1".to_owned()]);
        assert_eq!(access.url("c:7"), "rediss://c:7");
        assert!(parse("redis://a:1").is_none());
        assert!(parse("redis+cluster://").unwrap().is_err());
        assert!(is_cluster("rediss+cluster://a:1") && !is_cluster("rediss://a:1"));
    }

    #[test]
    fn shards_decode_from_resp2() {
        let s = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let node = |port: i64, role: &str, health: &str| {
            Value::Array(vec![
                s("ip"),
                s("127.0.0.1"),
                s("port"),
                Value::Int(port),
                s("tls-port"),
                Value::Int(port + 100),
                s("endpoint"),
                s("127.0.0.1"),
                s("role"),
                s(role),
                s("health"),
                s(health),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            s("slots"),
            Value::Array(vec![Value::Int(0), Value::Int(5460)]),
            s("nodes"),
            Value::Array(vec![
                node(7001, "master", "online"),
                node(7004, "replica", "online"),
                node(7005, "replica", "loading"),
            ]),
        ])]);
        let shards = decode(reply.clone(), false);
        assert_eq!(
            shards,
            vec![Shard {
                slots: vec![(0, 5460)],
                primary: "127.0.0.1:7001".into(),
                replicas: vec!["127.0.0.1:7004".into()],
            }]
        );
        let tls = decode(reply, true);
        assert_eq!(tls[0].primary, "127.0.0.1:7101");
        assert_eq!(tls[0].replicas, ["127.0.0.1:7104"]);
        assert!(serving(&shards, 5460).is_some());
        assert!(serving(&shards, 5461).is_none());
    }
}
