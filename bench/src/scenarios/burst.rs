//! Burst (the seed's contract, ssehub only): N clients open `GET /stream`, then one message is
//! published to topic `default`. Each client must get it 3 times about 1 s apart, then the
//! `close` event, then the end of the response. Reports how many completed, the worst interval
//! error (|gap − 1 s|, over all clients and gaps) and the first copy's latency.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use ssehub::sse::SseEvent;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{describe_cpu, progress, Ctx, OPEN_TIMEOUT};
use crate::bail;
use crate::client::{self, End, Handler, Target};
use crate::error::Result;
use crate::payload;
use crate::pool::{wait_until, CONNECT_CONCURRENCY};
use crate::publisher::Publisher;
use crate::servers::{Options, ServerKind};
use crate::stats::Histogram;
use crate::sys::CpuWindow;
use crate::table::{Better, Outcome};

const REPEATS: usize = 3;
const INTERVAL_US: u64 = 1_000_000;

#[derive(Default, Clone)]
struct Client {
    open: bool,
    arrivals: Vec<u64>,
    wrong: u32,
    closed: bool,
    ended: bool,
    done: bool,
    error: Option<String>,
}

#[derive(Default)]
struct State {
    clients: Vec<Client>,
    open: usize,
    done: usize,
    seq: Option<u64>,
}

struct BurstHandler {
    state: Rc<RefCell<State>>,
    index: usize,
}

impl Handler for BurstHandler {
    fn on_head(&mut self, status: u16) {
        if status == 200 {
            let mut state = self.state.borrow_mut();
            state.open += 1;
            state.clients[self.index].open = true;
        }
    }

    fn on_event(&mut self, event: SseEvent, now_us: u64) {
        let mut state = self.state.borrow_mut();
        let expected = state.seq;
        let client = &mut state.clients[self.index];
        match event.event.as_str() {
            "message" => match payload::find(event.data.as_bytes()) {
                Some((seq, _)) if Some(seq) == expected => client.arrivals.push(now_us),
                _ => client.wrong += 1,
            },
            "close" => client.closed = true,
            _ => {}
        }
    }
}

