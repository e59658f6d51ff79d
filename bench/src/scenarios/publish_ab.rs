//! Publishing without subscribers, ssehub and nginx + nchan measured in alternation: both
//! servers run at once (each pinned to the server core, only one loaded at a time) and `wrk`
//! posts to one, then the other, for several short rounds, the order swapped every round.
//!
//! Why: on a shared VM the speed of a core drifts by tens of percent over minutes (the same
//! binary measured 64k and 105k req/s a few minutes apart), so two figures taken one after the
//! other, as the `publish` scenario takes them, can compare the machine's moods rather than the
//! servers. Here each round's two figures are seconds apart, and the ratio reported is the
//! median of the per-round ratios.

use super::publish::wrk_request;
use super::{progress, Ctx};
use crate::error::Result;
use crate::servers::{Options, ServerKind};
use crate::table::{number, Better, Outcome};
use crate::wrk;

/// Runs the interleaved comparison (reported as ssehub's outcome; nchan's figures are in it).
pub async fn run(ctx: &Ctx, outcome: &mut Outcome) -> Result<()> {
    if !wrk::available() {
        outcome.notes.push(
            "wrk is not installed: no interleaved publish figure (apt-get install wrk)".into(),
        );
        return Ok(());
    }
    let (rounds, seconds, connections) = if ctx.smoke { (2, 1, 4) } else { (6, 3, 16) };
    let servers = [
        ctx.start("publish-ab", ServerKind::Ssehub, Options::default())
            .await?,
        ctx.start("publish-ab", ServerKind::Nchan, Options::default())
            .await?,
    ];
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let server = &servers[i];
            let (path, content_type, body) = wrk_request(ctx, server.kind);
            let run = wrk::post(
                &ctx.work
                    .join(format!("publish-ab-{}-wrk", server.kind.name())),
                server.publish_addr,
                (&path, content_type, &body),
                connections,
                seconds,
            )
            .await?;
            if run.non_2xx > 0 {
                outcome.problems.push(format!(
                    "{}: wrk got {} non-2xx answers",
                    server.kind.name(),
                    run.non_2xx
                ));
            }
            rates[i].push(run.rate);
        }
        progress(
            ServerKind::Ssehub,
            "publish-ab",
            &format!(
                "round {}: ssehub {} req/s, nchan {} req/s ({:.2}x)",
                round + 1,
                number(rates[0][round], 0),
                number(rates[1][round], 0),
                rates[0][round] / rates[1][round].max(1.0)
            ),
        );
    }
    let ratios: Vec<f64> = rates[0]
        .iter()
        .zip(&rates[1])
        .map(|(a, b)| a / b.max(1.0))
        .collect();
    let label = format!("publish, no subscribers, wrk -t1 -c{connections}, {rounds} interleaved rounds of {seconds} s");
    for (i, name) in ["ssehub", "nchan"].into_iter().enumerate() {
        outcome
            .metric(
                format!("publish.ab.{name}"),
                format!("{label}: {name}, median"),
                "req/s",
                Better::Higher,
                Some(median(&rates[i])),
            )
            .note(format!("range {}", range(&rates[i])));
    }
    outcome
        .metric(
            "publish.ab.ratio",
            format!("{label}: ssehub / nchan, median of the rounds' ratios"),
            "x",
            Better::Higher,
            Some(median(&ratios)),
        )
        .note(format!(
            "per round: {}",
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    for server in servers {
        server.stop().await?;
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn range(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!("{}–{}", number(min, 0), number(max, 0))
}
