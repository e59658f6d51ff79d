//! `ssehub-bench`: the load generator and the side-by-side benchmark of ssehub against
//! nginx + nchan and Pushpin.
//!
//! `ssehub-bench run` starts each server itself (a fresh process per scenario, pinned to CPU 0),
//! pins itself to CPU 1 and drives every scenario from one current-thread tokio runtime: raw
//! HTTP/1.1 subscribers spread over loopback source addresses, a scheduled publisher, and
//! accounting of every delivery (latency, loss, duplicates). It prints one table with both
//! servers and their ratio and writes everything to `target/bench/results.json`.
//!
//! Modules: [`client`] (SSE subscriber), [`http`] (HTTP/1.1 framing), [`payload`] (the marker
//! in each message), [`mercure`] (ssehub's Mercure endpoint: forms, selectors, topics), [`pool`] (live subscribers and their bookkeeping), [`publisher`],
//! [`stats`] (histogram), [`sys`] (CPU, memory, limits), [`servers`] (child processes),
//! [`nchan`] (nginx's configuration), [`pushpin`] (its configuration and GRIP backend), [`tls`] (certificates, client
//! configurations), [`h2client`] (HTTP/2 subscribers), [`wrk`] (the neutral generator),
//! [`error`] (errors with context),
//! [`scenarios`], [`table`] (results).

mod client;
mod error;
mod h2client;
mod http;
mod mercure;
mod nchan;
mod payload;
mod pool;
mod publisher;
mod pushpin;
mod scenarios;
mod servers;
mod stats;
mod sys;
mod table;
mod tls;
mod wrk;

use std::cell::Cell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::error::{Context, Result};
use crate::scenarios::Ctx;
use crate::servers::{Programs, ServerKind};
use crate::table::Outcome;

/// Load generator and benchmark of ssehub against nginx + nchan.
#[derive(Debug, Parser)]
#[command(name = "ssehub-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scenarios against each server, print the table, write the JSON results.
    Run(RunArgs),
}

