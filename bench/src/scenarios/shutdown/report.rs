//! The shutdown scenario's per-client figures: who saw `close` and the end of the response,
//! when (after the signal), the spread of live streams' closes, how bursts ended, and the
//! `retry:` hints.

use serde_json::json;

use super::{first_error, State};
use crate::scenarios::progress;
use crate::servers::ServerKind;
use crate::stats::Histogram;
use crate::table::{number, Better, Outcome};

/// Per-client figures: closes, ends, hints.
pub(super) fn clients(
    kind: ServerKind,
    outcome: &mut Outcome,
    state: &State,
    signal_us: u64,
    open: usize,
) {
    let mut live_close = Histogram::new();
    let mut burst_close = Histogram::new();
    let mut end = Histogram::new();
    let (mut closed, mut ended, mut retry_min, mut retry_max) = (0, 0, u64::MAX, 0);
    let (mut complete, mut shutdown, mut short_bursts) = (0, 0, 0);
    for c in state.clients.iter().filter(|c| c.open) {
        if let Some(at) = c.close_us {
            closed += 1;
            let after = at.saturating_sub(signal_us);
            if c.live {
                live_close.record(after);
                if let Some(retry) = c.retry_ms {
                    retry_min = retry_min.min(retry);
                    retry_max = retry_max.max(retry);
                }
            } else {
                burst_close.record(after);
                match c.close_status.as_deref() {
                    Some("complete") => complete += 1,
                    Some("shutdown") => shutdown += 1,
                    _ => {}
                }
                if c.close_status.as_deref() == Some("complete") && c.copies < 3 {
                    short_bursts += 1;
                }
            }
        }
        if let Some(at) = c.end_us {
            ended += 1;
            end.record(at.saturating_sub(signal_us));
        }
    }
    let live = live_close.summary();
    let bursts = burst_close.summary();
    let ends = end.summary();
    let quantile_ms = |h: &Histogram, q: f64| h.quantile(q) as f64 / 1000.0;
    progress(
        kind,
        "shutdown",
        &format!(
            "{closed} of {open} saw close, {ended} saw the end of the response; live closes after SIGTERM: first {:.0} ms, p10 {:.0}, p50 {:.0}, p90 {:.0}, last {:.0} ms; bursts: {complete} complete, {shutdown} shut down, last close {:.0} ms; last end {:.0} ms; retry hint {}..{} ms",
            quantile_ms(&live_close, 0.0),
            quantile_ms(&live_close, 0.1),
            live.p50_ms,
            live.p90_ms,
            live.max_ms,
            bursts.max_ms,
            ends.max_ms,
            if retry_max > 0 { retry_min } else { 0 },
            retry_max,
        ),
    );
    if closed < open || ended < open {
        outcome.problems.push(format!(
            "of {open} open streams {} got no close event and {} no end of response: {}",
            open - closed,
            open - ended,
            first_error(state).unwrap_or_default()
        ));
    }
    if short_bursts > 0 {
        outcome.problems.push(format!(
            "{short_bursts} bursts closed as complete without their 3 copies"
        ));
    }
    outcome
        .metric(
            "shutdown.closed",
            "shutdown: clients that saw close",
            "clients",
            Better::Higher,
            Some(closed as f64),
        )
        .note(format!("of {open}; {ended} saw the end"));
    for (key, label, value) in [
        ("first", "first", quantile_ms(&live_close, 0.0)),
        ("p50", "p50", live.p50_ms),
        ("p90", "p90", live.p90_ms),
        ("last", "last", live.max_ms),
    ] {
        outcome.metric(
            format!("shutdown.live_close.{key}"),
            format!("shutdown: live stream close after SIGTERM, {label}"),
            "ms",
            Better::Lower,
            Some(value),
        );
    }
    outcome
        .metric(
            "shutdown.burst_close.last",
            "shutdown: burst close after SIGTERM, last",
            "ms",
            Better::Lower,
            Some(bursts.max_ms),
        )
        .note(format!("{complete} complete, {shutdown} shut down"));
    outcome.metric(
        "shutdown.end.last",
        "shutdown: last response end after SIGTERM",
        "ms",
        Better::Lower,
        Some(ends.max_ms),
    );
    outcome
        .metric(
            "shutdown.retry",
            "shutdown: retry hint with close, live (min)",
            "ms",
            Better::Higher,
            (retry_max > 0).then_some(retry_min as f64),
        )
        .note(format!("max {}", number(retry_max as f64, 0)));
    outcome.details = json!({
        "streams": state.clients.len(),
        "open": open,
        "closed": closed,
        "ended": ended,
        "live_close_after_signal": live,
        "live_close_deciles_ms": (0..=10).map(|d| quantile_ms(&live_close, d as f64 / 10.0)).collect::<Vec<_>>(),
        "burst_close_after_signal": bursts,
        "bursts_complete": complete,
        "bursts_shut_down": shutdown,
        "end_after_signal": ends,
        "retry_hint_ms": [retry_min, retry_max],
    });
}
