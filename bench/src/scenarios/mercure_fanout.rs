//! Mercure fan-out (ssehub only; nchan has no Mercure endpoint): the method of `fanout-10k`
//! (N live subscribers on one topic, latency at 10 messages/s, then stepped rates until a step
//! loses or repeats a delivery, falls 5 % short of its rate or has p99 over 500 ms) run four
//! times, each on a fresh server:
//!
//! 1. `native`: `GET /stream?mode=live&topic=bench`, `POST /api/messages`: the baseline;
//! 2. `exact`: `GET /.well-known/mercure?topic=https://bench.test/t/1`;
//! 3. `template`: `?topic=https://bench.test/t/{id}` (a URI template);
//! 4. `urlpattern`: `?match_urlpattern=https://bench.test/t/:id`;
//!
//! the Mercure ones publishing `POST /.well-known/mercure` with `topic=https://bench.test/t/1`.
//! Every Mercure row carries its ratio to the native figure (the target: exact selectors
//! within 10 % of native); the rates from 20 msg/s on are about 10 % apart, so that a 10 %
//! difference in the maximum shows. Besides the maximum and the latency, the server's CPU
//! time per delivery in the latency phase (10 msg/s: each delivery is then one write of one
//! frame, nothing batched) compares the cost of the two paths, and the server's RSS growth
//! per stream once every subscriber is connected and warm compares their memory.

use std::time::Duration;

use serde_json::json;

use super::fanout::{check_integrity, climb, Ladder};
use super::{describe_step, progress, wait_quiet, Ctx, Live, Step};
use crate::bail;
use crate::error::Result;
use crate::mercure::{self, Selector};
use crate::servers::{Options, ServerKind};
use crate::table::{number, Better, Outcome};

const NAME: &str = "mercure-fanout";
const P99_LIMIT_MS: f64 = 500.0;
/// Rate of the latency phase, messages/s.
const LATENCY_RATE: f64 = 10.0;

/// How the subscribers subscribe and the publisher publishes.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Native,
    Mercure(Selector),
}

const VARIANTS: [Variant; 4] = [
    Variant::Native,
    Variant::Mercure(Selector::Exact),
    Variant::Mercure(Selector::Template),
    Variant::Mercure(Selector::UrlPattern),
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Mercure(selector) => selector.name(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Native => "native /stream",
            Self::Mercure(selector) => selector.label(),
        }
    }
}

struct Plan {
    subscribers: usize,
    latency_seconds: f64,
    rates: Vec<f64>,
    step_seconds: f64,
    drain: Duration,
}

fn plan(smoke: bool) -> Plan {
    if smoke {
        Plan {
            subscribers: 100,
            latency_seconds: 1.0,
            rates: vec![20.0],
            step_seconds: 1.0,
            drain: Duration::from_secs(3),
        }
    } else {
        Plan {
            subscribers: 10_000,
            latency_seconds: 10.0,
            // About 10 % apart from 20 msg/s on.
            rates: vec![
                20.0, 22.0, 25.0, 28.0, 31.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0, 66.0, 73.0, 80.0,
                90.0, 100.0, 110.0, 120.0, 135.0, 150.0, 165.0, 180.0, 200.0, 220.0, 250.0,
            ],
            step_seconds: 5.0,
            drain: Duration::from_secs(3),
        }
    }
}

/// What one variant measured.
struct Measured {
    variant: Variant,
    subscribers_open: usize,
    /// RSS growth per open stream after the warm-up, KiB.
    rss_per_stream_kib: Option<f64>,
    latency: Step,
    ladder: Ladder,
    ignored: u64,
}

impl Measured {
    fn best(&self) -> Option<&Step> {
        self.ladder.best.map(|i| &self.ladder.steps[i])
    }

    /// Server CPU time per delivery in the latency phase, µs (none for a window too short
    /// for the 10 ms ticks the time is counted in).
    fn cpu_per_delivery(&self) -> Option<f64> {
        self.latency.cpu_per_delivery_us()
    }
}

