//! Mercure pattern matching per publish (ssehub only; nchan has no Mercure endpoint). What a
//! publish costs as the number of distinct URI templates (or URL patterns) subscribed grows.
//!
//! One fresh server per selector kind (URI template `topic=…/{id}`, then `match_urlpattern=…/:id`)
//! with one subscriber whose selector matches the published topics, then 1, 100 and 10,000
//! more subscribers, each with its own distinct selector of the same kind that matches none of
//! them (`https://bench.test/t/{id}/n<i>`: the same prefix as the matching one, so each really
//! has to be evaluated). At each size, closed loops over a few keep-alive connections publish
//! for a few seconds:
//!
//! - `same topic`: every publish to `https://bench.test/t/1`. The hub remembers, per topic,
//!   which selectors match it, so this should cost the same with 10,000 selectors as with one;
//! - `fresh topic`: publish `n` to `https://bench.test/t/1-<n>`, a topic never seen, so every
//!   publish evaluates every selector: the uncached cost, shown as it is.
//!
//! Measured: publishes/s, the time to each answer (p50/p99), and the server's CPU per publish.
//! The matching subscriber must get every publish exactly once, and the others none (a
//! delivery to a non-matching selector is a wrong match). The server runs with
//! `--max-topics 1000000`: 10,001 distinct selectors exceed the default cap of 10,000 distinct
//! topics and patterns, and so would the fresh topics.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::{describe_cpu, progress, Ctx, Live, OPEN_TIMEOUT};
use crate::bail;
use crate::client::Target;
use crate::error::Result;
use crate::mercure::{self, Selector};
use crate::pool::{wait_until, Delivery, Pool};
use crate::publisher::{self, ClosedLoop};
use crate::servers::{Options, ServerKind};
use crate::sys::{CpuShare, CpuWindow};
use crate::table::{number, Better, Outcome};

const NAME: &str = "mercure-patterns";
/// `--max-topics` of the server.
const MAX_TOPICS: usize = 1_000_000;

struct Plan {
    /// Non-matching selectors subscribed at each size.
    levels: Vec<usize>,
    connections: usize,
    seconds: f64,
    max_requests: Option<u64>,
}

fn plan(smoke: bool) -> Plan {
    if smoke {
        Plan {
            levels: vec![1, 100],
            connections: 4,
            seconds: 10.0,
            max_requests: Some(20),
        }
    } else {
        Plan {
            levels: vec![1, 100, 10_000],
            connections: 4,
            seconds: 4.0,
            max_requests: None,
        }
    }
}

/// One closed-loop run.
#[derive(Debug, Serialize)]
struct Run {
    selector: Selector,
    /// Non-matching subscribers asked for.
    non_matching: usize,
    /// Non-matching subscribers open.
    non_matching_open: usize,
    fresh_topic: bool,
    publish: ClosedLoop,
    cpu: CpuShare,
    /// Server CPU time per accepted publish, µs.
    server_us_per_publish: Option<f64>,
    /// What the matching subscriber got.
    matching: Delivery,
    /// Deliveries to non-matching subscribers (wrong matches).
    strays: u64,
    drained: bool,
}

/// Runs both selector kinds on `kind`.
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let plan = plan(ctx.smoke);
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    for selector in [Selector::Template, Selector::UrlPattern] {
        if let Err(err) = measure(ctx, kind, selector, &plan, &mut runs, outcome).await {
            progress(kind, NAME, &format!("{}: error: {err}", selector.name()));
            errors.push(format!("{}: {err}", selector.name()));
        }
    }
    report(&runs, outcome);
    outcome.details = json!({
        "connections": plan.connections,
        "seconds": plan.seconds,
        "max_requests": plan.max_requests,
        "max_topics": MAX_TOPICS,
        "runs": runs,
    });
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}

