//! A set of live subscribers on one topic and their bookkeeping: who is connected, who got
//! the warm-up, and per measurement step a bitmap per subscriber (losses and duplicates) plus
//! one latency histogram for all of them.
//!
//! Everything runs on one thread (a `LocalSet`), so the state is a `RefCell` that each
//! subscriber task borrows for the few instructions an event takes.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;
use ssehub::sse::SseEvent;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{self, Handler, Target};
use crate::payload::{self, Clock};

mod tally;

pub use self::tally::Delivery;
use self::tally::{State, Sub};

/// Connections opened at once.
pub const CONNECT_CONCURRENCY: usize = 256;
/// Connections opened at once to Pushpin: with 256 its proxy answered 502 to about 8 % of the
/// subscribe requests without passing them on to zurl (its queue towards the backend).
pub const PUSHPIN_CONNECT_CONCURRENCY: usize = 32;

/// Live subscribers and their counts.
pub struct Pool {
    state: RefCell<State>,
    clock: Clock,
    gate: Rc<Semaphore>,
    tasks: RefCell<JoinSet<()>>,
}

/// Connection counts.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Connections {
    /// Streams open now (head received, not ended).
    pub open: usize,
    /// Connections that failed before their head arrived, or got a non-200 status.
    pub failed: usize,
    /// Streams that were open and then ended (closed by the server or failed).
    pub closed: usize,
}

impl Pool {
    /// An empty pool on the run's clock.
    pub fn new(clock: Clock) -> Rc<Self> {
        Self::opening(clock, CONNECT_CONCURRENCY)
    }

    /// An empty pool for `kind`'s subscribers (opened fewer at a time for Pushpin).
    pub fn for_server(clock: Clock, kind: crate::servers::ServerKind) -> Rc<Self> {
        match kind {
            crate::servers::ServerKind::Pushpin => {
                Self::opening(clock, PUSHPIN_CONNECT_CONCURRENCY)
            }
            _ => Self::new(clock),
        }
    }

    /// An empty pool opening at most `concurrency` connections at once.
    pub fn opening(clock: Clock, concurrency: usize) -> Rc<Self> {
        Rc::new(Self {
            state: RefCell::new(State::default()),
            clock,
            gate: Rc::new(Semaphore::new(concurrency)),
            tasks: RefCell::new(JoinSet::new()),
        })
    }

    /// Subscribers in the pool (opened or trying).
    pub fn len(&self) -> usize {
        self.state.borrow().subs.len()
    }

    /// Starts `count` more subscribers to `target`.
    pub fn spawn(self: &Rc<Self>, target: &Rc<Target>, count: usize) {
        let first = {
            let mut state = self.state.borrow_mut();
            let first = state.subs.len();
            state.subs.resize(first + count, Sub::default());
            first
        };
        let mut tasks = self.tasks.borrow_mut();
        for index in first..first + count {
            let pool = Rc::clone(self);
            let target = Rc::clone(target);
            tasks.spawn_local(async move {
                let gate = Rc::clone(&pool.gate);
                let mut handler = LiveHandler {
                    pool: Rc::clone(&pool),
                    index,
                };
                let result = client::stream(
                    client::source_address(index),
                    &target,
                    pool.clock,
                    &gate,
                    &mut handler,
                )
                .await;
                pool.on_end(index, result.err().map(|e| e.to_string()));
            });
        }
    }

