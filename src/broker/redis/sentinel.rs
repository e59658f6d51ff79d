//! Asking Redis Sentinel: what a `redis+sentinel://` URL names, where the primary is, and which
//! replicas are healthy.

use std::time::Duration;

use crate::broker::BrokerError;

/// The URL scheme of a Sentinel-managed Redis.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";
/// The same, with TLS to the sentinels and to the data nodes.
pub const SENTINEL_TLS_SCHEME: &str = "rediss+sentinel://";

/// Whether `url` names a Sentinel-managed Redis.
pub fn is_sentinel(url: &str) -> bool {
    url.starts_with(SENTINEL_SCHEME) || url.starts_with(SENTINEL_TLS_SCHEME)
}

/// What `--broker` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// `redis://…` or `rediss://…`: one server.
    Single(String),
    /// `redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]` (or `rediss+cluster://`):
    /// a Redis Cluster.
    Cluster {
        /// Nodes to ask first for the cluster's shape.
        seeds: Vec<String>,
        /// How its nodes are reached.
        access: super::topology::Access,
    },
    /// `redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER_NAME[?db=N]` (or
    /// `rediss+sentinel://`).
    Sentinel {
        /// The sentinels' `host:port`s.
        sentinels: Vec<String>,
        /// The monitored primary's name.
        master: String,
        /// `user:password` or `:password` for the data nodes (as written, percent-encoded).
        userinfo: Option<String>,
        /// The database number on the data nodes.
        db: u32,
        /// `rediss+sentinel://`: TLS to the sentinels and to the data nodes they name.
        tls: bool,
    },
}

impl Target {
    /// Reads a `--broker` URL.
    ///
    /// # Errors
    /// [`BrokerError::Setup`] for a Sentinel URL without sentinels or a primary's name, or a
    /// Cluster URL without nodes.
    pub(super) fn parse(url: &str) -> Result<Self, BrokerError> {
        if let Some(cluster) = super::topology::parse(url) {
            let (seeds, access) = cluster?;
            return Ok(Self::Cluster { seeds, access });
        }
        let (rest, tls) = match url.strip_prefix(SENTINEL_SCHEME) {
            Some(rest) => (rest, false),
            None => match url.strip_prefix(SENTINEL_TLS_SCHEME) {
                Some(rest) => (rest, true),
                None => return Ok(Self::Single(url.to_owned())),
            },
        };
        let bad = |why: &str| BrokerError::Setup(format!("{SENTINEL_SCHEME} URL: {why}"));
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no /MASTER_NAME"))?;
        let (userinfo, sentinels) = super::topology::hosts(authority, 26379);
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
            tls,
        })
    }

    /// The URL of a sentinel (`host:port`), and of a data node a sentinel names.
    fn urls(&self, sentinel: &str, data: Option<(&str, &str)>) -> String {
        let Self::Sentinel {
            userinfo, db, tls, ..
        } = self
        else {
            return String::new();
        };
        let scheme = if *tls { "rediss" } else { "redis" };
        match data {
            None => format!("{scheme}://{sentinel}"),
            Some((host, port)) => {
                let auth = userinfo
                    .as_ref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default();
                format!("{scheme}://{auth}{host}:{port}/{db}")
            }
        }
    }
}