async fn measure(
    ctx: &Ctx,
    kind: ServerKind,
    selector: Selector,
    plan: &Plan,
    runs: &mut Vec<Run>,
    outcome: &mut Outcome,
) -> Result<()> {
    let name = format!("{NAME}-{}", selector.name());
    let options = Options {
        max_topics: Some(MAX_TOPICS),
        ..Options::default()
    };
    let server = ctx.start(&name, kind, options).await?;
    let addr = server.addr;
    let same = ctx.mercure_target(&server, mercure::TOPIC, false);
    let fresh = ctx.mercure_target(&server, mercure::TOPIC, true);
    let path = selector.matching_path();
    let mut live = Live::open_on(ctx, server, &path, same.clone(), 1, outcome).await?;
    let decoys = Pool::new(ctx.clock);
    let mut opened = 0;
    let duration = Duration::from_secs_f64(plan.seconds);
    for &level in &plan.levels {
        for index in opened..level {
            let target = Target::get(addr, &selector.decoy_path(index), OPEN_TIMEOUT);
            decoys.spawn(&target, 1);
        }
        opened = level;
        let limit = Duration::from_secs(30) + Duration::from_millis(3 * level as u64);
        let got = decoys.wait_connected(limit).await;
        if got.open < level {
            let text = format!(
                "{name}: only {} of {level} non-matching subscribers connected ({} failed, {} closed): {}",
                got.open,
                got.failed,
                got.closed,
                decoys.errors().join("; ")
            );
            outcome.problems.push(text.clone());
            if got.open == 0 {
                bail!("{text}");
            }
        }
        progress(
            kind,
            &name,
            &format!(
                "1 matching + {} non-matching {} subscribers open",
                got.open,
                selector.name()
            ),
        );
        for fresh_topic in [false, true] {
            live.server.check_alive()?;
            let target = if fresh_topic { &fresh } else { &same };
            let lo = ctx.seq.get();
            live.pool.begin_step(lo, u64::MAX);
            decoys.begin_step(lo, u64::MAX);
            let pids = live.server.pids();
            let window = CpuWindow::start(&pids);
            let publish = publisher::closed_loop(
                target,
                ctx.clock,
                &ctx.seq,
                plan.connections,
                duration,
                plan.max_requests,
            )
            .await;
            let cpu = window.finish(&pids);
            let expected = publish.published;
            let drained =
                wait_until(Duration::from_secs(5), || live.pool.delivered() >= expected).await;
            let matching = live.pool.end_step(expected);
            let strays = decoys.delivered();
            decoys.end_step(0);
            // The server's CPU time is counted in 10 ms ticks: nothing to say of a short run.
            let server_us_per_publish = (expected > 0 && publish.seconds >= 0.5)
                .then(|| cpu.server * publish.seconds * 1e6 / expected as f64);
            let what = format!(
                "{name}, {level} non-matching, {} topic",
                if fresh_topic { "fresh" } else { "same" }
            );
            progress(
                kind,
                &name,
                &format!(
                    "{} non-matching, {} topic: {} publishes in {:.2} s over {} conns: {} /s, answer p50 {:.2} ms p99 {:.2} ms, {} µs server CPU/publish; matching subscriber got {} of {expected} ({} dup){}, non-matching got {strays}{} | {}",
                    level,
                    if fresh_topic { "fresh" } else { "same" },
                    publish.published,
                    publish.seconds,
                    publish.connections,
                    number(publish.rate, 0),
                    publish.latency.p50_ms,
                    publish.latency.p99_ms,
                    server_us_per_publish.map_or("-".into(), |us| format!("{us:.1}")),
                    matching.delivered,
                    matching.duplicates,
                    if drained { "" } else { " (not drained in 5 s)" },
                    publish
                        .error
                        .as_ref()
                        .map_or(String::new(), |e| format!(", error: {e}")),
                    describe_cpu(&cpu),
                ),
            );
            if let Some(err) = &publish.error {
                outcome
                    .problems
                    .push(format!("{what}: publish failed: {err}"));
            }
            if publish.rejected > 0 {
                outcome
                    .problems
                    .push(format!("{what}: {} publishes rejected", publish.rejected));
            }
            if matching.duplicates > 0 {
                outcome.problems.push(format!(
                    "{what}: {} duplicate deliveries",
                    matching.duplicates
                ));
            }
            if matching.lost > 0 {
                let text = format!(
                    "{what}: the matching subscriber missed {} of {expected} publishes",
                    matching.lost
                );
                if ctx.smoke {
                    outcome.problems.push(text);
                } else {
                    outcome.notes.push(text);
                }
            }
            if strays > 0 {
                outcome.problems.push(format!(
                    "{what}: non-matching subscribers received {strays} events (wrong matches)"
                ));
            }
            runs.push(Run {
                selector,
                non_matching: level,
                non_matching_open: got.open,
                fresh_topic,
                publish,
                cpu,
                server_us_per_publish,
                matching,
                strays,
                drained,
            });
        }
    }
    let late = decoys.ignored();
    if late > 0 {
        outcome.problems.push(format!(
            "{name}: non-matching subscribers received {late} events outside the measured runs (wrong matches)"
        ));
    }
    decoys.close().await;
    live.close().await
}

/// One row per selector kind, size and topic mode: publishes/s, with the answer p99 and the
/// server CPU per publish beside it (and, past the first size, the ratio to it).
fn report(runs: &[Run], outcome: &mut Outcome) {
    for run in runs {
        let mode = if run.fresh_topic { "fresh" } else { "same" };
        let kind = match run.selector {
            Selector::Template => "URI templates",
            Selector::UrlPattern => "URL patterns",
            Selector::Exact => "exact topics",
        };
        let first = runs
            .iter()
            .find(|r| r.selector == run.selector && r.fresh_topic == run.fresh_topic)
            .filter(|r| r.non_matching != run.non_matching);
        let ratio = first.map_or(String::new(), |f| {
            format!(
                "; {:.2}x of {} non-matching",
                run.publish.rate / f.publish.rate.max(1e-9),
                f.non_matching
            )
        });
        outcome
            .metric(
                format!(
                    "{NAME}.{}.{}.{mode}",
                    run.selector.name(),
                    run.non_matching
                ),
                format!(
                    "Mercure publish ({} conns), 1 matching + {} non-matching {kind}, {mode} topic each publish",
                    run.publish.connections,
                    number(run.non_matching as f64, 0)
                ),
                "publishes/s",
                Better::Higher,
                Some(run.publish.rate),
            )
            .cpu(&run.cpu)
            .note(format!(
                "p99 {:.2} ms, {} µs server CPU each{ratio}",
                run.publish.latency.p99_ms,
                run.server_us_per_publish
                    .map_or("-".into(), |us| format!("{us:.1}")),
            ));
    }
}
