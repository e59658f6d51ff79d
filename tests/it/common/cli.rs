//! Harness of the command-line client's tests (`tests/it/cli.rs`): the `ssehub` binary run as a
//! client, to its end or line by line.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::PATIENCE;

/// The key flags' environment, which the client would otherwise mint tokens with.
const KEY_ENV: [&str; 5] = [
    "SSEHUB_JWT_KEY",
    "SSEHUB_PUBLISHER_JWT_KEY",
    "SSEHUB_SUBSCRIBER_JWT_KEY",
    "SSEHUB_TOKEN",
    "MERCURE_JWT_KEY",
];

pub fn client(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssehub"));
    command.args(args).kill_on_drop(true);
    for name in KEY_ENV {
        command.env_remove(name);
    }
    command
}

/// A finished command: exit code, standard output, standard error.
pub struct Done {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a client command to its end, with `stdin` as its standard input.
pub async fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Done {
    let mut child = client(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("the command did not end")
        .unwrap();
    Done {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Publishes `message` with `args` added and returns the printed id.
pub async fn publish(url: &str, args: &[&str], message: &str) -> String {
    let mut all = vec!["publish", "--url", url];
    all.extend_from_slice(args);
    all.push(message);
    let done = run(&all, "", &[]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    let id = done.stdout.trim().to_owned();
    assert!(!id.is_empty() && !id.contains('\n'), "{:?}", done.stdout);
    id
}

/// A command still running, its output read line by line.
pub struct Running {
    pub child: Child,
    stdout: UnboundedReceiver<String>,
    stderr: UnboundedReceiver<String>,
}

pub fn lines_of(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> UnboundedReceiver<String> {
    let (send, receive) = unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

impl Running {
    pub fn start(args: &[&str]) -> Self {
        let mut child = client(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// `ssehub subscribe --url URL ARGS...`, once it says it is connected.
    pub async fn subscribe(url: &str, args: &[&str]) -> Self {
        let mut all = vec!["subscribe", "--url", url];
        all.extend_from_slice(args);
        let mut running = Self::start(&all);
        running.stderr_until("connected to").await;
        running
    }

    /// The next line of standard output.
    pub async fn line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.stdout.recv())
            .await
            .expect("no output line in time")
            .expect("standard output closed")
    }

    /// The next line of standard output, as JSON.
    pub async fn json(&mut self) -> Value {
        let line = self.line().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Standard error lines up to and including the first holding `needle`.
    pub async fn stderr_until(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(PATIENCE, self.stderr.recv())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} on stderr in time: {seen:?}"))
                .unwrap_or_else(|| panic!("stderr closed before {needle:?}: {seen:?}"));
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }

    pub async fn exit_code(&mut self) -> i32 {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the command did not end")
            .unwrap()
            .code()
            .unwrap_or(-1)
    }
}

/// The server binary on `127.0.0.1:port` (a port given, so a restart can take it again), once
/// it logs that it listens.
pub async fn serve_on(port: u16, args: &[&str]) -> Child {
    let bind = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssehub"))
        .args(["--bind", &bind])
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = lines_of(child.stdout.take().unwrap());
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.recv().await {
            if line.contains("addr=") {
                return;
            }
        }
        panic!("ssehub exited before listening");
    })
    .await
    .expect("the server did not start in time");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while lines.recv().await.is_some() {} });
    child
}

/// Sends SIGTERM to `child` (through `kill(1)`: no unsafe code) and waits for it to exit 0.
pub async fn terminate(child: &mut Child) {
    let pid = child.id().expect("already exited").to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exited = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the server did not exit")
        .unwrap();
    assert!(exited.success(), "{exited}");
}
