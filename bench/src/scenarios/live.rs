//! A server with live subscribers connected and warmed up before anything is measured, and the
//! measured step (publish at a rate, drain, count) that the fan-out scenarios climb with.

use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;

use super::{Ctx, OPEN_TIMEOUT, TOPIC};
use crate::bail;
use crate::client::Target;
use crate::error::Result;
use crate::pool::{wait_until, Delivery, Pool};
use crate::publisher::{PublishTarget, Publisher, Schedule};
use crate::servers::Server;
use crate::sys::{CpuShare, CpuWindow};
use crate::table::{Outcome, GENERATOR_BOUND};

/// A server with a pool of connected, warmed-up live subscribers and a publisher connection.
pub struct Live {
    /// The server (publishes go to it).
    pub server: Server,
    /// More servers subscribers are spread over (cluster nodes), and the broker.
    pub others: Vec<Server>,
    /// The subscribers.
    pub pool: Rc<Pool>,
    /// The scheduled publisher.
    pub publisher: Publisher,
}

impl Live {
    /// Opens `count` live subscribers on `server`, waits for their response heads, then
    /// publishes warm-up messages until every open subscriber got one (synchronising on the
    /// deliveries, not on a sleep). Failed connections are recorded as problems in `outcome`.
    pub async fn open(
        ctx: &Ctx,
        server: Server,
        count: usize,
        outcome: &mut Outcome,
    ) -> Result<Self> {
        Self::open_spread(ctx, server, Vec::new(), 0, count, outcome).await
    }

    /// Like [`Live::open`], with every subscriber sending `GET path` and the publisher posting
    /// to `target` (the Mercure endpoint, say).
    pub async fn open_on(
        ctx: &Ctx,
        server: Server,
        path: &str,
        target: PublishTarget,
        count: usize,
        outcome: &mut Outcome,
    ) -> Result<Self> {
        Self::connect(
            ctx,
            server,
            Vec::new(),
            0,
            |_| path.to_owned(),
            target,
            count,
            outcome,
        )
        .await
    }

