//! The closed-loop publisher: N keep-alive connections, each sending its next request when the
//! last answer is in; it measures requests per second and the time each answer took.

use super::*;

/// What a closed-loop run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClosedLoop {
    /// Connections used.
    pub connections: usize,
    /// Requests answered 2xx.
    pub published: u64,
    /// Requests answered otherwise, or failed.
    pub rejected: u64,
    /// Wall time, s.
    pub seconds: f64,
    /// 2xx answers per second.
    pub rate: f64,
    /// The first error, if any.
    pub error: Option<String>,
    /// Time from sending a request to its whole 2xx answer.
    pub latency: Latency,
}

/// Runs `connections` closed loops for `duration` or until `max_requests` were sent. Each
/// message takes the next number of `seq`.
pub async fn closed_loop(
    target: &PublishTarget,
    clock: Clock,
    seq: &Rc<Cell<u64>>,
    connections: usize,
    duration: Duration,
    max_requests: Option<u64>,
) -> ClosedLoop {
    let start = Instant::now();
    let deadline = start + duration;
    let issued = Rc::new(Cell::new(0u64));
    let answers = Rc::new(RefCell::new(Histogram::new()));
    let mut tasks = JoinSet::new();
    for index in 0..connections {
        let target = target.clone();
        let seq = Rc::clone(seq);
        let issued = Rc::clone(&issued);
        let answers = Rc::clone(&answers);
        tasks.spawn_local(async move {
            let mut conn =
                Conn::new(target.addr, client::source_address(index)).tls(target.tls.clone());
            let mut text = String::with_capacity(target.size + 32);
            let (mut ok, mut rejected) = (0u64, 0u64);
            while Instant::now() < deadline && max_requests.is_none_or(|max| issued.get() < max) {
                issued.set(issued.get() + 1);
                let n = seq.get();
                seq.set(n + 1);
                payload::write(&mut text, n, clock.now_us(), target.size);
                let request = target.request(n, &text);
                let sent = Instant::now();
                match conn.request(&request).await {
                    Ok(status) if (200..300).contains(&status) => {
                        ok += 1;
                        answers
                            .borrow_mut()
                            .record(sent.elapsed().as_micros() as u64);
                    }
                    Ok(_) => rejected += 1,
                    Err(err) => return (ok, rejected + 1, Some(err.to_string())),
                }
            }
            (ok, rejected, None)
        });
    }
    let mut report = ClosedLoop {
        connections,
        ..ClosedLoop::default()
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((ok, rejected, error)) => {
                report.published += ok;
                report.rejected += rejected;
                if report.error.is_none() {
                    report.error = error;
                }
            }
            Err(err) => report.error = Some(format!("publisher task: {err}")),
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    report.rate = report.published as f64 / report.seconds.max(1e-9);
    report.latency = answers.borrow().summary();
    report
}
