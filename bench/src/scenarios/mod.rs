//! The scenarios and what they share: a fresh server per scenario and server, and (in [`live`])
//! a pool of live subscribers that is connected and warmed up before anything is measured, and
//! the measured step (publish at a rate, drain, count).
//!
//! - [`fanout`]: 1,000 and 10,000 live subscribers, stepped publish rates, latency at 10/s.
//! - [`idle`]: memory per open stream at 10,000 and 19,000 streams.
//! - [`burst`]: 19,000 seed-contract streams (ssehub only).
//! - [`publish`]: closed-loop publish requests/s without and with 1,000 subscribers.
//! - [`publish_ab`]: publish requests/s from `wrk`, ssehub, nchan and the minimal broadcaster in
//!   alternating rounds, with each server's CPU per request (user and kernel).
//! - [`cluster`]: two ssehub nodes on Redis, publish on one, subscribers on both (ssehub only).
//! - [`ha`]: the same two nodes' latency on one Redis, on Sentinel and on a Redis Cluster, side
//!   by side (ssehub only; not in the smoke run).
//! - [`mercure_fanout`]: the 10,000-subscriber fan-out through ssehub's Mercure endpoint
//!   (exact topic, URI template, URL pattern) beside the same through `/stream` (ssehub only).
//! - [`mercure_patterns`]: Mercure publishes/s and publish latency with 1 to 10,000 distinct
//!   non-matching URI templates or URL patterns subscribed (ssehub only).
//! - [`shutdown`]: SIGTERM with 19,000 streams open, half live, half burst (ssehub only).
//! - [`tls`]: idle memory per stream and fan-out over HTTPS, HTTP/1.1 and HTTP/2 (ssehub only).
//! - [`store`]: publish cost with `--data-dir` (both `--fsync` policies) next to memory, with
//!   this generator and `wrk` (ssehub only).

pub mod burst;
pub mod cluster;
pub mod fanout;
pub mod ha;
mod ha_kill;
pub mod idle;
mod live;
pub mod mercure_fanout;
pub mod mercure_patterns;
pub mod publish;
pub mod publish_ab;
pub mod shutdown;
pub mod store;
pub mod tls;

pub use live::{Live, Step};

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::error::Result;
use crate::payload::Clock;
use crate::publisher::{Api, PublishTarget};
use crate::servers::{Options, Programs, Server, ServerKind};
use crate::sys::{self, CpuShare};
use crate::table::{Outcome, BACKGROUND_LOAD};

/// Limit on connect plus response head of one stream.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// The topic (nchan: channel) of live streams.
pub const TOPIC: &str = "bench";

/// Every scenario name, in run order.
pub const ALL: [&str; 14] = [
    "fanout-1k",
    "fanout-10k",
    "cluster",
    "idle",
    "burst",
    "publish",
    "publish-ab",
    "mercure-fanout",
    "mercure-patterns",
    "shutdown",
    "tls-idle",
    "tls-fanout",
    "store",
    "redis-ha",
];

/// What every scenario needs.
pub struct Ctx {
    /// Server programs.
    pub programs: Programs,
    /// The run's clock.
    pub clock: Clock,
    /// Next sequence number to publish.
    pub seq: Rc<Cell<u64>>,
    /// Message size in bytes.
    pub size: usize,
    /// Miniature run.
    pub smoke: bool,
    /// Streams of the idle, shutdown and tls-idle scenarios, if not their default.
    pub streams: Option<usize>,
    /// Directory for server configs and logs.
    pub work: PathBuf,
    /// What is left of the time the run may spend waiting for the machine to go idle.
    pub quiet_budget: Cell<Duration>,
}

impl Ctx {
    /// Reserves `count` sequence numbers; returns the first.
    pub fn take_seqs(&self, count: u64) -> u64 {
        let first = self.seq.get();
        self.seq.set(first + count);
        first
    }

    /// Starts a fresh server for `scenario`.
    pub async fn start(
        &self,
        scenario: &str,
        kind: ServerKind,
        options: Options,
    ) -> Result<Server> {
        let dir = self.work.join(format!("{scenario}-{}", kind.name()));
        Server::start(kind, &self.programs, &dir, options).await
    }

    /// A publisher target on `server` for `topic`.
    pub fn publish_target(&self, server: &Server, topic: &str) -> PublishTarget {
        PublishTarget {
            kind: server.kind,
            addr: server.publish_addr,
            topic: topic.to_owned(),
            size: self.size,
            api: Api::Native,
            tls: None,
        }
    }

    /// A publisher target on `server`'s Mercure endpoint for `topic` (or, with `fresh_topic`,
    /// a new topic `<topic>-<n>` for each message `n`).
    pub fn mercure_target(&self, server: &Server, topic: &str, fresh_topic: bool) -> PublishTarget {
        PublishTarget {
            api: Api::Mercure { fresh_topic },
            ..self.publish_target(server, topic)
        }
    }
}

