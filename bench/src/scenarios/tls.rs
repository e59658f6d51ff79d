//! HTTPS (ssehub only; `--tls-cert`/`--tls-key` with a certificate made by `openssl` for the
//! run): the idle scenario's memory per stream and the 1,000-subscriber fan-out, each over
//! cleartext HTTP/1.1, HTTPS with HTTP/1.1 (one connection per stream) and HTTPS with HTTP/2
//! ([`PER_CONNECTION`] streams per connection, as a browser multiplexes its `EventSource`s), on
//! a fresh server per variant, side by side in one run.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::fanout::{climb, Ladder};
use super::{progress, Ctx, Live, OPEN_TIMEOUT, TOPIC};
use crate::client::Target;
use crate::error::Result;
use crate::pool::Pool;
use crate::servers::{Options, Server, ServerKind};
use crate::table::{number, Better, Outcome};
use crate::tls::{Alpn, Certificates};

/// HTTP/2 streams per connection.
pub const PER_CONNECTION: usize = 100;

/// How the subscribers reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Cleartext,
    Http1,
    H2,
}

impl Variant {
    const ALL: [Self; 3] = [Self::Cleartext, Self::Http1, Self::H2];

    fn key(self) -> &'static str {
        match self {
            Self::Cleartext => "clear",
            Self::Http1 => "h1",
            Self::H2 => "h2",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Cleartext => "cleartext HTTP/1.1",
            Self::Http1 => "TLS HTTP/1.1",
            Self::H2 => "TLS HTTP/2 (100 streams/conn)",
        }
    }
}

