//! Idle streams: memory per open stream on a freshly started server. The server's resident
//! memory (VmRSS summed over its processes: nginx's master and worker) is read before any
//! stream, then with 10,000 and with 19,000 streams open and quiet; per stream is the growth
//! divided by the streams actually open. Kernel socket buffers are not in RSS.

use std::time::Duration;

use serde_json::json;

use super::{progress, Ctx, OPEN_TIMEOUT, TOPIC};
use crate::client::Target;
use crate::error::Result;
use crate::pool::Pool;
use crate::servers::{Options, ServerKind};
use crate::table::{number, Better, Outcome};

/// Runs the idle-memory scenario on `kind`.
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let (targets, settle): (Vec<usize>, Duration) = match (ctx.streams, ctx.smoke) {
        (Some(n), _) => (vec![n], Duration::from_secs(2)),
        (None, true) => (vec![100], Duration::from_millis(500)),
        (None, false) => (vec![10_000, 19_000], Duration::from_secs(3)),
    };
    let mut server = ctx
        .start(
            "idle",
            kind,
            Options {
                many_streams: true,
                ..Options::default()
            },
        )
        .await?;
    tokio::time::sleep(settle).await;
    let base = server.rss_kib()?;
    progress(
        kind,
        "idle",
        &format!("fresh server RSS {} KiB", number(base as f64, 0)),
    );
    let pool = Pool::for_server(ctx.clock, kind);
    let stream = Target::get(server.addr, &kind.live_path(TOPIC), OPEN_TIMEOUT);
    let mut readings = Vec::new();
    for &wanted in &targets {
        pool.spawn(&stream, wanted - pool.len());
        let limit = Duration::from_secs(30) + Duration::from_millis(4 * wanted as u64);
        let got = pool.wait_connected(limit).await;
        tokio::time::sleep(settle).await;
        server.check_alive()?;
        let open = pool.connections().open;
        let rss = server.rss_kib()?;
        let per_stream = if open > 0 {
            Some(rss.saturating_sub(base) as f64 / open as f64)
        } else {
            None
        };
        progress(
            kind,
            "idle",
            &format!(
                "{open} of {wanted} streams open ({} failed): RSS {} KiB, {:.2} KiB per stream",
                got.failed,
                number(rss as f64, 0),
                per_stream.unwrap_or(0.0)
            ),
        );
        let mut note = String::new();
        if open < wanted {
            let errors = pool.errors().join("; ");
            let text = format!("only {open} of {wanted} streams opened: {errors}");
            note = format!("only {open} opened");
            if ctx.smoke {
                outcome.problems.push(text);
            } else {
                outcome.notes.push(text);
            }
        }
        outcome
            .metric(
                format!("idle.{wanted}"),
                format!(
                    "idle: RSS per stream at {} streams",
                    number(wanted as f64, 0)
                ),
                "KiB",
                Better::Lower,
                per_stream,
            )
            .note(note);
        readings.push(json!({
            "wanted": wanted,
            "open": open,
            "failed": got.failed,
            "rss_kib": rss,
            "per_stream_kib": per_stream,
        }));
    }
    outcome.details = json!({ "base_rss_kib": base, "readings": readings });
    pool.close().await;
    server.stop().await
}
