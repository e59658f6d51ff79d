//! Fan-out: N live subscribers on one topic, one publisher stepping up its rate (a few
//! seconds a step) until a step fails: a delivery lost or repeated, the publish rate more than
//! 5 % short of the target, or p99 latency over the limit. The result is the delivered
//! events/s of the last step that passed. With 10,000 subscribers the latency at 10
//! messages/s is measured first.

use std::time::Duration;

use serde_json::json;

use super::{describe_step, progress, Ctx, Live, Step};
use crate::error::Result;
use crate::servers::{Options, ServerKind};
use crate::table::{number, Better, Outcome};

/// Which fan-out.
#[derive(Debug, Clone, Copy)]
pub enum Size {
    /// 1,000 subscribers, p99 under 100 ms.
    Thousand,
    /// 10,000 subscribers, p99 under 500 ms.
    TenThousand,
}

struct Plan {
    name: &'static str,
    subscribers: usize,
    rates: Vec<f64>,
    step_seconds: f64,
    p99_limit_ms: f64,
    latency: Option<(f64, f64)>,
    drain: Duration,
}

fn plan(size: Size, smoke: bool) -> Plan {
    let drain = Duration::from_secs(3);
    match (size, smoke) {
        (Size::Thousand, false) => Plan {
            name: "fanout-1k",
            subscribers: 1_000,
            rates: vec![
                100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 500.0, 600.0, 800.0, 1000.0,
                1200.0, 1500.0, 2000.0,
            ],
            step_seconds: 4.0,
            p99_limit_ms: 100.0,
            latency: None,
            drain,
        },
        (Size::TenThousand, false) => Plan {
            name: "fanout-10k",
            subscribers: 10_000,
            rates: vec![
                5.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0,
                150.0, 200.0, 250.0, 300.0,
            ],
            step_seconds: 5.0,
            p99_limit_ms: 500.0,
            latency: Some((10.0, 10.0)),
            drain,
        },
        (Size::Thousand, true) => Plan {
            name: "fanout-1k",
            subscribers: 100,
            rates: vec![20.0],
            step_seconds: 1.0,
            p99_limit_ms: 100.0,
            latency: None,
            drain,
        },
        (Size::TenThousand, true) => Plan {
            name: "fanout-10k",
            subscribers: 100,
            rates: vec![20.0],
            step_seconds: 1.0,
            p99_limit_ms: 500.0,
            latency: Some((10.0, 1.0)),
            drain,
        },
    }
}

/// Why a step does not count as sustained (empty: it does).
fn failures(step: &Step, p99_limit_ms: f64) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(err) = &step.error {
        why.push(format!("publish failed: {err}"));
    }
    let d = &step.delivery;
    if d.lost > 0 {
        why.push(format!(
            "{} deliveries lost ({} subscribers short)",
            d.lost, d.subscribers_short
        ));
    }
    if d.duplicates > 0 {
        why.push(format!("{} duplicate deliveries", d.duplicates));
    }
    if let Some(s) = &step.schedule {
        if s.achieved_rate < 0.95 * step.rate {
            why.push(format!(
                "publish rate {:.1}/s < 95 % of {}",
                s.achieved_rate, step.rate
            ));
        }
        if s.rejected > 0 {
            why.push(format!("{} publishes rejected", s.rejected));
        }
    }
    if d.latency.p99_ms > p99_limit_ms {
        why.push(format!(
            "p99 {:.1} ms > {p99_limit_ms} ms",
            d.latency.p99_ms
        ));
    }
    why
}

/// Records what a step says about delivery integrity: duplicates are always a problem, losses
/// in a smoke run (whose rates are far below any saturation) too.
pub(super) fn check_integrity(ctx: &Ctx, step: &Step, what: &str, outcome: &mut Outcome) {
    let d = &step.delivery;
    if d.duplicates > 0 {
        outcome
            .problems
            .push(format!("{what}: {} duplicate deliveries", d.duplicates));
    }
    if ctx.smoke && (d.lost > 0 || step.error.is_some()) {
        outcome.problems.push(format!(
            "{what}: {} of {} deliveries lost{}",
            d.lost,
            d.messages * d.subscribers as u64,
            step.error
                .as_ref()
                .map_or(String::new(), |e| format!(" (publish error: {e})"))
        ));
    }
}

/// What stepping up the rate found.
pub(super) struct Ladder {
    /// Every step run, in order.
    pub steps: Vec<Step>,
    /// Index of the last sustained step.
    pub best: Option<usize>,
    /// The rate that was not sustained, why, and whether the generator was the bound.
    pub stopped_by: Option<(f64, Vec<String>, bool)>,
}