/// Runs one scenario on one server.
pub async fn run(ctx: &Ctx, scenario: &'static str, kind: ServerKind) -> Outcome {
    let mut outcome = Outcome::new(scenario, kind);
    if !ctx.smoke {
        wait_quiet(ctx, &mut outcome).await;
    }
    let started = std::time::Instant::now();
    // The Mercure fan-out is four fan-outs (native and three selectors) on fresh servers.
    let runs = if scenario == "mercure-fanout" { 4 } else { 1 };
    let limit = if ctx.smoke {
        Duration::from_secs(60 * runs)
    } else {
        Duration::from_secs(600 * runs)
    };
    let result = tokio::time::timeout(limit, async {
        match scenario {
            "fanout-1k" => fanout::run(ctx, kind, fanout::Size::Thousand, &mut outcome).await,
            "fanout-10k" => fanout::run(ctx, kind, fanout::Size::TenThousand, &mut outcome).await,
            "idle" => idle::run(ctx, kind, &mut outcome).await,
            "burst" => burst::run(ctx, kind, &mut outcome).await,
            "publish" => publish::run(ctx, kind, &mut outcome).await,
            "publish-ab" => publish_ab::run(ctx, &mut outcome).await,
            "cluster" => cluster::run(ctx, kind, &mut outcome).await,
            "mercure-fanout" => mercure_fanout::run(ctx, kind, &mut outcome).await,
            "mercure-patterns" => mercure_patterns::run(ctx, kind, &mut outcome).await,
            "shutdown" => shutdown::run(ctx, kind, &mut outcome).await,
            "tls-idle" => tls::idle(ctx, kind, &mut outcome).await,
            "tls-fanout" => tls::fanout(ctx, kind, &mut outcome).await,
            "store" => store::run(ctx, kind, &mut outcome).await,
            "redis-ha" => ha::run(ctx, kind, &mut outcome).await,
            other => Err(crate::error::Error::msg(format!(
                "unknown scenario {other}"
            ))),
        }
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => outcome.error = Some(err.to_string()),
        Err(_) => outcome.error = Some(format!("scenario did not finish within {limit:?}")),
    }
    if kind == ServerKind::Pushpin {
        pushpin_cancels(ctx, scenario, &mut outcome);
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}

/// Notes the streams Pushpin's handler cancelled ("received message out of sequence,
/// canceling" in its log): they end without an error the client could see, and their
/// subscribers miss what follows.
fn pushpin_cancels(ctx: &Ctx, scenario: &str, outcome: &mut Outcome) {
    let log = ctx
        .work
        .join(format!("{scenario}-pushpin"))
        .join("stdout.log");
    let Ok(text) = std::fs::read_to_string(&log) else {
        return;
    };
    let cancelled = text
        .lines()
        .filter(|line| line.contains("out of sequence, canceling"))
        .count();
    if cancelled > 0 {
        outcome.notes.push(format!(
            "Pushpin's handler cancelled {cancelled} streams (\"received message out of sequence, canceling\" in {})",
            log.display()
        ));
    }
}

/// Machine-wide busy share under which the machine counts as idle.
const QUIET: f64 = 0.10;

/// Waits (within the run's budget) until no other program keeps the CPUs busy: another
/// build or test on the same machine would distort every number.
pub async fn wait_quiet(ctx: &Ctx, outcome: &mut Outcome) {
    let mut announced = false;
    loop {
        let busy = sys::machine_busy(Duration::from_secs(1)).await;
        if busy < QUIET {
            return;
        }
        let left = ctx.quiet_budget.get();
        if left.is_zero() {
            let text = format!(
                "the machine was {:.0} % busy with other work when this scenario started",
                busy * 100.0
            );
            println!("  warning: {text}; measuring anyway");
            outcome.notes.push(text);
            return;
        }
        if !announced {
            println!(
                "  waiting for the machine to go idle ({:.0} % of all CPUs busy with other work)",
                busy * 100.0
            );
            announced = true;
        }
        ctx.quiet_budget
            .set(left.saturating_sub(Duration::from_secs(1)));
    }
}

/// Which servers a scenario applies to: nchan has no seed-contract stream, no cluster, no
/// Mercure endpoint, no drain and no TLS here; Pushpin runs the fan-outs and idle memory only.
pub fn applies(scenario: &str, kind: ServerKind) -> bool {
    match kind {
        ServerKind::Ssehub => true,
        ServerKind::Nchan => matches!(scenario, "fanout-1k" | "fanout-10k" | "idle" | "publish"),
        ServerKind::Pushpin => matches!(scenario, "fanout-1k" | "fanout-10k" | "idle"),
        ServerKind::Minimal => matches!(scenario, "fanout-1k" | "fanout-10k"),
        ServerKind::Redis => false,
    }
}

/// Prints one progress line.
pub fn progress(kind: ServerKind, scenario: &str, text: &str) {
    println!("  [{:<6} {scenario}] {text}", kind.name());
}

/// One progress line about a step.
pub fn describe_step(step: &Step) -> String {
    let achieved = step
        .schedule
        .as_ref()
        .map_or("-".into(), |s| format!("{:.1}", s.achieved_rate));
    let d = &step.delivery;
    format!(
        "{} msg/s (achieved {achieved}, {} conn): delivered {}/{} lost {} dup {} | p50 {:.1} ms p99 {:.1} ms max {:.1} ms | {}{}{}{}",
        step.rate,
        step.schedule.as_ref().map_or(0, |s| s.connections_used),
        d.delivered,
        d.messages * d.subscribers as u64,
        d.lost,
        d.duplicates,
        d.latency.p50_ms,
        d.latency.p99_ms,
        d.latency.max_ms,
        describe_cpu(&step.cpu),
        if step.generator_bound { " [generator-bound]" } else { "" },
        if step.cpu.background() > BACKGROUND_LOAD { " [background load]" } else { "" },
        step.error.as_ref().map_or(String::new(), |e| format!(" | error: {e}")),
    )
}

/// CPU shares as text: processes, then their cores.
pub fn describe_cpu(cpu: &CpuShare) -> String {
    let core = |share: Option<f64>| share.map_or("-".into(), |s| format!("{:.0}%", s * 100.0));
    format!(
        "cpu gen {:.0}% server {:.0}% (cores: gen {} server {})",
        cpu.generator * 100.0,
        cpu.server * 100.0,
        core(cpu.generator_core),
        core(cpu.server_core)
    )
}