/// Runs the four fan-outs on `kind`.
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let plan = plan(ctx.smoke);
    let mut measured = Vec::new();
    let mut errors = Vec::new();
    for (i, &variant) in VARIANTS.iter().enumerate() {
        if i > 0 && !ctx.smoke {
            wait_quiet(ctx, outcome).await;
        }
        match measure(ctx, kind, variant, &plan, outcome).await {
            Ok(m) => measured.push(m),
            Err(err) => {
                progress(kind, NAME, &format!("{}: error: {err}", variant.name()));
                errors.push(format!("{}: {err}", variant.name()));
            }
        }
    }
    report(&plan, &measured, outcome);
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}

async fn measure(
    ctx: &Ctx,
    kind: ServerKind,
    variant: Variant,
    plan: &Plan,
    outcome: &mut Outcome,
) -> Result<Measured> {
    let name = format!("{NAME}-{}", variant.name());
    let server = ctx.start(&name, kind, Options::default()).await?;
    let base_kib = server.rss_kib()?;
    let mut live = match variant {
        Variant::Native => Live::open(ctx, server, plan.subscribers, outcome).await?,
        Variant::Mercure(selector) => {
            let target = ctx.mercure_target(&server, mercure::TOPIC, false);
            let path = selector.matching_path();
            Live::open_on(ctx, server, &path, target, plan.subscribers, outcome).await?
        }
    };
    let subscribers_open = live.pool.connections().open;
    // Memory per stream: the growth of the fresh server's RSS with every stream open and
    // warmed up (one event delivered, nothing queued), as the idle scenario reads it.
    let rss_per_stream_kib = (subscribers_open > 0).then(|| {
        let now = live.server.rss_kib().unwrap_or(base_kib);
        now.saturating_sub(base_kib) as f64 / subscribers_open as f64
    });
    progress(
        kind,
        &name,
        &format!(
            "{subscribers_open} subscribers connected and warm; RSS {} KiB per stream",
            rss_per_stream_kib.map_or("-".into(), |k| format!("{k:.1}"))
        ),
    );
    let latency = live
        .step(ctx, LATENCY_RATE, plan.latency_seconds, plan.drain)
        .await?;
    progress(
        kind,
        &name,
        &format!("latency: {}", describe_step(&latency)),
    );
    check_integrity(ctx, &latency, &format!("{name}: latency phase"), outcome);
    if latency.delivery.lost > 0 {
        outcome.notes.push(format!(
            "{name}: latency phase lost {} deliveries",
            latency.delivery.lost
        ));
    }
    let ladder = climb(
        ctx,
        &mut live,
        kind,
        &name,
        &plan.rates,
        plan.step_seconds,
        plan.drain,
        P99_LIMIT_MS,
        outcome,
    )
    .await?;
    if let Some((rate, why, bound)) = &ladder.stopped_by {
        outcome.notes.push(format!(
            "{name}: stepping stopped at {rate} msg/s: {}{}",
            why.join("; "),
            if *bound { " (generator-bound)" } else { "" }
        ));
    }
    let ignored = live.pool.ignored();
    live.close().await?;
    Ok(Measured {
        variant,
        subscribers_open,
        rss_per_stream_kib,
        latency,
        ladder,
        ignored,
    })
}

/// ` ; 0.98x native` (empty without a native figure).
fn versus(value: Option<f64>, native: Option<f64>) -> String {
    match (value, native) {
        (Some(v), Some(n)) if n > 0.0 => format!("; {:.2}x native", v / n),
        _ => String::new(),
    }
}

