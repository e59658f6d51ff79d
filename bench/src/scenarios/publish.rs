//! Publish throughput: closed loops over 16 keep-alive connections for a few seconds, first
//! with no subscriber (and the same from `wrk`, a neutral generator), then with 1,000 live
//! subscribers (whose deliveries are counted too, for information: a server that accepts
//! publishes faster than it delivers shows it here).

use std::time::Duration;

use serde_json::json;

use super::{describe_cpu, progress, Ctx, Live};
use crate::error::Result;
use crate::pool::wait_until;
use crate::publisher::{self, ClosedLoop};
use crate::servers::{Options, Server, ServerKind};
use crate::sys::CpuWindow;
use crate::table::{number, Better, Outcome};
use crate::wrk;

struct Plan {
    connections: usize,
    seconds: f64,
    wrk_seconds: u64,
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
            wrk_seconds: 1,
            max_requests: Some(20),
            subscribers: 100,
        }
    } else {
        Plan {
            connections: 16,
            seconds: 5.0,
            wrk_seconds: 5,
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

    let wrk_run = neutral(ctx, &server, &plan, outcome).await;

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
        "wrk": wrk_run,
        "loaded": loaded,
        "loaded_cpu": loaded_cpu,
        "loaded_delivery": delivery,
    });
    live.close().await
}

/// Each server's own publish request with a `ctx.size`-byte message, for `wrk`: path, content
/// type, body.
pub(super) fn wrk_request(ctx: &Ctx, kind: ServerKind) -> (String, &'static str, String) {
    let text = "x".repeat(ctx.size);
    match kind {
        ServerKind::Nchan | ServerKind::Minimal => {
            (format!("/pub?id={}", super::TOPIC), "text/plain", text)
        }
        ServerKind::Pushpin => (
            "/publish/".to_owned(),
            "application/json",
            crate::pushpin::publish_body(super::TOPIC, &text),
        ),
        _ => (
            "/api/messages".to_owned(),
            "application/json",
            serde_json::json!({"message": text, "topic": super::TOPIC}).to_string(),
        ),
    }
}

/// The same publishes without subscribers from `wrk` (the neutral generator issue 13 asks
/// for): `wrk -t1 -c<connections> -d<seconds>s`, each server's own publish request with a
/// 100-byte message. A missing `wrk` or a failed run is a note, not a failure.
async fn neutral(
    ctx: &Ctx,
    server: &Server,
    plan: &Plan,
    outcome: &mut Outcome,
) -> Option<wrk::Wrk> {
    if !wrk::available() {
        outcome
            .notes
            .push("wrk is not installed: no neutral-generator figure (apt-get install wrk)".into());
        return None;
    }
    let (path, content_type, body) = wrk_request(ctx, server.kind);
    let pids = server.pids();
    let window = CpuWindow::start(&pids);
    let result = wrk::post(
        &ctx.work.join(format!("publish-{}-wrk", server.kind.name())),
        server.publish_addr,
        (&path, content_type, &body),
        plan.connections,
        plan.wrk_seconds,
    )
    .await;
    let mut cpu = window.finish(&pids);
    match result {
        Ok(run) => {
            cpu.generator = run.cpu;
            progress(
                server.kind,
                "publish",
                &format!(
                    "wrk -t1 -c{} -d{}s, no subscribers: {} req/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx; {}",
                    plan.connections,
                    plan.wrk_seconds,
                    number(run.rate, 0),
                    run.p50_ms,
                    run.p99_ms,
                    run.non_2xx,
                    describe_cpu(&cpu)
                ),
            );
            if run.non_2xx > 0 {
                outcome
                    .problems
                    .push(format!("wrk got {} non-2xx answers", run.non_2xx));
            }
            outcome
                .metric(
                    "publish.wrk",
                    format!("publish, no subscribers, wrk -t1 -c{}", plan.connections),
                    "req/s",
                    Better::Higher,
                    Some(run.rate),
                )
                .cpu(&cpu)
                .note(format!("p99 {:.2} ms", run.p99_ms));
            Some(run)
        }
        Err(err) => {
            outcome.notes.push(format!("wrk: {err}"));
            None
        }
    }
}
