//! The durable store's publish cost (ssehub only): the same publishes with history in memory,
//! with `--data-dir` and `--fsync interval`, and with `--data-dir` and `--fsync always` (the
//! default), each on a fresh server, side by side in one run. For each: our closed loop (16
//! keep-alive connections, 5 s) without subscribers, `wrk -t1 -c16 -d5s` posting the same
//! 100-byte JSON publish, then our closed loop again with 1,000 live subscribers (deliveries
//! counted). Publishes/s and p99 of the time to the answer; the store's folder is on the same
//! disk as `target/`, so `always` measures that disk's fsync.

use std::time::Duration;

use serde_json::json;

use super::{describe_cpu, progress, Ctx, Live, TOPIC};
use crate::error::Result;
use crate::pool::wait_until;
use crate::publisher::{self, ClosedLoop};
use crate::servers::{Options, ServerKind};
use crate::sys::CpuWindow;
use crate::table::{number, Better, Outcome};
use crate::wrk;

/// Where history is kept.
const VARIANTS: [(&str, &str, &[&str]); 3] = [
    ("memory", "memory", &[]),
    (
        "interval",
        "--data-dir, --fsync interval",
        &["--fsync", "interval"],
    ),
    (
        "always",
        "--data-dir, --fsync always",
        &["--fsync", "always"],
    ),
];

struct Plan {
    connections: usize,
    seconds: f64,
    max_requests: Option<u64>,
    wrk_seconds: u64,
    subscribers: usize,
}

fn describe(run: &ClosedLoop) -> String {
    format!(
        "{} req/s, p50 {:.2} ms, p99 {:.2} ms ({} published, {} rejected{})",
        number(run.rate, 0),
        run.latency.p50_ms,
        run.latency.p99_ms,
        run.published,
        run.rejected,
        run.error
            .as_ref()
            .map_or(String::new(), |e| format!(", error: {e}"))
    )
}

/// Runs the store scenario on `kind` (ssehub only).
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let plan = if ctx.smoke {
        Plan {
            connections: 4,
            seconds: 10.0,
            max_requests: Some(20),
            wrk_seconds: 1,
            subscribers: 100,
        }
    } else {
        Plan {
            connections: 16,
            seconds: 5.0,
            max_requests: None,
            wrk_seconds: 5,
            subscribers: 1_000,
        }
    };
    let has_wrk = wrk::available();
    if !has_wrk {
        outcome
            .notes
            .push("wrk is not installed: its rows are empty (apt-get install wrk)".into());
    }
    let duration = Duration::from_secs_f64(plan.seconds);
    let mut details = Vec::new();
    for (key, label, flags) in VARIANTS {
        let dir = ctx.work.join(format!("store-{key}"));
        let mut args: Vec<String> = Vec::new();
        if key != "memory" {
            args.push("--data-dir".into());
            args.push(dir.join("data").display().to_string());
            args.extend(flags.iter().map(|f| (*f).to_owned()));
        }
        let server = ctx
            .start(
                &format!("store-{key}"),
                kind,
                Options {
                    args,
                    ..Options::default()
                },
            )
            .await?;
        let target = ctx.publish_target(&server, TOPIC);
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
            "store",
            &format!(
                "{label}, no subscribers: {}; {}",
                describe(&alone),
                describe_cpu(&alone_cpu)
            ),
        );
        if let Some(err) = &alone.error {
            outcome.problems.push(format!("{label}: publishing: {err}"));
        }
        outcome
            .metric(
                format!("store.{key}.alone"),
                format!(
                    "store {label}: publishes, no subscribers ({} conns)",
                    plan.connections
                ),
                "req/s",
                Better::Higher,
                Some(alone.rate),
            )
            .cpu(&alone_cpu)
            .note(format!("p99 {:.2} ms", alone.latency.p99_ms));

        let wrk_run = if has_wrk {
            let body = json!({"message": "x".repeat(ctx.size), "topic": TOPIC}).to_string();
            let window = CpuWindow::start(&pids);
            let result = wrk::post(
                &dir.join("wrk"),
                server.addr,
                ("/api/messages", "application/json", &body),
                plan.connections,
                plan.wrk_seconds,
            )
            .await;
            let cpu = window.finish(&pids);
            match result {
                Ok(run) => {
                    progress(
                        kind,
                        "store",
                        &format!(
                            "{label}, wrk -t1 -c{} -d{}s: {} req/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx; wrk CPU {:.0}%, server {:.0}%",
                            plan.connections,
                            plan.wrk_seconds,
                            number(run.rate, 0),
                            run.p50_ms,
                            run.p99_ms,
                            run.non_2xx,
                            run.cpu * 100.0,
                            cpu.server * 100.0
                        ),
                    );
                    if run.non_2xx > 0 {
                        outcome
                            .problems
                            .push(format!("{label}: wrk got {} non-2xx answers", run.non_2xx));
                    }
                    let mut flags = cpu;
                    flags.generator = run.cpu;
                    outcome
                        .metric(
                            format!("store.{key}.wrk"),
                            format!("store {label}: publishes, wrk -t1 -c{}", plan.connections),
                            "req/s",
                            Better::Higher,
                            Some(run.rate),
                        )
                        .cpu(&flags)
                        .note(format!("p99 {:.2} ms", run.p99_ms));
                    Some(run)
                }
                Err(err) => {
                    outcome.notes.push(format!("{label}: wrk: {err}"));
                    None
                }
            }
        } else {
            None
        };

        let live = Live::open(ctx, server, plan.subscribers, outcome).await?;
        let subscribers = live.pool.len() as u64;
        live.pool.begin_step(ctx.seq.get(), u64::MAX);
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
        wait_until(Duration::from_secs(5), || live.pool.delivered() >= expected).await;
        let loaded_cpu = window.finish(&pids);
        let delivery = live.pool.end_step(loaded.published);
        progress(
            kind,
            "store",
            &format!(
                "{label}, {subscribers} subscribers: {}; delivered {} of {expected}, {} duplicates; {}",
                describe(&loaded),
                delivery.delivered,
                delivery.duplicates,
                describe_cpu(&loaded_cpu)
            ),
        );
        if delivery.duplicates > 0 || (ctx.smoke && delivery.lost > 0) {
            outcome.problems.push(format!(
                "{label}: {} lost, {} duplicate deliveries",
                delivery.lost, delivery.duplicates
            ));
        }
        if let Some(err) = &loaded.error {
            outcome
                .problems
                .push(format!("{label}: publishing with subscribers: {err}"));
        }
        outcome
            .metric(
                format!("store.{key}.loaded"),
                format!(
                    "store {label}: publishes, {} subscribers ({} conns)",
                    number(plan.subscribers as f64, 0),
                    plan.connections
                ),
                "req/s",
                Better::Higher,
                Some(loaded.rate),
            )
            .cpu(&loaded_cpu)
            .note(format!("p99 {:.2} ms", loaded.latency.p99_ms));
        details.push(json!({
            "variant": label,
            "alone": alone,
            "alone_cpu": alone_cpu,
            "wrk": wrk_run,
            "loaded": loaded,
            "loaded_cpu": loaded_cpu,
            "loaded_delivery": delivery,
        }));
        live.close().await?;
    }
    outcome.details = json!({ "variants": details });
    Ok(())
}
