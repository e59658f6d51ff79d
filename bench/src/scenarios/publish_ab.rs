//! Publishing without subscribers, ssehub and nginx + nchan measured in alternation: both
//! servers run at once (each pinned to the server core, only one loaded at a time) and `wrk`
//! posts to one, then the other, for several short rounds, the order swapped every round.
//!
//! Why: on a shared VM the speed of a core drifts by tens of percent over minutes (the same
//! binary measured 64k and 105k req/s a few minutes apart), so two figures taken one after the
//! other, as the `publish` scenario takes them, can compare the machine's moods rather than the
//! servers. Here each round's figures are seconds apart, and the ratio reported is the
//! median of the per-round ratios.
//!
//! A third series in the same rounds posts Mercure updates (`POST /.well-known/mercure`, a form
//! with the same message) to the same ssehub: what a Mercure publisher sees beside a native one.
//!
//! A fourth posts to the minimal broadcaster (`bench/src/bin/min-broadcaster.rs`: a tokio task
//! per connection that finds the head's end, reads the body, broadcasts it and writes a fixed
//! `201`): the floor of a tokio server on this machine, so the table shows how much of the
//! distance to a target is the server's work and how much the runtime's and the kernel's.
//!
//! Each series also reports the server's CPU per request, user and kernel apart (`/proc`'s
//! `utime` and `stime` of the server's processes over the run, over the requests `wrk` got
//! answered): the kernel's share is the TCP work no server can skip.

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
        ctx.start("publish-ab", ServerKind::Minimal, Options::default())
            .await?,
    ];
    let mut rates = [const { Vec::new() }; SERIES.len()];
    // Server CPU per request, µs: user, kernel.
    let mut cpu = [const { (Vec::new(), Vec::new()) }; SERIES.len()];
    for round in 0..rounds {
        // Each round starts one series later than the one before.
        for i in (0..SERIES.len()).map(|k| (round + k) % SERIES.len()) {
            let server = &servers[SERIES[i].server];
            let (path, content_type, body) = if SERIES[i].mercure {
                mercure_request(ctx)
            } else {
                wrk_request(ctx, server.kind)
            };
            let before = cpu_split(&server.pids());
            let run = wrk::post(
                &ctx.work.join(format!("publish-ab-{i}-wrk")),
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
            let after = cpu_split(&server.pids());
            let requests =
                (run.rate * std::time::Duration::from_secs(seconds).as_secs_f64()).max(1.0);
            cpu[i].0.push((after.0 - before.0) / requests * 1e6);
            cpu[i].1.push((after.1 - before.1) / requests * 1e6);
            rates[i].push(run.rate);
        }
        progress(
            ServerKind::Ssehub,
            "publish-ab",
            &format!(
                "round {}: ssehub {} req/s, nchan {} req/s ({:.2}x), ssehub Mercure {} req/s, \
                 minimal {} req/s",
                round + 1,
                number(rates[0][round], 0),
                number(rates[1][round], 0),
                rates[0][round] / rates[1][round].max(1.0),
                number(rates[2][round], 0),
                number(rates[3][round], 0),
            ),
        );
    }
    let ratios = |of: usize, to: usize| -> Vec<f64> {
        rates[of]
            .iter()
            .zip(&rates[to])
            .map(|(a, b)| a / b.max(1.0))
            .collect()
    };
    let label = format!("publish, no subscribers, wrk -t1 -c{connections}, {rounds} interleaved rounds of {seconds} s");
    for (i, Series { name, .. }) in SERIES.iter().enumerate() {
        outcome
            .metric(
                format!("publish.ab.{}", name.replace(' ', "_")),
                format!("{label}: {name}, median"),
                "req/s",
                Better::Higher,
                Some(median(&rates[i])),
            )
            .note(format!("range {}", range(&rates[i])));
        let (user, kernel) = (median(&cpu[i].0), median(&cpu[i].1));
        outcome
            .metric(
                format!("publish.ab.{}_cpu", name.replace(' ', "_")),
                format!("{label}: {name}, server CPU per request, user + kernel, median"),
                "µs",
                Better::Lower,
                Some(user + kernel),
            )
            .note(format!("user {user:.2} µs, kernel {kernel:.2} µs"));
    }
    let series = [
        ("publish.ab.ratio", "ssehub / nchan", 0, 1),
        ("publish.ab.mercure_ratio", "ssehub Mercure / nchan", 2, 1),
        ("publish.ab.minimal_ratio", "minimal / nchan", 3, 1),
        ("publish.ab.of_minimal", "ssehub / minimal", 0, 3),
    ];
    for (key, name, of, to) in series {
        let ratios = ratios(of, to);
        outcome
            .metric(
                key,
                format!("{label}: {name}, median of the rounds' ratios"),
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
    }
    for server in servers {
        server.stop().await?;
    }
    Ok(())
}

/// One series of the rounds: what the table calls it, the server it posts to (an index into
/// `run`'s servers: ssehub, nchan, minimal) and whether it posts Mercure updates.
struct Series {
    name: &'static str,
    server: usize,
    mercure: bool,
}

/// The series, by the index the ratios below use.
const SERIES: [Series; 4] = [
    Series {
        name: "ssehub",
        server: 0,
        mercure: false,
    },
    Series {
        name: "nchan",
        server: 1,
        mercure: false,
    },
    Series {
        name: "ssehub Mercure",
        server: 0,
        mercure: true,
    },
    Series {
        name: "minimal",
        server: 2,
        mercure: false,
    },
];

/// User and system CPU seconds of `pids`, summed.
fn cpu_split(pids: &[u32]) -> (f64, f64) {
    pids.iter()
        .map(|&pid| crate::sys::process_cpu_split(pid))
        .fold((0.0, 0.0), |(user, kernel), (u, k)| {
            (user + u.as_secs_f64(), kernel + k.as_secs_f64())
        })
}

/// A Mercure update with the same message as [`wrk_request`]'s, for ssehub's hub endpoint.
fn mercure_request(ctx: &Ctx) -> (String, &'static str, String) {
    let data = serde_json::json!({"message": "x".repeat(ctx.size)}).to_string();
    let body = format!(
        "topic={}&data={}",
        crate::mercure::encode(super::TOPIC),
        crate::mercure::encode(&data)
    );
    (
        "/.well-known/mercure".to_owned(),
        "application/x-www-form-urlencoded",
        body,
    )
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
