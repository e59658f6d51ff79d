//! Publishers over keep-alive HTTP/1.1 connections: an open-loop one that posts message `i` at
//! `t0 + i / rate` (and reports the rate it achieved), and a closed-loop one (N connections,
//! each sending its next request when the last answer is in) that measures requests per second
//! and the time each answer took.

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout, Instant};

use crate::bail;
use crate::client::{self, Connection};
use crate::error::{Context, Result};
use crate::http::{self, Body};
use crate::payload::{self, Clock};
use crate::servers::ServerKind;
use crate::stats::{Histogram, Latency};

mod closed_loop;

pub use closed_loop::{closed_loop, ClosedLoop};

/// Longest a publish request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct PublishTarget {
    /// Which server (decides the request's form).
    pub kind: ServerKind,
    /// Server address.
    pub addr: SocketAddr,
    /// Topic (ssehub) or channel id (nchan).
    pub topic: String,
    /// Message text size in bytes.
    pub size: usize,
    /// Which endpoint takes the publishes.
    pub api: Api,
    /// HTTPS: the client configuration (ALPN `http/1.1`).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// The publishing endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The server's own (ssehub: `POST /api/messages`; nchan: `POST /pub`).
    Native,
    /// ssehub's Mercure endpoint (`POST /.well-known/mercure`, a form); with `fresh_topic`,
    /// message `n` goes to the topic `<topic>-<n>`, a topic never published to before.
    Mercure {
        /// A new topic per message.
        fresh_topic: bool,
    },
}

impl PublishTarget {
    /// The request publishing `text`, message number `seq`.
    pub fn request(&self, seq: u64, text: &str) -> Vec<u8> {
        match self.api {
            Api::Native => self.kind.publish_request(self.addr, &self.topic, text),
            Api::Mercure { fresh_topic: false } => {
                crate::mercure::publish_request(self.addr, &self.topic, text)
            }
            Api::Mercure { fresh_topic: true } => {
                crate::mercure::publish_request(self.addr, &format!("{}-{seq}", self.topic), text)
            }
        }
    }
}

/// One keep-alive HTTP/1.1 client connection (HTTPS with [`Conn::tls`]), reopened if the
/// server closes it.
pub struct Conn {
    addr: SocketAddr,
    from: Ipv4Addr,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    stream: Option<Connection>,
    buf: Vec<u8>,
    filled: usize,
    /// Whether any byte of the current request's answer arrived.
    answered: bool,
}

impl Conn {
    /// A connection to `addr` from `from`, opened on first use.
    pub fn new(addr: SocketAddr, from: Ipv4Addr) -> Self {
        Self {
            addr,
            from,
            tls: None,
            stream: None,
            buf: vec![0; 16 * 1024],
            filled: 0,
            answered: false,
        }
    }

    /// The same over HTTPS with `tls` (none: cleartext).
    pub fn tls(mut self, tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> Self {
        self.tls = tls;
        self
    }

    /// Sends one request and reads its whole response; returns the status.
    ///
    /// A kept-alive connection that fails before any byte of the answer arrived is one the
    /// server closed while it idled (ssehub closes an idle HTTP/1.1 connection after its
    /// `--header-timeout`, 10 s), the request crossing the close: the request is sent once
    /// more on a new connection, as HTTP clients do.
    pub async fn request(&mut self, request: &[u8]) -> Result<u16> {
        let reused = self.stream.is_some();
        match timeout(REQUEST_TIMEOUT, self.exchange(request)).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(_)) if reused && !self.answered => {
                self.stream = None;
                self.retry(request).await
            }
            Ok(Err(err)) => {
                self.stream = None;
                Err(err)
            }
            Err(_) => {
                self.stream = None;
                bail!("no response within {REQUEST_TIMEOUT:?}")
            }
        }
    }

    async fn retry(&mut self, request: &[u8]) -> Result<u16> {
        match timeout(REQUEST_TIMEOUT, self.exchange(request)).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(err)) => {
                self.stream = None;
                Err(err).context("on a new connection, after the kept-alive one was closed")
            }
            Err(_) => {
                self.stream = None;
                bail!("no response within {REQUEST_TIMEOUT:?}")
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<u16> {
        if self.stream.is_none() {
            self.filled = 0;
            self.stream =
                Some(client::open(self.from, self.addr, REQUEST_TIMEOUT, self.tls.as_ref()).await?);
        }
        let Some(stream) = self.stream.as_mut() else {
            bail!("no connection");
        };
        self.answered = false;
        stream.write_all(request).await.context("sending request")?;
        let head = loop {
            if let Some(head) = http::parse_head(&self.buf[..self.filled])? {
                break head;
            }
            if self.filled == self.buf.len() {
                bail!("response head too long");
            }
            let n = stream
                .read(&mut self.buf[self.filled..])
                .await
                .context("reading response")?;
            if n == 0 {
                bail!("server closed the connection before answering");
            }
            self.answered = true;
            self.filled += n;
        };
        let mut body = Body::new(head.framing);
        let mut start = head.len;
        loop {
            let used = body.feed(&self.buf[start..self.filled], |_| {})?;
            start += used;
            if body.is_done() {
                break;
            }
            let n = stream
                .read(&mut self.buf)
                .await
                .context("reading response body")?;
            start = 0;
            self.filled = n;
            if n == 0 {
                if body.until_close() {
                    break;
                }
                bail!("server closed the connection inside a response");
            }
        }
        self.buf.copy_within(start..self.filled, 0);
        self.filled -= start;
        if head.close {
            self.stream = None;
        }
        Ok(head.status)
    }
}

