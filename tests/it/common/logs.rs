//! The real binary with its log lines on a channel: what `spawn_binary` waits on for the
//! address, and what `tests/it/metrics.rs` reads (`--metrics-bind`, JSON logs).

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::PATIENCE;

/// The binary with `args` and `env`, its stdout and stderr lines on a channel.
pub async fn run(
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, mpsc::UnboundedReceiver<String>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ssehub"))
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    for output in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(output).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

/// The next line holding `needle`, and every line read until it.
pub async fn line_with(lines: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.recv().await {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return;
            }
        }
        panic!("the binary exited before logging {needle:?}: {seen:#?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} logged"));
    seen
}

/// The `addr=` of a text log line.
pub fn addr_of(line: &str) -> String {
    let rest = line.split("addr=").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_owned()
}
