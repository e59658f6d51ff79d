//! `wrk` (Debian package `wrk`), the neutral load generator beside our own: one thread, N
//! keep-alive connections posting the same JSON publish for a few seconds. It runs as a child
//! of the generator and so on the generator's core; its CPU time is read from
//! `RUSAGE_CHILDREN` around the run (the servers, also children, are only reaped when they stop).

#![allow(unsafe_code)] // system calls tokio does not wrap; each block says why it is sound

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bail;
use crate::error::{Context, Result};

/// What one `wrk` run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Wrk {
    /// Connections.
    pub connections: usize,
    /// Requests per second (`Requests/sec`).
    pub rate: f64,
    /// Latency percentiles from `--latency`, ms: 50, 75, 90, 99.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Responses that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// Its socket errors line, if any.
    pub socket_errors: Option<String>,
    /// wrk's CPU time over the wall time (1.0 = its whole core).
    pub cpu: f64,
}

/// Whether `wrk` is installed.
pub fn available() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// Runs `wrk -t1 -c<connections> -d<seconds>s --latency` posting `body` (of `content_type`) to
/// `path` on `addr`; its Lua script is written into `dir`.
pub async fn post(
    dir: &Path,
    addr: SocketAddr,
    (path, content_type, body): (&str, &str, &str),
    connections: usize,
    seconds: u64,
) -> Result<Wrk> {
    std::fs::create_dir_all(dir).context("creating wrk's folder")?;
    let script = dir.join("publish.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"{content_type}\"\n"
        ),
    )
    .context("writing wrk's script")?;
    let before = children_cpu();
    let started = Instant::now();
    let output = tokio::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{addr}{path}"))
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let cpu = children_cpu().saturating_sub(before).as_secs_f64() / wall;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut wrk = parse(&text).with_context(|| format!("reading wrk's output:\n{text}"))?;
    wrk.connections = connections;
    wrk.cpu = cpu;
    Ok(wrk)
}

/// Reads `Requests/sec`, the latency distribution and the error lines of wrk's report.
fn parse(text: &str) -> Result<Wrk> {
    let mut wrk = Wrk::default();
    let mut rate = None;
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(value)) => rate = value.parse().ok(),
            (Some("50%"), Some(value)) => wrk.p50_ms = millis(value)?,
            (Some("99%"), Some(value)) => wrk.p99_ms = millis(value)?,
            _ => {}
        }
        if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            wrk.non_2xx = count.trim().parse().unwrap_or(0);
        }
        if line.starts_with("Socket errors:") {
            wrk.socket_errors = Some(line.to_owned());
        }
    }
    wrk.rate = rate.context("no Requests/sec line")?;
    Ok(wrk)
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.01s`) in milliseconds.
fn millis(value: &str) -> Result<f64> {
    let (number, scale) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else if let Some(v) = value.strip_suffix('m') {
        (v, 60_000.0)
    } else {
        bail!("unknown duration {value:?}")
    };
    let number: f64 = number
        .parse()
        .with_context(|| format!("bad duration {value:?}"))?;
    Ok(number * scale)
}

/// CPU time of this process's waited-for children.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) != 0 {
            return Duration::ZERO;
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_report() {
        let text = "Running 4s test @ http://127.0.0.1:1/api/messages\n  1 threads and 4 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   812.00us    1.20ms  20.01ms   95.00%\n  Latency Distribution\n     50%  540.00us\n     75%  700.00us\n     90%    1.10ms\n     99%    3.29ms\n  47655 requests in 1.00s, 9.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:  47655.12\nTransfer/sec:      9.00MB\n";
        let wrk = parse(text).expect("parses");
        assert!((wrk.rate - 47655.12).abs() < 1e-6);
        assert!((wrk.p50_ms - 0.54).abs() < 1e-9);
        assert!((wrk.p99_ms - 3.29).abs() < 1e-9);
        assert_eq!(wrk.non_2xx, 3);
        assert!(millis("2.01s").is_ok_and(|ms| (ms - 2010.0).abs() < 1e-9));
    }
}