/// What an open-loop run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Schedule {
    /// Requests answered 2xx.
    pub published: u64,
    /// Requests answered otherwise.
    pub rejected: u64,
    /// The rate asked for, messages/s.
    pub target_rate: f64,
    /// The rate achieved: messages over the time the schedule took.
    pub achieved_rate: f64,
    /// Worst lateness of a send against its slot, ms.
    pub max_behind_ms: f64,
    /// Connections that had to be used (a further one is used only while all before it
    /// wait for an answer).
    pub connections_used: usize,
}

/// An open-loop publisher: message `i` of a run goes out at `t0 + i / rate` on the first
/// connection that is not waiting for an answer (so a server whose publish answer takes
/// longer than the period gets a second connection rather than a late schedule), up to
/// `MAX_CONNECTIONS` connections, opened on first use and kept alive between runs.
pub struct Publisher {
    target: PublishTarget,
    clock: Clock,
    conns: Vec<Option<Conn>>,
}

/// Most connections a [`Publisher`] opens.
pub const MAX_CONNECTIONS: usize = 4;

impl Publisher {
    /// A publisher to `target`; nothing is connected yet.
    pub fn new(target: PublishTarget, clock: Clock) -> Self {
        let conns = (0..MAX_CONNECTIONS)
            .map(|k| {
                Some(Conn::new(target.addr, client::source_address(k)).tls(target.tls.clone()))
            })
            .collect();
        Self {
            target,
            clock,
            conns,
        }
    }

    /// Publishes `count` messages numbered from `first_seq` at `rate` per second.
    pub async fn schedule(&mut self, first_seq: u64, count: u64, rate: f64) -> Result<Schedule> {
        let idle: Rc<Vec<Cell<bool>>> =
            Rc::new((0..MAX_CONNECTIONS).map(|_| Cell::new(true)).collect());
        let failed = Rc::new(Cell::new(false));
        let wake = Rc::new(Notify::new());
        let mut senders = Vec::new();
        let mut workers = JoinSet::new();
        for k in 0..MAX_CONNECTIONS {
            let Some(mut conn) = self.conns[k].take() else {
                bail!("publisher connection {k} is missing");
            };
            let (send, mut receive) = mpsc::channel::<u64>(1);
            senders.push(send);
            let (idle, failed, wake) = (Rc::clone(&idle), Rc::clone(&failed), Rc::clone(&wake));
            let (target, clock) = (self.target.clone(), self.clock);
            workers.spawn_local(async move {
                let mut text = String::with_capacity(target.size + 32);
                let (mut ok, mut rejected, mut error) = (0u64, 0u64, None);
                while let Some(seq) = receive.recv().await {
                    payload::write(&mut text, seq, clock.now_us(), target.size);
                    match conn.request(&target.request(seq, &text)).await {
                        Ok(status) if (200..300).contains(&status) => ok += 1,
                        Ok(_) => rejected += 1,
                        Err(err) => {
                            error = Some(err);
                            failed.set(true);
                            wake.notify_one();
                            break;
                        }
                    }
                    idle[k].set(true);
                    wake.notify_one();
                }
                (k, conn, ok, rejected, error)
            });
        }
        let period = Duration::from_secs_f64(1.0 / rate);
        let t0 = Instant::now();
        let mut report = Schedule {
            target_rate: rate,
            ..Schedule::default()
        };
        let mut last_start = t0;
        for i in 0..count {
            let due = t0 + period.mul_f64(i as f64);
            sleep_until(due).await;
            let k = loop {
                if failed.get() {
                    break None;
                }
                if let Some(k) = (0..MAX_CONNECTIONS).find(|&k| idle[k].get()) {
                    break Some(k);
                }
                wake.notified().await;
            };
            let Some(k) = k else { break };
            idle[k].set(false);
            report.connections_used = report.connections_used.max(k + 1);
            let now = Instant::now();
            last_start = now;
            report.max_behind_ms = report
                .max_behind_ms
                .max(now.saturating_duration_since(due).as_secs_f64() * 1000.0);
            if senders[k].send(first_seq + i).await.is_err() {
                failed.set(true);
                break;
            }
        }
        drop(senders);
        let mut first_error = None;
        while let Some(joined) = workers.join_next().await {
            let (k, conn, ok, rejected, error) = joined.context("publisher task")?;
            self.conns[k] = Some(conn);
            report.published += ok;
            report.rejected += rejected;
            if first_error.is_none() {
                first_error = error;
            }
        }
        if let Some(err) = first_error {
            return Err(err).context(format!("publishing {count} messages at {rate}/s"));
        }
        let took = (last_start - t0 + period).as_secs_f64();
        report.achieved_rate = count as f64 / took;
        Ok(report)
    }
}