/// Steps through `rates` (`step_seconds` each, drained up to `drain`) until a step is not
/// sustained (see [`failures`]); integrity problems go to `outcome`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn climb(
    ctx: &Ctx,
    live: &mut Live,
    kind: ServerKind,
    name: &str,
    rates: &[f64],
    step_seconds: f64,
    drain: Duration,
    p99_limit_ms: f64,
    outcome: &mut Outcome,
) -> Result<Ladder> {
    let mut steps: Vec<Step> = Vec::new();
    let mut best: Option<usize> = None;
    let mut stopped_by: Option<(f64, Vec<String>, bool)> = None;
    for &rate in rates {
        let step = live.step(ctx, rate, step_seconds, drain).await?;
        let why = failures(&step, p99_limit_ms);
        let verdict = if why.is_empty() {
            "sustained".to_owned()
        } else {
            format!("not sustained: {}", why.join("; "))
        };
        progress(
            kind,
            name,
            &format!("{} => {verdict}", describe_step(&step)),
        );
        check_integrity(ctx, &step, &format!("{name}: {rate} msg/s step"), outcome);
        let failed = !why.is_empty();
        if failed {
            stopped_by = Some((rate, why, step.generator_bound));
        } else {
            best = Some(steps.len());
        }
        steps.push(step);
        if failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(Ladder {
        steps,
        best,
        stopped_by,
    })
}

/// Runs the fan-out scenario of `size` on `kind`.
pub async fn run(ctx: &Ctx, kind: ServerKind, size: Size, outcome: &mut Outcome) -> Result<()> {
    let plan = plan(size, ctx.smoke);
    let server = ctx.start(plan.name, kind, Options::default()).await?;
    let mut live = Live::open(ctx, server, plan.subscribers, outcome).await?;
    let subs = number(plan.subscribers as f64, 0);
    progress(
        kind,
        plan.name,
        &format!(
            "{} subscribers connected and warm",
            live.pool.connections().open
        ),
    );
    let mut latency_step = None;
    if let Some((rate, seconds)) = plan.latency {
        let step = live.step(ctx, rate, seconds, plan.drain).await?;
        progress(
            kind,
            plan.name,
            &format!("latency: {}", describe_step(&step)),
        );
        check_integrity(ctx, &step, "latency phase", outcome);
        if step.delivery.lost > 0 {
            outcome.notes.push(format!(
                "latency phase lost {} deliveries",
                step.delivery.lost
            ));
        }
        let l = step.delivery.latency;
        for (key, quantile, value) in [
            ("latency10.p50", "p50", l.p50_ms),
            ("latency10.p99", "p99", l.p99_ms),
            ("latency10.max", "max", l.max_ms),
        ] {
            outcome
                .metric(
                    key,
                    format!("latency at {rate} msg/s, {subs} subs: {quantile}"),
                    "ms",
                    Better::Lower,
                    Some(value),
                )
                .cpu(&step.cpu);
        }
        outcome
            .metric(
                "latency10.cpu",
                format!("server CPU per delivery at {rate} msg/s, {subs} subs"),
                "µs",
                Better::Lower,
                step.cpu_per_delivery_us(),
            )
            .cpu(&step.cpu);
        latency_step = Some(step);
    }
    let Ladder {
        steps,
        best,
        stopped_by,
    } = climb(
        ctx,
        &mut live,
        kind,
        plan.name,
        &plan.rates,
        plan.step_seconds,
        plan.drain,
        plan.p99_limit_ms,
        outcome,
    )
    .await?;
    let label = format!(
        "fan-out {subs} subs: max delivered (no loss, p99 < {} ms)",
        plan.p99_limit_ms
    );
    let key = format!("{}.max", plan.name);
    let best = best.map(|i| &steps[i]);
    let metric = outcome.metric(
        key,
        label,
        "ev/s",
        Better::Higher,
        best.map(|s| s.delivered_per_s),
    );
    // The step that passed and the one that failed both say whether the limit was ours.
    for step in best
        .iter()
        .chain(steps.last().filter(|_| stopped_by.is_some()).iter())
    {
        metric.cpu(&step.cpu);
    }
    match best {
        Some(step) if stopped_by.is_none() => {
            metric.note(format!("at {} msg/s, highest step tried", step.rate))
        }
        Some(step) => metric.note(format!("at {} msg/s", step.rate)),
        None => metric.note(format!("failed at {} msg/s", plan.rates[0])),
    };
    if let Some(step) = best {
        outcome
            .metric(
                format!("{}.max.cpu", plan.name),
                format!("fan-out {subs} subs: server CPU per delivery at the max"),
                "µs",
                Better::Lower,
                step.cpu_per_delivery_us(),
            )
            .note(format!("at {} msg/s", step.rate));
    }
    if let Some((rate, why, bound)) = &stopped_by {
        outcome.notes.push(format!(
            "stepping stopped at {rate} msg/s: {}{}",
            why.join("; "),
            if *bound { " (generator-bound)" } else { "" }
        ));
    }
    outcome.details = json!({
        "subscribers": plan.subscribers,
        "step_seconds": plan.step_seconds,
        "p99_limit_ms": plan.p99_limit_ms,
        "latency": latency_step,
        "steps": steps,
        "ignored_messages": live.pool.ignored(),
    });
    live.close().await
}