/// The data-node URL and `host:port` of a replica the sentinels call healthy (linked to its
/// primary, not down), if any.
pub(super) async fn replica(
    target: &Target,
    ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<Option<(String, String)>, BrokerError> {
    let Target::Sentinel {
        sentinels, master, ..
    } = target
    else {
        return Ok(None);
    };
    let mut last = BrokerError::Unavailable("no sentinel answered".into());
    for sentinel in sentinels {
        let client = super::link::client(&target.urls(sentinel, None), ca)?;
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
        let healthy: Vec<(String, String)> = replicas
            .iter()
            .filter_map(|fields| {
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
            })
            .collect();
        // The sentinels' view can be a second old: a dead primary started again answers as a
        // primary, with events the promoted one never had, until they convert it; and once
        // converted it still holds those events until its first sync with the new primary
        // replaces its data. Deliver only from a server that says itself it is a replica whose
        // link to its primary is up (`connected`: synced).
        for (host, port) in healthy {
            let url = target.urls("", Some((&host, &port)));
            if role(&url, ca, timeout)
                .await
                .is_ok_and(|r| r == "slave connected")
            {
                return Ok(Some((url, format!("{host}:{port}"))));
            }
        }
        return Ok(None);
    }
    Err(last)
}

/// The data-node URL and `host:port` of the primary a majority of the sentinels name, checked
/// with `ROLE`.
///
/// A majority, not the first that answers: right after a failover a sentinel that has not heard
/// of it yet still names the old primary, and a dead primary started again answers `ROLE` as a
/// primary (with events the promoted one never had) until the sentinels convert it. A node that
/// followed it there would take publishes no replica acknowledges and replay history no other
/// node has. Without a majority the node keeps the primary it has.
pub(super) async fn locate(
    target: &Target,
    ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<(String, String), BrokerError> {
    let Target::Sentinel {
        sentinels, master, ..
    } = target
    else {
        return Err(BrokerError::Setup("not a Sentinel target".into()));
    };
    let answers =
        futures_util::future::join_all(sentinels.iter().map(|sentinel| {
            ask_sentinel(sentinel, target.urls(sentinel, None), master, ca, timeout)
        }))
        .await;
    let mut last = BrokerError::Unavailable("no sentinel answered".into());
    let mut named = Vec::new();
    for (sentinel, asked) in sentinels.iter().zip(answers) {
        match asked {
            Ok(Some(addr)) => named.push(addr),
            Ok(None) => {
                last = BrokerError::Unavailable(format!("sentinel {sentinel} knows no {master}"));
            }
            Err(err) => last = err,
        }
    }
    let Some((host, port)) = majority(named, sentinels.len()) else {
        return Err(BrokerError::Unavailable(format!(
            "no majority of the sentinels names a primary for {master}: {last}"
        )));
    };
    let url = target.urls("", Some((&host, &port.to_string())));
    let addr = format!("{host}:{port}");
    match role(&url, ca, timeout).await {
        Ok(role) if role == "master" => Ok((url, addr)),
        Ok(role) => Err(BrokerError::Unavailable(format!(
            "{addr} is a {role}, not a primary"
        ))),
        Err(err) => Err(err),
    }
}

/// The answer more than half of `voters` gave, if one did (those that did not answer count
/// against every answer).
fn majority<T: PartialEq>(answers: Vec<T>, voters: usize) -> Option<T> {
    let mut tally: Vec<(T, usize)> = Vec::new();
    for answer in answers {
        match tally.iter_mut().find(|(a, _)| *a == answer) {
            Some((_, votes)) => *votes += 1,
            None => tally.push((answer, 1)),
        }
    }
    tally
        .into_iter()
        .find(|(_, votes)| votes * 2 > voters)
        .map(|(answer, _)| answer)
}

async fn ask_sentinel(
    sentinel: &str,
    url: String,
    master: &str,
    ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<Option<(String, u16)>, BrokerError> {
    let client = super::link::client(&url, ca)?;
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

/// What a server says it is (`ROLE`): `master`, or for a replica `slave` and the state of its
/// link to its primary (`slave connected` once synced; `slave connect`, `slave connecting` or
/// `slave sync` before: its data may still be its own, not its primary's).
pub(super) async fn role(
    url: &str,
    ca: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, BrokerError> {
    let client = super::link::client(url, ca)?;
    let work = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        let reply: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut con).await?;
        let text = |value: Option<&redis::Value>| match value {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        let role = text(reply.first());
        Ok::<_, redis::RedisError>(if role == "slave" {
            format!("slave {}", text(reply.get(3)))
        } else {
            role
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| BrokerError::Unavailable("ROLE did not answer".into()))?
        .map_err(unavailable)
}

fn unavailable(err: redis::RedisError) -> BrokerError {
    BrokerError::Unavailable(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_is_what_most_sentinels_name() {
        assert_eq!(majority(vec!["a", "a", "b"], 3), Some("a"));
        // One sentinel behind a failover does not move a node; two of three do.
        assert_eq!(majority(vec!["old", "new", "new"], 3), Some("new"));
        // Silent sentinels count against every answer.
        assert_eq!(majority(vec!["a"], 3), None);
        assert_eq!(majority(vec!["a", "b"], 3), None);
        assert_eq!(majority(vec!["a"], 1), Some("a"));
        assert_eq!(majority(Vec::<&str>::new(), 3), None);
    }

    #[test]
    fn sentinel_urls_name_sentinels_a_primary_and_a_password() {
        assert_eq!(
            Target::parse("redis+sentinel://:s3cret@a:1,b,c:3/main?db=2").unwrap(),
            Target::Sentinel {
                sentinels: vec!["a:1".into(), "b:26379".into(), "c:3".into()],
                master: "main".into(),
                userinfo: Some(":s3cret".into()),
                db: 2,
                tls: false,
            }
        );
        let tls = Target::parse("rediss+sentinel://:pw@a:1/main").unwrap();
        assert_eq!(tls.urls("a:1", None), "rediss://a:1");
        assert_eq!(tls.urls("", Some(("h", "7"))), "rediss://:pw@h:7/0");
        assert!(is_sentinel("rediss+sentinel://a:1/m") && !is_sentinel("rediss://a:1"));
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