/// The rows: per variant p99 at 10 msg/s, the maximum, the server CPU per delivery at
/// 10 msg/s and the memory per stream, each Mercure one with its ratio to native.
fn report(plan: &Plan, measured: &[Measured], outcome: &mut Outcome) {
    let subs = number(plan.subscribers as f64, 0);
    let native = measured
        .iter()
        .find(|m| matches!(m.variant, Variant::Native));
    let native_p99 = native.map(|m| m.latency.delivery.latency.p99_ms);
    let native_max = native.and_then(|m| m.best().map(|s| s.delivered_per_s));
    let native_cpu = native.and_then(Measured::cpu_per_delivery);
    let native_rss = native.and_then(|m| m.rss_per_stream_kib);
    for m in measured {
        let v = m.variant;
        let is_native = matches!(v, Variant::Native);
        let reference = |x: Option<f64>| if is_native { None } else { x };
        let l = m.latency.delivery.latency;
        outcome
            .metric(
                format!("{NAME}.{}.p99", v.name()),
                format!(
                    "{}: latency at {LATENCY_RATE} msg/s, {subs} subs: p99",
                    v.label()
                ),
                "ms",
                Better::Lower,
                Some(l.p99_ms),
            )
            .cpu(&m.latency.cpu)
            .note(format!(
                "p50 {:.1} ms{}",
                l.p50_ms,
                versus(Some(l.p99_ms), reference(native_p99))
            ));

        let best = m.best();
        let max = best.map(|s| s.delivered_per_s);
        let metric = outcome.metric(
            format!("{NAME}.{}.max", v.name()),
            format!(
                "{}: fan-out {subs} subs, max delivered (no loss, p99 < {P99_LIMIT_MS} ms)",
                v.label()
            ),
            "ev/s",
            Better::Higher,
            max,
        );
        let failed = m
            .ladder
            .steps
            .last()
            .filter(|_| m.ladder.stopped_by.is_some());
        for step in best.iter().chain(failed.iter()) {
            metric.cpu(&step.cpu);
        }
        let at = match best {
            Some(step) if m.ladder.stopped_by.is_none() => {
                format!("at {} msg/s, highest step tried", step.rate)
            }
            Some(step) => format!("at {} msg/s", step.rate),
            None => format!("failed at {} msg/s", plan.rates[0]),
        };
        metric.note(format!("{at}{}", versus(max, reference(native_max))));

        let cpu = m.cpu_per_delivery();
        if cpu.is_some() {
            let text = versus(cpu, reference(native_cpu));
            outcome
                .metric(
                    format!("{NAME}.{}.cpu", v.name()),
                    format!(
                        "{}: server CPU per delivery at {LATENCY_RATE} msg/s, {subs} subs",
                        v.label()
                    ),
                    "µs",
                    Better::Lower,
                    cpu,
                )
                .cpu(&m.latency.cpu)
                .note(format!(
                    "server at {:.0} % of its core{text}",
                    m.latency.cpu.server * 100.0
                ));
        }
        let rss = m.rss_per_stream_kib;
        outcome
            .metric(
                format!("{NAME}.{}.rss", v.name()),
                format!(
                    "{}: RSS per stream, {subs} streams open and warm",
                    v.label()
                ),
                "KiB",
                Better::Lower,
                rss,
            )
            .note(
                versus(rss, reference(native_rss))
                    .trim_start_matches("; ")
                    .to_owned(),
            );
        if !is_native && native.is_some() {
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                _ => "n/a".to_owned(),
            };
            outcome.notes.push(format!(
                "{} vs native: max delivered {}, p99 at {LATENCY_RATE} msg/s {}, server CPU per delivery at {LATENCY_RATE} msg/s {}, RSS per stream {}",
                v.label(),
                ratio(max, native_max),
                ratio(Some(l.p99_ms), native_p99),
                ratio(cpu, native_cpu),
                ratio(rss, native_rss),
            ));
        }
    }
    outcome.details = json!({
        "subscribers": plan.subscribers,
        "step_seconds": plan.step_seconds,
        "p99_limit_ms": P99_LIMIT_MS,
        "rates": plan.rates,
        "variants": measured.iter().map(|m| json!({
            "variant": m.variant.name(),
            "subscribers_open": m.subscribers_open,
            "rss_per_stream_kib": m.rss_per_stream_kib,
            "latency": m.latency,
            "steps": m.ladder.steps,
            "ignored_messages": m.ignored,
        })).collect::<Vec<_>>(),
    });
}
