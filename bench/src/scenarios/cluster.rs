//! Cluster (ssehub only): two ssehub nodes on one redis-server, every process on the server
//! CPU. Publishes go to node A; the subscribers are split evenly over A and B, so half of them
//! get each event through Redis' pub/sub and the other node. Measured as the 1,000-subscriber
//! fan-out is: latency at 10 messages/s, then stepped rates until a step loses, duplicates,
//! falls 5 % short of its rate or has p99 over 100 ms. Compare with `fanout-1k` (one node).

use std::time::Duration;

use serde_json::json;

use super::{describe_step, progress, Ctx, Live, Step};
use crate::error::Result;
use crate::servers::{Options, ServerKind};
use crate::table::{number, Better, Outcome};

const P99_LIMIT_MS: f64 = 100.0;

/// Runs the cluster scenario.
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let (subscribers, rates, seconds): (usize, Vec<f64>, f64) = if ctx.smoke {
        (100, vec![20.0], 1.0)
    } else {
        (
            1_000,
            vec![
                100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1200.0, 1500.0, 2000.0,
            ],
            4.0,
        )
    };
    let redis = ctx
        .start("cluster-redis", ServerKind::Redis, Options::default())
        .await?;
    let options = Options {
        broker: Some(format!("redis://{}/0", redis.addr)),
        ..Options::default()
    };
    let node_a = ctx.start("cluster-a", kind, options.clone()).await?;
    let node_b = ctx.start("cluster-b", kind, options).await?;
    let mut live =
        Live::open_spread(ctx, node_a, vec![node_b, redis], 1, subscribers, outcome).await?;
    progress(
        kind,
        "cluster",
        &format!(
            "{} subscribers on 2 nodes connected and warm",
            live.pool.connections().open
        ),
    );
    let drain = Duration::from_secs(3);
    let latency = live
        .step(ctx, 10.0, if ctx.smoke { 1.0 } else { 10.0 }, drain)
        .await?;
    progress(
        kind,
        "cluster",
        &format!("latency: {}", describe_step(&latency)),
    );
    if latency.delivery.lost > 0 || latency.delivery.duplicates > 0 {
        outcome.problems.push(format!(
            "latency phase: {} lost, {} duplicates",
            latency.delivery.lost, latency.delivery.duplicates
        ));
    }
    let subs = number(subscribers as f64, 0);
    let l = latency.delivery.latency;
    for (key, quantile, value) in [
        ("cluster.p50", "p50", l.p50_ms),
        ("cluster.p99", "p99", l.p99_ms),
    ] {
        outcome
            .metric(
                key,
                format!(
                    "2-node cluster, {subs} subs split, 10 msg/s: publish-to-delivery {quantile}"
                ),
                "ms",
                Better::Lower,
                Some(value),
            )
            .cpu(&latency.cpu);
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut best = None;
    for &rate in &rates {
        let step = live.step(ctx, rate, seconds, drain).await?;
        let d = &step.delivery;
        let short = step
            .schedule
            .as_ref()
            .is_none_or(|s| s.achieved_rate < 0.95 * rate || s.rejected > 0);
        let failed = d.lost > 0
            || d.duplicates > 0
            || step.error.is_some()
            || short
            || d.latency.p99_ms > P99_LIMIT_MS;
        progress(
            kind,
            "cluster",
            &format!(
                "{} => {}",
                describe_step(&step),
                if failed { "not sustained" } else { "sustained" }
            ),
        );
        if d.duplicates > 0 {
            outcome.problems.push(format!(
                "{rate} msg/s: {} duplicate deliveries",
                d.duplicates
            ));
        }
        if ctx.smoke && (d.lost > 0 || step.error.is_some()) {
            outcome
                .problems
                .push(format!("{rate} msg/s: {} deliveries lost", d.lost));
        }
        if !failed {
            best = Some(steps.len());
        }
        steps.push(step);
        if failed {
            break;
        }
    }
    let best = best.map(|i| &steps[i]);
    let metric = outcome.metric(
        "cluster.max",
        format!(
            "2-node cluster, {subs} subs split: max delivered (no loss, p99 < {P99_LIMIT_MS} ms)"
        ),
        "ev/s",
        Better::Higher,
        best.map(|s| s.delivered_per_s),
    );
    if let Some(step) = best {
        metric.cpu(&step.cpu);
        metric.note(format!("at {} msg/s", step.rate));
    }
    outcome.details = json!({
        "subscribers": subscribers,
        "nodes": 2,
        "latency": latency,
        "steps": steps,
    });
    live.close().await
}