/// Runs the burst scenario (ssehub only).
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let clients = if ctx.smoke { 100 } else { 19_000 };
    let mut server = ctx
        .start(
            "burst",
            kind,
            Options {
                many_streams: true,
                ..Options::default()
            },
        )
        .await?;
    let state = Rc::new(RefCell::new(State {
        clients: vec![Client::default(); clients],
        ..State::default()
    }));
    let target = Target::get(server.addr, "/stream", OPEN_TIMEOUT);
    let gate = Rc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for index in 0..clients {
        let state = Rc::clone(&state);
        let target = Rc::clone(&target);
        let gate = Rc::clone(&gate);
        let clock = ctx.clock;
        tasks.spawn_local(async move {
            let mut handler = BurstHandler {
                state: Rc::clone(&state),
                index,
            };
            let result = client::stream(
                client::source_address(index),
                &target,
                clock,
                &gate,
                &mut handler,
            )
            .await;
            let socket = {
                let mut state = state.borrow_mut();
                state.done += 1;
                let client = &mut state.clients[index];
                client.done = true;
                match result {
                    Ok(End::Complete(socket)) => {
                        client.ended = true;
                        Some(socket)
                    }
                    Ok(End::Closed) => {
                        client.error = Some("closed without the chunked end".into());
                        None
                    }
                    Err(err) => {
                        client.error = Some(err.to_string());
                        None
                    }
                }
            };
            // Keep the connection until the scenario ends (this task is then aborted), so
            // closing 19,000 sockets does not delay the reading of the last copies.
            if socket.is_some() {
                std::future::pending::<()>().await;
            }
            drop(socket);
        });
    }
    let limit = Duration::from_secs(30) + Duration::from_millis(4 * clients as u64);
    wait_until(limit, || {
        let s = state.borrow();
        s.open + s.done >= clients
    })
    .await;
    let open = state.borrow().open;
    progress(
        kind,
        "burst",
        &format!("{open} of {clients} burst streams open"),
    );
    if open == 0 {
        bail!("no burst stream opened: {:?}", first_error(&state.borrow()));
    }

    let seq = ctx.take_seqs(1);
    state.borrow_mut().seq = Some(seq);
    let publish = ctx.publish_target(&server, "default");
    let mut publisher = Publisher::new(publish, ctx.clock);
    let pids = server.pids();
    let window = CpuWindow::start(&pids);
    let sent_us = ctx.clock.now_us();
    publisher.schedule(seq, 1, 1.0).await?;
    let limit = Duration::from_micros(INTERVAL_US * REPEATS as u64) + Duration::from_secs(15);
    wait_until(limit, || state.borrow().done >= clients).await;
    let cpu = window.finish(&pids);
    server.check_alive()?;
    tasks.shutdown().await;

    let state = std::mem::take(&mut *state.borrow_mut());
    let mut completed = 0;
    let mut worst_us = 0u64;
    let mut first_copy = Histogram::new();
    let mut gaps = Histogram::new();
    let mut gap_hist = vec![Histogram::new(); REPEATS - 1];
    let mut min_gap = u64::MAX;
    let mut copies = vec![Histogram::new(); REPEATS];
    let mut short = 0;
    for c in &state.clients {
        if let Some(&first) = c.arrivals.first() {
            first_copy.record(first.saturating_sub(sent_us));
        }
        for (copy, &at) in copies.iter_mut().zip(&c.arrivals) {
            copy.record(at.saturating_sub(sent_us));
        }
        for (i, pair) in c.arrivals.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            if let Some(h) = gap_hist.get_mut(i) {
                h.record(gap);
            }
            min_gap = min_gap.min(gap);
            let error = gap.abs_diff(INTERVAL_US);
            gaps.record(error);
            worst_us = worst_us.max(error);
        }
        if c.arrivals.len() == REPEATS && c.wrong == 0 && c.closed && c.ended {
            completed += 1;
        } else {
            short += 1;
        }
    }
    let latency = first_copy.summary();
    let gap_p99_ms = gaps.summary().p99_ms;
    let gap_text = gap_hist
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let g = h.summary();
            format!(
                "{}->{} p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
                i + 1,
                i + 2,
                g.p50_ms,
                g.p99_ms,
                g.max_ms
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    progress(
        kind,
        "burst",
        &format!(
            "{completed} of {clients} completed; gaps {gap_text}; interval error p99 {gap_p99_ms:.1} ms, worst {:.1} ms; first copy p50 {:.1} ms p99 {:.1} ms max {:.1} ms; {}",
            worst_us as f64 / 1000.0,
            latency.p50_ms,
            latency.p99_ms,
            latency.max_ms,
            describe_cpu(&cpu)
        ),
    );
    if short > 0 {
        outcome.problems.push(format!(
            "{short} of {clients} burst clients did not get 3 copies + close + end: {}",
            first_error(&state).unwrap_or_default()
        ));
    }
    outcome
        .metric(
            "burst.completed",
            "burst: clients that got 3 copies + close + end",
            "clients",
            Better::Higher,
            Some(completed as f64),
        )
        .note(format!("of {clients}"));
    outcome
        .metric(
            "burst.interval",
            "burst: worst interval error (gap vs 1 s)",
            "ms",
            Better::Lower,
            Some(worst_us as f64 / 1000.0),
        )
        .cpu(&cpu);
    outcome
        .metric(
            "burst.interval_p99",
            "burst: interval error p99",
            "ms",
            Better::Lower,
            Some(gap_p99_ms),
        )
        .cpu(&cpu);
    outcome
        .metric(
            "burst.first_p99",
            "burst: first copy latency p99",
            "ms",
            Better::Lower,
            Some(latency.p99_ms),
        )
        .cpu(&cpu);
    outcome.details = json!({
        "clients": clients,
        "open": open,
        "completed": completed,
        "worst_interval_error_ms": worst_us as f64 / 1000.0,
        "interval_error": gaps.summary(),
        "gaps": gap_hist.iter().map(Histogram::summary).collect::<Vec<_>>(),
        "copy_arrival_after_publish": copies.iter().map(Histogram::summary).collect::<Vec<_>>(),
        "shortest_gap_ms": (min_gap != u64::MAX).then(|| min_gap as f64 / 1000.0),
        "first_copy_latency": latency,
        "cpu": cpu,
    });
    server.stop().await
}

fn first_error(state: &State) -> Option<String> {
    state.clients.iter().find_map(|c| {
        if let Some(err) = &c.error {
            return Some(err.clone());
        }
        (c.done && !(c.arrivals.len() == REPEATS && c.closed && c.ended)).then(|| {
            format!(
                "{} copies, {} wrong, close {}, end {}",
                c.arrivals.len(),
                c.wrong,
                c.closed,
                c.ended
            )
        })
    })
}
