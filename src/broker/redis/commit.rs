//! Publishes acknowledged by replicas (`--redis-min-replicas`): each is answered only after
//! `WAIT` says enough replicas hold it.
//!
//! `WAIT` covers every write made before it on the same connection, and blocks that connection
//! meanwhile. So publishes go through a few lanes, each with a connection of its own: a lane
//! takes every publish queued on it (up to [`BATCH`]), sends their scripts and one `WAIT` in one
//! pipeline, and answers them all. While one lane waits for the replicas, the others carry on;
//! concurrent publishes share one `WAIT` (a group commit).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Script, Value};
use tokio::sync::{mpsc, oneshot};

use super::link::{Link, Node};
use crate::broker::BrokerError;

/// Lanes per partition, when there is one partition (a Cluster has one lane per partition).
pub(super) const LANES: usize = 4;
/// Publishes per pipeline at most.
const BATCH: usize = 64;

type Answer = oneshot::Sender<Result<String, BrokerError>>;

/// See the module docs.
pub(super) struct Lanes {
    lanes: Vec<mpsc::Sender<(Cmd, Answer)>>,
    next: AtomicUsize,
}

impl Lanes {
    /// Starts the lanes; they end when this is dropped.
    pub(super) fn start(
        link: Arc<Link>,
        partition: usize,
        count: usize,
        script: Script,
        replicas: usize,
        timeout: Duration,
    ) -> Self {
        let lanes = (0..count.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(BATCH * 4);
                let lane = Lane {
                    link: Arc::clone(&link),
                    partition,
                    script: script.clone(),
                    replicas,
                    timeout,
                    con: None,
                };
                tokio::spawn(lane.run(rx));
                tx
            })
            .collect();
        Self {
            lanes,
            next: AtomicUsize::new(0),
        }
    }

    /// Runs a publish script (an `EVALSHA`) and waits for the replicas: the script's reply.
    pub(super) async fn publish(&self, cmd: Cmd) -> Result<String, BrokerError> {
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let (tx, rx) = oneshot::channel();
        self.lanes[lane]
            .send((cmd, tx))
            .await
            .map_err(|_| BrokerError::Unavailable("the broker is closing".into()))?;
        rx.await
            .map_err(|_| BrokerError::Unavailable("the broker is closing".into()))?
    }
}

struct Lane {
    link: Arc<Link>,
    partition: usize,
    script: Script,
    replicas: usize,
    timeout: Duration,
    /// The lane's connection and the primary it goes to.
    con: Option<(MultiplexedConnection, Arc<Node>)>,
}

impl Lane {
    async fn run(mut self, mut rx: mpsc::Receiver<(Cmd, Answer)>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let (cmds, answers): (Vec<Cmd>, Vec<Answer>) = batch.into_iter().unzip();
            let replies = self.commit(&cmds).await;
            for (answer, reply) in answers.into_iter().zip(replies) {
                let _ = answer.send(reply);
            }
        }
    }

    /// One pipeline: the scripts, then `WAIT`. A script the server does not know (a new
    /// primary) is loaded and the pipeline sent once more: `NOSCRIPT` means it did not run.
    async fn commit(&mut self, cmds: &[Cmd]) -> Vec<Result<String, BrokerError>> {
        let mut answer = self.send(cmds).await;
        let unknown = |a: &Result<Vec<Value>, BrokerError>| {
            a.as_ref().is_ok_and(|replies| {
                replies
                    .iter()
                    .any(|v| matches!(v, Value::ServerError(e) if e.code() == "NOSCRIPT"))
            })
        };
        if unknown(&answer) {
            if let Some((con, _)) = self.con.as_mut() {
                let _ = self.script.load_async(con).await;
            }
            answer = self.send(cmds).await;
        }
        let replies = match answer {
            Ok(replies) => replies,
            Err(err) => {
                self.con = None;
                self.link.suspect();
                let why = err.to_string();
                return cmds
                    .iter()
                    .map(|_| Err(BrokerError::Unavailable(why.clone())))
                    .collect();
            }
        };
        let acknowledged = match replies.last() {
            Some(Value::Int(n)) => usize::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        replies[..cmds.len().min(replies.len())]
            .iter()
            .map(|reply| match reply {
                _ if acknowledged < self.replicas => Err(BrokerError::Unavailable(format!(
                    "the event reached {acknowledged} of {} replicas in time",
                    self.replicas
                ))),
                Value::BulkString(id) => Ok(String::from_utf8_lossy(id).into_owned()),
                Value::SimpleString(id) => Ok(id.clone()),
                Value::ServerError(err) => Err(BrokerError::Unavailable(format!(
                    "Redis refused the publish: {}",
                    err.code()
                ))),
                other => Err(BrokerError::Unavailable(format!(
                    "unexpected reply to a publish: {other:?}"
                ))),
            })
            .collect()
    }

    async fn send(&mut self, cmds: &[Cmd]) -> Result<Vec<Value>, BrokerError> {
        let (replicas, timeout) = (self.replicas, self.timeout);
        let con = self.connection().await?;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for cmd in cmds {
            pipe.add_command(cmd.clone());
        }
        pipe.cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64);
        // WAIT itself may take `timeout`; the round trip gets as long again.
        tokio::time::timeout(timeout * 2, pipe.query_async(con))
            .await
            .map_err(|_| BrokerError::Unavailable("Redis did not answer in time".into()))?
            .map_err(|err| BrokerError::Unavailable(err.to_string()))
    }

    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, BrokerError> {
        let primary = self.link.primary(self.partition);
        if self
            .con
            .as_ref()
            .is_none_or(|(_, node)| !Arc::ptr_eq(node, &primary))
        {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout * 2));
            let con = tokio::time::timeout(
                self.timeout,
                primary
                    .client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await
            .map_err(|_| BrokerError::Unavailable("timed out connecting to Redis".into()))?
            .map_err(|err| BrokerError::Unavailable(err.to_string()))?;
            self.con = Some((con, primary));
        }
        match self.con.as_mut() {
            Some((con, _)) => Ok(con),
            None => Err(BrokerError::Unavailable("no connection".into())),
        }
    }
}