    /// Like [`Live::open`], with the subscribers spread evenly over `server` and the first
    /// `spread` of `others` (publishes go to `server`); `others` are stopped with it.
    pub async fn open_spread(
        ctx: &Ctx,
        server: Server,
        others: Vec<Server>,
        spread: usize,
        count: usize,
        outcome: &mut Outcome,
    ) -> Result<Self> {
        let target = ctx.publish_target(&server, TOPIC);
        Self::connect(
            ctx,
            server,
            others,
            spread,
            |node| node.kind.live_path(TOPIC),
            target,
            count,
            outcome,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn connect(
        ctx: &Ctx,
        server: Server,
        others: Vec<Server>,
        spread: usize,
        path: impl Fn(&Server) -> String,
        target: PublishTarget,
        count: usize,
        outcome: &mut Outcome,
    ) -> Result<Self> {
        let pool = Pool::for_server(ctx.clock, server.kind);
        let nodes: Vec<&Server> = std::iter::once(&server)
            .chain(others.iter().take(spread))
            .collect();
        for (i, node) in nodes.iter().enumerate() {
            let share = count / nodes.len() + usize::from(i < count % nodes.len());
            let stream = Target::get(node.addr, &path(node), OPEN_TIMEOUT);
            pool.spawn(&stream, share);
        }
        Self::finish(ctx, server, others, pool, target, count, outcome).await
    }

    /// Like [`Live::open`], with the subscribers started by `spawn` (HTTPS, HTTP/2) on a pool
    /// that should end up with `count` of them, and publishes over HTTPS with `tls`.
    pub async fn open_with(
        ctx: &Ctx,
        server: Server,
        count: usize,
        spawn: impl FnOnce(&Rc<Pool>),
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
        outcome: &mut Outcome,
    ) -> Result<Self> {
        let pool = Pool::new(ctx.clock);
        spawn(&pool);
        let target = PublishTarget {
            tls,
            ..ctx.publish_target(&server, TOPIC)
        };
        Self::finish(ctx, server, Vec::new(), pool, target, count, outcome).await
    }

    async fn finish(
        ctx: &Ctx,
        server: Server,
        others: Vec<Server>,
        pool: Rc<Pool>,
        target: PublishTarget,
        count: usize,
        outcome: &mut Outcome,
    ) -> Result<Self> {
        let limit = Duration::from_secs(30) + Duration::from_millis(3 * count as u64);
        let got = pool.wait_connected(limit).await;
        if got.open < count {
            let errors = pool.errors().join("; ");
            let text = format!(
                "only {} of {count} subscribers connected ({} failed, {} closed): {errors}",
                got.open, got.failed, got.closed
            );
            outcome.problems.push(text.clone());
            if got.open == 0 {
                bail!("{text}");
            }
        }
        let mut live = Self {
            publisher: Publisher::new(target, ctx.clock),
            server,
            others,
            pool,
        };
        live.warm_up(ctx, outcome).await?;
        Ok(live)
    }

    /// Publishes warm-up messages until every open subscriber got one. Subscribers that stay
    /// silent through 5 rounds in which nobody else warmed up either (a stream the server
    /// dropped without closing it: Pushpin does) are recorded as a problem and left out.
    async fn warm_up(&mut self, ctx: &Ctx, outcome: &mut Outcome) -> Result<()> {
        self.pool.begin_warmup();
        let (mut last, mut still) = (0, 0);
        for _ in 0..30 {
            let seq = ctx.take_seqs(1);
            self.publisher.schedule(seq, 1, 1.0).await?;
            let open = self.pool.connections().open;
            if wait_until(Duration::from_secs(1), || self.pool.warm() >= open).await {
                return Ok(());
            }
            let warm = self.pool.warm();
            still = if warm > last { 0 } else { still + 1 };
            last = warm;
            if warm > 0 && still >= 5 {
                outcome.problems.push(format!(
                    "warm-up: {} of {open} open subscribers got no message in 5 rounds",
                    open - warm
                ));
                return Ok(());
            }
        }
        bail!(
            "warm-up: only {} of {} subscribers got a message within 30 s",
            self.pool.warm(),
            self.pool.connections().open
        )
    }

    /// One measured step: publishes `rate × seconds` messages at `rate`, waits up to `drain`
    /// after the last one for the deliveries, and counts.
    pub async fn step(
        &mut self,
        ctx: &Ctx,
        rate: f64,
        seconds: f64,
        drain: Duration,
    ) -> Result<Step> {
        self.server.check_alive()?;
        for other in &mut self.others {
            other.check_alive()?;
        }
        let pool = &self.pool;
        let count = (rate * seconds).round().max(1.0) as u64;
        let lo = ctx.take_seqs(count);
        pool.begin_step(lo, lo + count);
        let mut pids = self.server.pids();
        pids.extend(self.others.iter().flat_map(Server::pids));
        let window = CpuWindow::start(&pids);
        let started = std::time::Instant::now();
        let scheduled = self.publisher.schedule(lo, count, rate).await;
        let expected = pool.len() as u64 * count;
        wait_until(drain, || pool.delivered() >= expected).await;
        let cpu = window.finish(&pids);
        let window_seconds = started.elapsed().as_secs_f64();
        let delivery = pool.end_step(count);
        let (schedule, error) = match scheduled {
            Ok(schedule) => (Some(schedule), None),
            Err(err) => (None, Some(err.to_string())),
        };
        let publish_seconds = schedule
            .as_ref()
            .map_or(seconds, |s| count as f64 / s.achieved_rate.max(1e-9));
        Ok(Step {
            rate,
            window_seconds,
            delivered_per_s: delivery.delivered as f64 / publish_seconds,
            schedule,
            error,
            delivery,
            cpu,
            generator_bound: cpu.generator > GENERATOR_BOUND,
        })
    }

    /// Closes the subscribers and stops the server.
    pub async fn close(self) -> Result<()> {
        self.pool.close().await;
        let stopped = self.server.stop().await;
        for other in self.others {
            other.stop().await?;
        }
        stopped
    }
}

/// One measured step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Messages/s asked for.
    pub rate: f64,
    /// What the publisher did.
    pub schedule: Option<Schedule>,
    /// Publisher error, if any.
    pub error: Option<String>,
    /// What the subscribers got.
    pub delivery: Delivery,
    /// Delivered events per second over the publishing time.
    pub delivered_per_s: f64,
    /// CPU shares over the step (publishing and drain).
    pub cpu: CpuShare,
    /// Wall time of the step (publishing and drain), s.
    pub window_seconds: f64,
    /// Whether the generator used more than 90 % of its core.
    pub generator_bound: bool,
}

impl Step {
    /// Server CPU time (user + system, all its processes) per delivery over the step, µs; none
    /// for a window too short for the 10 ms ticks the time is counted in.
    pub fn cpu_per_delivery_us(&self) -> Option<f64> {
        (self.window_seconds >= 2.0 && self.delivery.delivered > 0)
            .then(|| self.cpu.server * self.window_seconds * 1e6 / self.delivery.delivered as f64)
    }
}
