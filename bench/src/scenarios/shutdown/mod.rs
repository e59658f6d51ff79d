//! Shutdown (ssehub only): N streams open, half live (`/stream?mode=live`), half burst
//! (`/stream`, with one message published so every burst is under way), then SIGTERM. With
//! default flags (`--shutdown-grace 5s`, `--drain-spread 2s`) and the idle scenario's raised
//! caps, measured per client: the time from the signal to its `close` event and to the end of
//! its response, the `retry:` hint in force when `close` came, and the close's status; for the
//! server: how soon a new connection is refused, what `/api/ready` answers on a connection
//! opened before the signal, when the process exited and with which code.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use ssehub::sse::SseEvent;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

mod report;

use super::{progress, Ctx, OPEN_TIMEOUT, TOPIC};
use crate::bail;
use crate::client::{self, End, Handler, Target};
use crate::error::Result;
use crate::payload;
use crate::pool::{wait_until, CONNECT_CONCURRENCY};
use crate::publisher::{Conn, Publisher};
use crate::servers::{Options, ServerKind};
use crate::table::{Better, Outcome};

#[derive(Default, Clone)]
struct Client {
    live: bool,
    open: bool,
    copies: u32,
    close_us: Option<u64>,
    close_status: Option<String>,
    retry_ms: Option<u64>,
    end_us: Option<u64>,
    done: bool,
    error: Option<String>,
}

#[derive(Default)]
struct State {
    clients: Vec<Client>,
    open: usize,
    done: usize,
    burst_seq: Option<u64>,
    first_copies: usize,
}

struct ShutdownHandler {
    state: Rc<RefCell<State>>,
    index: usize,
}

impl Handler for ShutdownHandler {
    fn on_head(&mut self, status: u16) {
        if status == 200 {
            let mut state = self.state.borrow_mut();
            state.open += 1;
            state.clients[self.index].open = true;
        }
    }

    fn on_event(&mut self, event: SseEvent, now_us: u64) {
        let mut state = self.state.borrow_mut();
        let expected = state.burst_seq;
        let client = &mut state.clients[self.index];
        match event.event.as_str() {
            "message" if payload::find(event.data.as_bytes()).map(|(seq, _)| seq) == expected => {
                client.copies += 1;
                if client.copies == 1 {
                    state.first_copies += 1;
                }
            }
            "close" if client.close_us.is_none() => {
                client.close_us = Some(now_us);
                client.retry_ms = event.retry;
                client.close_status = Some(
                    ["shutdown", "complete"]
                        .into_iter()
                        .find(|s| event.data.contains(s))
                        .unwrap_or("other")
                        .to_owned(),
                );
            }
            _ => {}
        }
    }
}