/// A fresh server for `variant` (HTTPS unless cleartext) and a way to add subscribers to it.
struct Setup {
    server: Server,
    target: Rc<Target>,
    variant: Variant,
    /// How publishes reach it (HTTPS with HTTP/1.1 unless cleartext).
    publish_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Setup {
    async fn start(
        ctx: &Ctx,
        scenario: &str,
        kind: ServerKind,
        variant: Variant,
        many_streams: bool,
    ) -> Result<Self> {
        let certs = Certificates::make(&ctx.work.join("tls-certs"))?;
        let args = if variant == Variant::Cleartext {
            Vec::new()
        } else {
            vec![
                "--tls-cert".to_owned(),
                certs.cert.display().to_string(),
                "--tls-key".to_owned(),
                certs.key.display().to_string(),
            ]
        };
        let name = format!("{scenario}-{}", variant.key());
        let server = ctx
            .start(
                &name,
                kind,
                Options {
                    many_streams,
                    args,
                    ..Options::default()
                },
            )
            .await?;
        let path = kind.live_path(TOPIC);
        let target = match variant {
            Variant::Cleartext => Target::get(server.addr, &path, OPEN_TIMEOUT),
            Variant::Http1 => {
                Target::get_tls(server.addr, &path, OPEN_TIMEOUT, certs.client(Alpn::Http1)?)
            }
            Variant::H2 => {
                Target::get_tls(server.addr, &path, OPEN_TIMEOUT, certs.client(Alpn::H2)?)
            }
        };
        let publish_tls = match variant {
            Variant::Cleartext => None,
            _ => Some(certs.client(Alpn::Http1)?),
        };
        Ok(Self {
            server,
            target,
            variant,
            publish_tls,
        })
    }

    fn spawn(&self, pool: &Rc<Pool>, count: usize) {
        spawn(self.variant, &self.target, pool, count);
    }
}

/// Starts `count` subscribers to `target` the way `variant` says.
fn spawn(variant: Variant, target: &Rc<Target>, pool: &Rc<Pool>, count: usize) {
    match variant {
        Variant::H2 => pool.spawn_h2(target, count, PER_CONNECTION),
        _ => pool.spawn(target, count),
    }
}

/// Idle memory per stream over each variant.
pub async fn idle(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let (targets, settle): (Vec<usize>, Duration) = match (ctx.streams, ctx.smoke) {
        (Some(n), _) => (vec![n], Duration::from_secs(2)),
        (None, true) => (vec![100], Duration::from_millis(500)),
        (None, false) => (vec![10_000, 19_000], Duration::from_secs(3)),
    };
    let mut details = Vec::new();
    for variant in Variant::ALL {
        let setup = Setup::start(ctx, "tls-idle", kind, variant, true).await?;
        tokio::time::sleep(settle).await;
        let base = setup.server.rss_kib()?;
        let pool = Pool::new(ctx.clock);
        for &wanted in &targets {
            setup.spawn(&pool, wanted - pool.len());
            let limit = Duration::from_secs(30) + Duration::from_millis(6 * wanted as u64);
            let got = pool.wait_connected(limit).await;
            tokio::time::sleep(settle).await;
            let rss = setup.server.rss_kib()?;
            let open = pool.connections().open;
            let per_stream = (open > 0).then(|| rss.saturating_sub(base) as f64 / open as f64);
            progress(
                kind,
                "tls-idle",
                &format!(
                    "{}: {open} of {wanted} streams open ({} failed): RSS {} KiB, {:.2} KiB per stream",
                    variant.label(),
                    got.failed,
                    number(rss as f64, 0),
                    per_stream.unwrap_or(0.0)
                ),
            );
            if open < wanted {
                let text = format!(
                    "{}: only {open} of {wanted} streams opened: {}",
                    variant.label(),
                    pool.errors().join("; ")
                );
                if ctx.smoke {
                    outcome.problems.push(text);
                } else {
                    outcome.notes.push(text);
                }
            }
            outcome.metric(
                format!("tls_idle.{}.{wanted}", variant.key()),
                format!(
                    "idle {}: RSS per stream at {} streams",
                    variant.label(),
                    number(wanted as f64, 0)
                ),
                "KiB",
                Better::Lower,
                per_stream,
            );
            details.push(json!({
                "variant": variant.label(),
                "wanted": wanted,
                "open": open,
                "failed": got.failed,
                "base_rss_kib": base,
                "rss_kib": rss,
                "per_stream_kib": per_stream,
            }));
        }
        pool.close().await;
        setup.server.stop().await?;
    }
    outcome.details = json!({ "readings": details });
    Ok(())
}

/// The 1,000-subscriber fan-out over each variant.
pub async fn fanout(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let (subscribers, rates, step_seconds): (usize, Vec<f64>, f64) = if ctx.smoke {
        (100, vec![20.0], 1.0)
    } else {
        (
            1_000,
            vec![
                100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 500.0, 600.0, 800.0, 1000.0,
                1200.0, 1500.0, 2000.0,
            ],
            4.0,
        )
    };
    let p99_limit_ms = 100.0;
    let mut details = Vec::new();
    for variant in Variant::ALL {
        let setup = Setup::start(ctx, "tls-fanout", kind, variant, false).await?;
        let Setup {
            server,
            target,
            publish_tls,
            ..
        } = setup;
        let start = |pool: &Rc<Pool>| spawn(variant, &target, pool, subscribers);
        let mut live =
            Live::open_with(ctx, server, subscribers, start, publish_tls, outcome).await?;
        progress(
            kind,
            "tls-fanout",
            &format!(
                "{}: {} subscribers connected and warm",
                variant.label(),
                live.pool.connections().open
            ),
        );
        let name = format!("tls-fanout {}", variant.key());
        let Ladder {
            steps,
            best,
            stopped_by,
        } = climb(
            ctx,
            &mut live,
            kind,
            &name,
            &rates,
            step_seconds,
            Duration::from_secs(3),
            p99_limit_ms,
            outcome,
        )
        .await?;
        let best = best.map(|i| &steps[i]);
        let metric = outcome.metric(
            format!("tls_fanout.{}", variant.key()),
            format!(
                "fan-out {} subs {}: max delivered (no loss, p99 < {p99_limit_ms} ms)",
                number(subscribers as f64, 0),
                variant.label()
            ),
            "ev/s",
            Better::Higher,
            best.map(|s| s.delivered_per_s),
        );
        for step in best
            .iter()
            .chain(steps.last().filter(|_| stopped_by.is_some()).iter())
        {
            metric.cpu(&step.cpu);
        }
        match best {
            Some(step) => metric.note(format!("at {} msg/s", step.rate)),
            None => metric.note(format!("failed at {} msg/s", rates[0])),
        };
        if let Some((rate, why, bound)) = &stopped_by {
            outcome.notes.push(format!(
                "{}: stepping stopped at {rate} msg/s: {}{}",
                variant.label(),
                why.join("; "),
                if *bound { " (generator-bound)" } else { "" }
            ));
        }
        details.push(json!({ "variant": variant.label(), "steps": steps }));
        live.close().await?;
    }
    outcome.details = json!({ "subscribers": subscribers, "variants": details });
    Ok(())
}
