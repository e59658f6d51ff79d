//! Publish throughput: closed loops over 16 keep-alive connections for a few seconds, first
//! with no subscriber, then with 1,000 live subscribers (whose deliveries are counted too, for
//! information: a server that accepts publishes faster than it delivers shows it here).

use std::time::Duration;

use serde_json::json;

use super::{describe_cpu, progress, Ctx, Live};
use crate::error::Result;
use crate::pool::wait_until;
use crate::publisher::{self, ClosedLoop};
use crate::servers::{Options, ServerKind};
use crate::sys::CpuWindow;
use crate::table::{number, Better, Outcome};

struct Plan {
    connections: usize,
    seconds: f64,
    max_requests: Option<u64>,
    subscribers: usize,
}

fn describe(run: &ClosedLoop) -> String {
    format!(
        "{} published, {} rejected in {:.2} s over {} connections: {} req/s{}",
        run.published,
        run.rejected,
        run.seconds,
        run.connections,
        number(run.rate, 0),
        run.error
            .as_ref()
            .map_or(String::new(), |e| format!(" (error: {e})"))
    )
}

/// Runs the publish-throughput scenario on `kind`.
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let plan = if ctx.smoke {
        Plan {
            connections: 4,
            seconds: 10.0,
            max_requests: Some(20),
            subscribers: 100,
        }
    } else {
        Plan {
            connections: 16,
            seconds: 5.0,
            max_requests: None,
            subscribers: 1_000,
        }
    };
    let duration = Duration::from_secs_f64(plan.seconds);
    let server = ctx.start("publish", kind, Options::default()).await?;
    let target = ctx.publish_target(&server, super::TOPIC);

    let pids = server.pids();
    let window = CpuWindow::start(&pids);
    let alone = publisher::closed_loop(
        &target,
        ctx.clock,
        &ctx.seq,
        plan.connections,
        duration,
        plan.max_requests,
    )
    .await;
    let alone_cpu = window.finish(&pids);
    progress(
        kind,
        "publish",
        &format!(
            "no subscribers: {}; {}",
            describe(&alone),
            describe_cpu(&alone_cpu)
        ),
    );
    if let Some(err) = &alone.error {
        outcome
            .problems
            .push(format!("publishing without subscribers: {err}"));
    }
    outcome
        .metric(
            "publish.alone",
            format!("publish, no subscribers ({} conns)", plan.connections),
            "req/s",
            Better::Higher,
            Some(alone.rate),
        )
        .cpu(&alone_cpu);

    let live = Live::open(ctx, server, plan.subscribers, outcome).await?;
    let subscribers = live.pool.len() as u64;
    let lo = ctx.seq.get();
    live.pool.begin_step(lo, u64::MAX);
    let window = CpuWindow::start(&pids);
    let loaded = publisher::closed_loop(
        &target,
        ctx.clock,
        &ctx.seq,
        plan.connections,
        duration,
        plan.max_requests,
    )
    .await;
    let expected = subscribers * loaded.published;
    let drained = wait_until(Duration::from_secs(5), || live.pool.delivered() >= expected).await;
    let loaded_cpu = window.finish(&pids);
    let delivery = live.pool.end_step(loaded.published);
    let delivered_pct = if expected == 0 {
        100.0
    } else {
        delivery.delivered as f64 * 100.0 / expected as f64
    };
    progress(
        kind,
        "publish",
        &format!(
            "{} subscribers: {}; delivered {:.1} % ({} of {}), {} duplicates{}; {}",
            subscribers,
            describe(&loaded),
            delivered_pct,
            delivery.delivered,
            expected,
            delivery.duplicates,
            if drained {
                ""
            } else {
                ", not drained within 5 s"
            },
            describe_cpu(&loaded_cpu)
        ),
    );
    if let Some(err) = &loaded.error {
        outcome
            .problems
            .push(format!("publishing with subscribers: {err}"));
    }
    if delivery.duplicates > 0 {
        outcome
            .problems
            .push(format!("{} duplicate deliveries", delivery.duplicates));
    }
    if delivery.lost > 0 {
        let text = format!(
            "with {subscribers} subscribers under closed-loop publishing, {} of {expected} deliveries did not arrive",
            delivery.lost
        );
        if ctx.smoke {
            outcome.problems.push(text);
        } else {
            outcome.notes.push(text);
        }
    }
    outcome
        .metric(
            "publish.loaded",
            format!(
                "publish, {} subscribers ({} conns)",
                number(plan.subscribers as f64, 0),
                plan.connections
            ),
            "req/s",
            Better::Higher,
            Some(loaded.rate),
        )
        .cpu(&loaded_cpu)
        .note(format!("{delivered_pct:.0} % delivered"));
    outcome.details = json!({
        "alone": alone,
        "alone_cpu": alone_cpu,
        "loaded": loaded,
        "loaded_cpu": loaded_cpu,
        "loaded_delivery": delivery,
    });
    live.close().await
}