/// Runs the shutdown scenario (ssehub only).
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    let streams = ctx
        .streams
        .unwrap_or(if ctx.smoke { 100 } else { 19_000 })
        .max(2);
    let live = streams / 2;
    let mut server = ctx
        .start(
            "shutdown",
            kind,
            Options {
                many_streams: true,
                ..Options::default()
            },
        )
        .await?;
    let state = Rc::new(RefCell::new(State {
        clients: (0..streams)
            .map(|i| Client {
                live: i < live,
                ..Client::default()
            })
            .collect(),
        ..State::default()
    }));
    let live_target = Target::get(server.addr, &kind.live_path(TOPIC), OPEN_TIMEOUT);
    let burst_target = Target::get(server.addr, "/stream", OPEN_TIMEOUT);
    let gate = Rc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for index in 0..streams {
        let state = Rc::clone(&state);
        let target = Rc::clone(if index < live {
            &live_target
        } else {
            &burst_target
        });
        let (gate, clock) = (Rc::clone(&gate), ctx.clock);
        tasks.spawn_local(async move {
            let mut handler = ShutdownHandler {
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
            let now = clock.now_us();
            let mut state = state.borrow_mut();
            state.done += 1;
            let client = &mut state.clients[index];
            client.done = true;
            match result {
                Ok(End::Complete(_)) => client.end_us = Some(now),
                Ok(End::Closed) => client.error = Some("closed without the chunked end".into()),
                Err(err) => client.error = Some(err.to_string()),
            }
        });
    }
    let limit = Duration::from_secs(30) + Duration::from_millis(4 * streams as u64);
    wait_until(limit, || {
        let s = state.borrow();
        s.open + s.done >= streams
    })
    .await;
    let open = state.borrow().open;
    progress(
        kind,
        "shutdown",
        &format!(
            "{open} of {streams} streams open ({live} live, {} burst)",
            streams - live
        ),
    );
    if open < streams {
        let text = format!(
            "only {open} of {streams} streams opened: {}",
            first_error(&state.borrow()).unwrap_or_default()
        );
        outcome.problems.push(text.clone());
        if open == 0 {
            bail!("{text}");
        }
    }

    // A connection opened before the signal, kept alive, to ask /api/ready after it.
    let ready_request =
        format!("GET /api/ready HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).into_bytes();
    let mut ready_conn = Conn::new(server.addr, client::source_address(streams));
    let ready_before = ready_conn.request(&ready_request).await.ok();

    // Every burst under way: one message to topic `default`, first copy received.
    let seq = ctx.take_seqs(1);
    state.borrow_mut().burst_seq = Some(seq);
    let mut publisher = Publisher::new(ctx.publish_target(&server, "default"), ctx.clock);
    publisher.schedule(seq, 1, 1.0).await?;
    let bursts = streams - live;
    wait_until(Duration::from_secs(10), || {
        state.borrow().first_copies >= bursts
    })
    .await;

    let signal_us = ctx.clock.now_us();
    server.terminate();
    let since = |us: u64| us.saturating_sub(signal_us) as f64 / 1000.0;

    // How soon is a new connection refused (tried every millisecond for up to 2 s)?
    let mut refused_ms = None;
    let mut accepted_after_signal = 0;
    while since(ctx.clock.now_us()) < 2_000.0 {
        match tokio::net::TcpStream::connect(server.addr).await {
            Ok(_) => accepted_after_signal += 1,
            Err(_) => {
                refused_ms = Some(since(ctx.clock.now_us()));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready_after = match ready_conn.request(&ready_request).await {
        Ok(status) => format!("{status}"),
        // Graceful shutdown closes idle kept-alive connections: a load balancer then finds the
        // node gone, which tells it as much as a 503.
        Err(err) if format!("{err:#}").contains("Connection refused") => {
            "the kept-alive connection was closed and new ones refused".to_owned()
        }
        Err(err) => format!("no answer ({err:#})"),
    };
    let ready_at_ms = since(ctx.clock.now_us());

    // Wait for every client and for the process (grace 5 s, plus margin).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut exit = None;
    while std::time::Instant::now() < deadline {
        if exit.is_none() {
            if let Some(status) = server.exited()? {
                exit = Some((since(ctx.clock.now_us()), status.code()));
            }
        }
        if exit.is_some() && state.borrow().done >= streams {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tasks.shutdown().await;
    let state = std::mem::take(&mut *state.borrow_mut());
    report::clients(kind, outcome, &state, signal_us, open);

    let (exit_ms, exit_code) = match exit {
        Some((ms, code)) => (Some(ms), code),
        None => (None, None),
    };
    match exit_code {
        Some(0) => {}
        Some(code) => outcome
            .problems
            .push(format!("the server exited with code {code}")),
        None if exit_ms.is_some() => outcome
            .problems
            .push("the server was killed by a signal".into()),
        None => outcome
            .problems
            .push("the server had not exited 15 s after SIGTERM".into()),
    }
    progress(
        kind,
        "shutdown",
        &format!(
            "new connection refused after {} ({accepted_after_signal} accepted before); /api/ready {} before the signal, {ready_after} at {ready_at_ms:.1} ms after; exit {} after {}",
            refused_ms.map_or("never (2 s)".into(), |ms| format!("{ms:.1} ms")),
            ready_before.map_or("-".into(), |s| s.to_string()),
            exit_code.map_or("-".into(), |c| c.to_string()),
            exit_ms.map_or("-".into(), |ms| format!("{ms:.0} ms")),
        ),
    );
    if refused_ms.is_none() {
        outcome
            .notes
            .push("new connections were still accepted 2 s after SIGTERM".into());
    }
    outcome
        .metric(
            "shutdown.refused",
            "shutdown: new connection refused after SIGTERM",
            "ms",
            Better::Lower,
            refused_ms,
        )
        .note(format!("{accepted_after_signal} accepted before"));
    outcome
        .metric(
            "shutdown.ready",
            "shutdown: /api/ready after SIGTERM (connection opened before)",
            "status",
            Better::Higher,
            ready_after.parse().ok(),
        )
        .note(if ready_after.parse::<f64>().is_ok() {
            format!("at {ready_at_ms:.1} ms")
        } else {
            ready_after.clone()
        });
    outcome
        .metric(
            "shutdown.exit",
            "shutdown: process exited after SIGTERM",
            "ms",
            Better::Lower,
            exit_ms,
        )
        .note(format!(
            "exit code {}",
            exit_code.map_or("-".into(), |c| c.to_string())
        ));
    let details = std::mem::take(&mut outcome.details);
    outcome.details = json!({
        "clients": details,
        "refused_after_ms": refused_ms,
        "accepted_after_signal": accepted_after_signal,
        "ready_before": ready_before,
        "ready_after": ready_after,
        "ready_after_ms": ready_at_ms,
        "exit_ms": exit_ms,
        "exit_code": exit_code,
    });
    server.stop().await
}

fn first_error(state: &State) -> Option<String> {
    state.clients.iter().find_map(|c| {
        if let Some(err) = &c.error {
            return Some(err.clone());
        }
        (c.done && (c.close_us.is_none() || c.end_us.is_none())).then(|| {
            format!(
                "{} stream: close {}, end {}",
                if c.live { "live" } else { "burst" },
                c.close_us.is_some(),
                c.end_us.is_some()
            )
        })
    })
}
