//! Where publishes go: lanes that commit them to Redis in batches (a group commit).
//!
//! A lane takes every publish queued on it (up to [`BATCH`] events and [`BATCH_BYTES`] bytes)
//! and runs them as one publish script, then answers each. While one batch is on its way, the
//! next queues, so under load one script carries many events: Redis' cost per script (calling
//! Lua, its clock, the counter, the topics' times) and the node's per round trip are paid once
//! per batch, not per event. Alone, a publish goes at once, in a batch of one.
//!
//! With replicas to wait for (`--redis-min-replicas`), a publish is answered only after `WAIT`
//! says enough replicas hold it. `WAIT` covers every write made before it on the same
//! connection, and blocks that connection meanwhile, so each lane then has a connection of its
//! own and sends its batch and one `WAIT` in one pipeline; while one lane waits for the
//! replicas, the others carry on. Without, lanes share the node's command connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Pipeline, Script, Value};
use tokio::sync::{mpsc, oneshot};

use super::link::{Link, Node};
use super::publish::Entry;
use crate::broker::BrokerError;

/// Lanes of the one partition with replicas to wait for (else, and in a Cluster, one lane per
/// partition). One lane already takes what queued while its batch was away; with `WAIT`, a
/// second goes on while a slow replica holds the first. Measured (`bench/redis-publish`):
/// 1 and 2 lanes publish alike, 4 lanes make batches of 2 and cost a third more CPU per event.
pub(super) const LANES: usize = 2;
/// Events per batch at most.
const BATCH: usize = 64;
/// Bytes of event arguments per batch at most (a larger event goes alone).
const BATCH_BYTES: usize = 1 << 20;

/// An event to publish, where its answer goes, and since when it waits.
struct Job {
    entry: Entry,
    answer: oneshot::Sender<Result<String, BrokerError>>,
    queued: Instant,
}

/// See the module docs.
pub(super) struct Lanes {
    lanes: Vec<mpsc::Sender<Job>>,
    next: AtomicUsize,
}

/// What every lane of a partition shares.
pub(super) struct Setup {
    pub(super) link: Arc<Link>,
    pub(super) partition: usize,
    pub(super) script: Script,
    /// The publish script's command without events (see `RedisBroker::publish_head`).
    pub(super) head: Cmd,
    pub(super) replicas: usize,
    pub(super) timeout: Duration,
}