#[derive(Debug, Clone, Serialize, clap::Args)]
struct RunArgs {
    /// Every scenario in miniature (about 100 subscribers, 20 messages); fails on any lost or
    /// duplicated message or a server that does not start, never on performance numbers.
    #[arg(long)]
    smoke: bool,
    /// Run only these scenarios (comma-separated): fanout-1k, fanout-10k, cluster, idle,
    /// burst, publish, publish-ab, mercure-fanout, mercure-patterns, shutdown, tls-idle,
    /// tls-fanout, store, redis-ha; `fanout` means both fan-outs, `mercure` both Mercure
    /// scenarios, `tls` both TLS ones.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Servers to run against.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ssehub,nchan,pushpin,minimal"
    )]
    servers: Vec<ServerKind>,
    /// Message text size in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(40..=16_000))]
    size: u64,
    /// Longest time in all the run waits for the machine to go idle before its scenarios
    /// (seconds; 0 measures at once, e.g. on a machine known to be shared).
    #[arg(long, default_value_t = 300)]
    quiet_wait: u64,
    /// Streams of the idle, shutdown and tls-idle scenarios (default: 19,000; 100 with --smoke), for a
    /// run at a moderate size.
    #[arg(long)]
    streams: Option<usize>,
    /// The ssehub binary (default: `ssehub` beside this binary).
    #[arg(long)]
    ssehub_bin: Option<PathBuf>,
    /// The nginx binary.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// The nchan dynamic module.
    #[arg(long, default_value = "/usr/lib/nginx/modules/ngx_nchan_module.so")]
    nchan_module: PathBuf,
    /// The pushpin runner.
    #[arg(long, default_value = "/usr/bin/pushpin")]
    pushpin: PathBuf,
    /// Where to write the JSON results (default: target/bench/results.json, or
    /// results-smoke.json with --smoke).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    machine: &'a sys::Machine,
    args: &'a RunArgs,
    generator_cpu: Option<usize>,
    server_cpu: Option<usize>,
    seconds: f64,
    table: String,
    outcomes: &'a [Outcome],
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Run(args) = cli.command;
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("ssehub-bench: {err}");
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark; `Ok(false)` when a check failed.
fn run(args: RunArgs) -> Result<bool> {
    let open_files = sys::raise_open_file_limit()?;
    let machine = sys::Machine::describe(open_files);
    let cpus = sys::allowed_cpus();
    let (generator_cpu, server_cpu) = if cpus.len() >= 2 {
        (Some(cpus[1]), Some(cpus[0]))
    } else {
        (None, None)
    };
    sys::set_cores(generator_cpu, server_cpu);
    match generator_cpu {
        Some(cpu) => sys::pin_to_cpu(cpu).context("pinning the generator")?,
        None => eprintln!("warning: fewer than 2 CPUs available; nothing is pinned"),
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    let bin_dir = exe.parent().context("binary has no directory")?.to_owned();
    let target_dir = bin_dir
        .parent()
        .context("binary is not in target/<profile>/")?
        .to_owned();
    let programs = Programs {
        ssehub: args
            .ssehub_bin
            .clone()
            .unwrap_or_else(|| bin_dir.join("ssehub")),
        nginx: args.nginx.clone(),
        nchan_module: args.nchan_module.clone(),
        redis: PathBuf::from("redis-server"),
        pushpin: args.pushpin.clone(),
        minimal: bin_dir.join("min-broadcaster"),
        cpu: server_cpu,
    };
    let scenarios = select(&args.only)?;
    for kind in &args.servers {
        let needed = match kind {
            ServerKind::Ssehub => vec![&programs.ssehub],
            ServerKind::Nchan => vec![&programs.nginx, &programs.nchan_module],
            ServerKind::Pushpin => vec![&programs.pushpin],
            ServerKind::Minimal => vec![&programs.minimal],
            ServerKind::Redis => vec![],
        };
        for path in needed {
            if !path.exists() {
                crate::bail!("{} not found (needed for {})", path.display(), kind.name());
            }
        }
    }
    let work = target_dir
        .join("bench")
        .join(if args.smoke { "work-smoke" } else { "work" });
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let out = args.out.clone().unwrap_or_else(|| {
        target_dir.join("bench").join(if args.smoke {
            "results-smoke.json"
        } else {
            "results.json"
        })
    });
    println!(
        "ssehub-bench: {} CPU(s) ({}), {} MiB, open-file limit {open_files}; generator on CPU {}, servers on CPU {}",
        machine.nproc,
        machine.cpu_model,
        machine.memory_mib,
        generator_cpu.map_or("any".into(), |c| c.to_string()),
        server_cpu.map_or("any".into(), |c| c.to_string()),
    );
    println!(
        "scenarios: {}{}",
        scenarios.join(", "),
        if args.smoke { " (smoke)" } else { "" }
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    let local = tokio::task::LocalSet::new();
    let started = Instant::now();
    let ctx = Ctx {
        programs,
        clock: payload::Clock::new(),
        seq: Rc::new(Cell::new(1)),
        size: args.size as usize,
        smoke: args.smoke,
        streams: args.streams,
        work,
        quiet_budget: std::cell::Cell::new(std::time::Duration::from_secs(args.quiet_wait)),
    };
    let outcomes = local.block_on(&runtime, async {
        let all = async {
            let mut outcomes = Vec::new();
            for scenario in &scenarios {
                for &kind in &args.servers {
                    if scenarios::applies(scenario, kind) {
                        println!("== {scenario} on {}", kind.name());
                        let outcome = scenarios::run(&ctx, scenario, kind).await;
                        report_outcome(&outcome);
                        outcomes.push(outcome);
                    }
                }
            }
            outcomes
        };
        tokio::select! {
            outcomes = all => Ok(outcomes),
            () = interrupted() => Err(error::Error::msg("interrupted; servers stopped")),
        }
    })?;
    let table = table::render(&outcomes);
    println!("\n{table}");
    println!("[G] = the generator used more than 90 % of its core while measuring this number: the value may be generator-bound.");
    println!("[B] = more than 25 % of a pinned core went to work not charged to the process pinned there (another program, or kernel work).");
    println!("ratio = ssehub / nchan (and ssehub / Pushpin, ssehub / the minimal broadcaster); each scenario ran on a freshly started server. Mercure rows are ssehub only (nchan has no Mercure endpoint); their notes give the ratio to ssehub's native /stream.");
    let mut ok = true;
    for outcome in &outcomes {
        let name = format!("{} on {}", outcome.scenario, outcome.server.name());
        if let Some(err) = &outcome.error {
            println!("ERROR  {name}: {err}");
            ok = false;
        }
        // A peer's own losses (Pushpin cancels a few streams under load: see BENCHMARKS.md)
        // are reported, but only ssehub's and nchan's fail the smoke run.
        let fatal = args.smoke && outcome.server != ServerKind::Pushpin;
        for problem in &outcome.problems {
            println!("{}  {name}: {problem}", if fatal { "FAIL" } else { "WARN" });
            if fatal {
                ok = false;
            }
        }
        for note in &outcome.notes {
            println!("note   {name}: {note}");
        }
    }
    let report = Report {
        machine: &machine,
        args: &args,
        generator_cpu,
        server_cpu,
        seconds: started.elapsed().as_secs_f64(),
        table,
        outcomes: &outcomes,
    };
    table::write_json(&out, &report)?;
    println!(
        "results: {} ({:.0} s){}",
        out.display(),
        started.elapsed().as_secs_f64(),
        if ok { "" } else { " - FAILED" }
    );
    Ok(ok)
}

fn report_outcome(outcome: &Outcome) {
    if let Some(err) = &outcome.error {
        println!("  error: {err}");
    }
    println!("  ({:.1} s)", outcome.seconds);
}

/// The scenarios `--only` names, in run order.
fn select(only: &[String]) -> Result<Vec<&'static str>> {
    if only.is_empty() {
        return Ok(scenarios::ALL.to_vec());
    }
    for name in only {
        if !scenarios::ALL
            .iter()
            .any(|s| s == name || s.starts_with(&format!("{name}-")))
        {
            crate::bail!(
                "unknown scenario {name:?} (choose from {})",
                scenarios::ALL.join(", ")
            );
        }
    }
    Ok(scenarios::ALL
        .iter()
        .copied()
        .filter(|s| {
            only.iter()
                .any(|name| s == name || s.starts_with(&format!("{name}-")))
        })
        .collect())
}

/// Resolves on SIGINT or SIGTERM (either alone if the other cannot be watched).
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let watch = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(stream) => Some(stream),
        Err(err) => {
            eprintln!("warning: cannot watch {name}: {err}");
            None
        }
    };
    let mut int = watch(SignalKind::interrupt(), "SIGINT");
    let mut term = watch(SignalKind::terminate(), "SIGTERM");
    tokio::select! {
        () = next(int.as_mut()) => {},
        () = next(term.as_mut()) => {},
    }
}

/// The next delivery of a watched signal; never, for one that could not be watched.
async fn next(stream: Option<&mut tokio::signal::unix::Signal>) {
    match stream {
        Some(stream) => {
            stream.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