    /// Starts `count` more subscribers to `target` over HTTP/2 (TLS), `per_connection` streams
    /// on each connection.
    pub fn spawn_h2(self: &Rc<Self>, target: &Rc<Target>, count: usize, per_connection: usize) {
        let first = {
            let mut state = self.state.borrow_mut();
            let first = state.subs.len();
            state.subs.resize(first + count, Sub::default());
            first
        };
        let per_connection = per_connection.max(1);
        let mut tasks = self.tasks.borrow_mut();
        for (c, start) in (first..first + count).step_by(per_connection).enumerate() {
            let range = start..(start + per_connection).min(first + count);
            let pool = Rc::clone(self);
            let target = Rc::clone(target);
            tasks.spawn_local(async move {
                let opened =
                    crate::h2client::connect(client::source_address(c), &target, &pool.gate).await;
                let (send, connection) = match opened {
                    Ok(opened) => opened,
                    Err(err) => {
                        for index in range {
                            pool.on_end(index, Some(err.to_string()));
                        }
                        return;
                    }
                };
                // The connection's driver and its streams: dropping the sets (when every stream
                // ended, or when the pool is closed) ends them all.
                let mut driver = JoinSet::new();
                driver.spawn_local(async move {
                    let _ = connection.await;
                });
                let mut streams = JoinSet::new();
                for index in range {
                    let (pool, target, send) = (Rc::clone(&pool), Rc::clone(&target), send.clone());
                    streams.spawn_local(async move {
                        let mut handler = LiveHandler {
                            pool: Rc::clone(&pool),
                            index,
                        };
                        let result =
                            crate::h2client::stream(send, &target, pool.clock, &mut handler).await;
                        pool.on_end(index, result.err().map(|e| e.to_string()));
                    });
                }
                drop(send);
                while streams.join_next().await.is_some() {}
                drop(driver);
            });
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        let mut tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        tasks.shutdown().await;
    }

    /// Connection counts now.
    pub fn connections(&self) -> Connections {
        let state = self.state.borrow();
        Connections {
            open: state.open,
            failed: state.failed,
            closed: state.closed,
        }
    }

    /// The first few connection errors.
    pub fn errors(&self) -> Vec<String> {
        self.state.borrow().errors.clone()
    }

    /// Waits until every subscriber has its head (or failed), up to `limit`.
    pub async fn wait_connected(&self, limit: Duration) -> Connections {
        let total = self.len();
        wait_until(limit, || {
            let c = self.connections();
            c.open + c.failed + c.closed >= total
        })
        .await;
        self.connections()
    }

    /// Starts a warm-up round: from now on, any marked message a subscriber gets makes it warm.
    pub fn begin_warmup(&self) {
        self.state.borrow_mut().begin_warmup();
    }

    /// Subscribers warm in this round.
    pub fn warm(&self) -> usize {
        self.state.borrow().warm
    }

    /// Starts measuring sequence numbers `lo..hi` (`hi` may be `u64::MAX`).
    pub fn begin_step(&self, lo: u64, hi: u64) {
        self.state.borrow_mut().begin_step(lo, hi);
    }

    /// Distinct deliveries in this step so far.
    pub fn delivered(&self) -> u64 {
        self.state.borrow().unique
    }

    /// Ends the step, counting `messages` expected per subscriber.
    pub fn end_step(&self, messages: u64) -> Delivery {
        self.state.borrow_mut().end_step(messages)
    }

    /// Messages received outside any step (warm-up, late arrivals).
    pub fn ignored(&self) -> u64 {
        self.state.borrow().ignored
    }

    fn on_head(&self, index: usize, status: u16) {
        if status == 200 {
            let mut state = self.state.borrow_mut();
            state.open += 1;
            state.subs[index].open = true;
        }
    }

    fn on_end(&self, index: usize, error: Option<String>) {
        let mut state = self.state.borrow_mut();
        if std::mem::take(&mut state.subs[index].open) {
            state.open -= 1;
            state.closed += 1;
        } else {
            state.failed += 1;
        }
        if let Some(error) = error {
            if state.errors.len() < 5 {
                state.errors.push(error);
            }
        }
    }

    fn on_message(&self, index: usize, seq: u64, latency_us: u64) {
        self.state.borrow_mut().on_message(index, seq, latency_us);
    }
}

struct LiveHandler {
    pool: Rc<Pool>,
    index: usize,
}

impl Handler for LiveHandler {
    fn on_head(&mut self, status: u16) {
        self.pool.on_head(self.index, status);
    }

    fn on_event(&mut self, event: SseEvent, now_us: u64) {
        if let Some((seq, sent_us)) = payload::find(event.data.as_bytes()) {
            self.pool
                .on_message(self.index, seq, now_us.saturating_sub(sent_us));
        }
    }
}

/// Polls `done` every 5 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests;