impl Lanes {
    /// Starts `count` lanes; they end when this is dropped.
    pub(super) fn start(setup: Setup, count: usize) -> Self {
        let setup = Arc::new(setup);
        let lanes = (0..count.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(BATCH * 4);
                let lane = Lane {
                    setup: Arc::clone(&setup),
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

    /// Publishes one event (and waits for the replicas, if any): its id.
    pub(super) async fn publish(&self, entry: Entry) -> Result<String, BrokerError> {
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let (tx, rx) = oneshot::channel();
        let job = Job {
            entry,
            answer: tx,
            queued: Instant::now(),
        };
        self.lanes[lane]
            .send(job)
            .await
            .map_err(|_| BrokerError::Unavailable("the broker is closing".into()))?;
        rx.await
            .map_err(|_| BrokerError::Unavailable("the broker is closing".into()))?
    }
}

struct Lane {
    setup: Arc<Setup>,
    /// With replicas to wait for: the lane's own connection and the primary it goes to.
    con: Option<(MultiplexedConnection, Arc<Node>)>,
}

impl Lane {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut held: Option<Job> = None;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match rx.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                if bytes + job.entry.len() > BATCH_BYTES && !batch.is_empty() {
                    held = Some(job);
                    break;
                }
                if let Some(job) = self.admit(job) {
                    bytes += job.entry.len();
                    batch.push(job);
                }
                if batch.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if batch.is_empty() {
                continue;
            }
            let replies = self.commit(&batch).await;
            for (job, reply) in batch.drain(..).zip(replies) {
                let _ = job.answer.send(reply);
            }
        }
    }

    /// Whether a queued job still goes: not when its publisher is gone (never acknowledged,
    /// so never sent), nor when it waited longer than a command may take (answered as a
    /// timeout, so that an outage answers every publish within about that time, however many
    /// queued).
    fn admit(&self, job: Job) -> Option<Job> {
        if job.answer.is_closed() {
            return None;
        }
        if job.queued.elapsed() > self.setup.timeout {
            let _ = job.answer.send(Err(BrokerError::Unavailable(
                "Redis did not answer in time".into(),
            )));
            return None;
        }
        Some(job)
    }

    /// One batch: the script, then (with replicas) `WAIT`, in one pipeline. A script the
    /// server does not know (a new primary) is loaded and the pipeline sent once more:
    /// `NOSCRIPT` means it did not run.
    async fn commit(&mut self, entries: &[Job]) -> Vec<Result<String, BrokerError>> {
        let setup = Arc::clone(&self.setup);
        let mut cmd = setup.head.clone();
        for job in entries {
            job.entry.append_to(&mut cmd);
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors().add_command(cmd);
        if setup.replicas > 0 {
            pipe.cmd("WAIT")
                .arg(setup.replicas)
                .arg(setup.timeout.as_millis() as u64);
        }
        let mut answer = self.send(&pipe).await;
        if matches!(&answer, Ok(r) if matches!(r.first(), Some(Value::ServerError(e)) if e.code() == "NOSCRIPT"))
        {
            match self.con.as_mut() {
                Some((con, _)) => {
                    let _ = setup.script.load_async(con).await;
                }
                None => {
                    let mut con = setup.link.primary(setup.partition).commands.clone();
                    let _ = setup.script.load_async(&mut con).await;
                }
            }
            answer = self.send(&pipe).await;
        }
        let failed = |why: String| {
            entries
                .iter()
                .map(|_| Err(BrokerError::Unavailable(why.clone())))
                .collect()
        };
        let mut replies = match answer {
            Ok(replies) => replies.into_iter(),
            Err(err) => {
                self.con = None;
                setup.link.suspect();
                return failed(err.to_string());
            }
        };
        let events = replies.next();
        let acknowledged = match replies.next() {
            Some(Value::Int(n)) => usize::try_from(n).unwrap_or(0),
            _ => 0,
        };
        let events = match events {
            Some(Value::Array(events)) => events,
            Some(Value::ServerError(err)) => {
                return failed(format!("Redis refused the publish: {}", err.code()));
            }
            other => return failed(format!("unexpected reply to a publish: {other:?}")),
        };
        let mut events = events.into_iter();
        entries
            .iter()
            .map(|_| match events.next() {
                Some(Value::ServerError(err)) => Err(BrokerError::Unavailable(format!(
                    "Redis refused the publish: {}",
                    err.code()
                ))),
                _ if acknowledged < setup.replicas => Err(BrokerError::Unavailable(format!(
                    "the event reached {acknowledged} of {} replicas in time",
                    setup.replicas
                ))),
                Some(Value::BulkString(id)) => Ok(String::from_utf8_lossy(&id).into_owned()),
                Some(Value::SimpleString(id)) => Ok(id),
                other => Err(BrokerError::Unavailable(format!(
                    "unexpected reply to a publish: {other:?}"
                ))),
            })
            .collect()
    }

    async fn send(&mut self, pipe: &Pipeline) -> Result<Vec<Value>, BrokerError> {
        let timeout = self.setup.timeout;
        let answer = if self.setup.replicas == 0 {
            let mut con = self
                .setup
                .link
                .primary(self.setup.partition)
                .commands
                .clone();
            tokio::time::timeout(timeout, pipe.query_async(&mut con)).await
        } else {
            let con = self.connection().await?;
            // WAIT itself may take `timeout`; the round trip gets as long again.
            tokio::time::timeout(timeout * 2, pipe.query_async(con)).await
        };
        answer
            .map_err(|_| BrokerError::Unavailable("Redis did not answer in time".into()))?
            .map_err(|err| BrokerError::Unavailable(err.to_string()))
    }

    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, BrokerError> {
        let setup = &self.setup;
        let primary = setup.link.primary(setup.partition);
        if self
            .con
            .as_ref()
            .is_none_or(|(_, node)| !Arc::ptr_eq(node, &primary))
        {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(setup.timeout))
                .set_response_timeout(Some(setup.timeout * 2));
            let con = tokio::time::timeout(
                setup.timeout,
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
