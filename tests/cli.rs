//! The command-line client end to end: the real `ssehub` binary publishing to and subscribing
//! from a real `ssehub` server (another process of the same binary) on a loopback port, over
//! HTTP and HTTPS, natively and as a Mercure client. Synchronised on the lines the client
//! prints (`connected to ...` on standard error, events on standard output), never on sleeps.

mod common;

use std::process::Stdio;

use common::auth::SECRET;
use common::redis::make_certificates;
use common::{spawn_binary, PATIENCE};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// The key flags' environment, which the client would otherwise mint tokens with.
const KEY_ENV: [&str; 5] = [
    "SSEHUB_JWT_KEY",
    "SSEHUB_PUBLISHER_JWT_KEY",
    "SSEHUB_SUBSCRIBER_JWT_KEY",
    "SSEHUB_TOKEN",
    "MERCURE_JWT_KEY",
];

fn client(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssehub"));
    command.args(args).kill_on_drop(true);
    for name in KEY_ENV {
        command.env_remove(name);
    }
    command
}

/// A finished command: exit code, standard output, standard error.
struct Done {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs a client command to its end, with `stdin` as its standard input.
async fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Done {
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
async fn publish(url: &str, args: &[&str], message: &str) -> String {
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
struct Running {
    child: Child,
    stdout: UnboundedReceiver<String>,
    stderr: UnboundedReceiver<String>,
}

fn lines_of(pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> UnboundedReceiver<String> {
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
    fn start(args: &[&str]) -> Self {
        let mut child = client(args)
            .stdin(Stdio::null())
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
    async fn subscribe(url: &str, args: &[&str]) -> Self {
        let mut all = vec!["subscribe", "--url", url];
        all.extend_from_slice(args);
        let mut running = Self::start(&all);
        running.stderr_until("connected to").await;
        running
    }

    /// The next line of standard output.
    async fn line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.stdout.recv())
            .await
            .expect("no output line in time")
            .expect("standard output closed")
    }

    /// The next line of standard output, as JSON.
    async fn json(&mut self) -> Value {
        let line = self.line().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Standard error lines up to and including the first holding `needle`.
    async fn stderr_until(&mut self, needle: &str) -> Vec<String> {
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

    async fn exit_code(&mut self) -> i32 {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the command did not end")
            .unwrap()
            .code()
            .unwrap_or(-1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_prints_ids_and_subscribe_prints_the_events_as_text_and_json() {
    let (_server, addr) = spawn_binary(&[]).await;
    let url = format!("http://{addr}");
    let mut text = Running::subscribe(&url, &["--topic", "news"]).await;
    let mut json = Running::subscribe(&url, &["--topic", "news", "--json"]).await;

    let id = publish(&url, &["--topic", "news", "--event", "note"], "hello world").await;
    assert!(id.starts_with("urn:ssehub:"), "{id}");
    let line = text.line().await;
    assert!(
        line.ends_with(&format!("  news  {id}  note  hello world")),
        "{line}"
    );
    let event = json.json().await;
    assert_eq!(
        (
            &event["topic"],
            &event["id"],
            &event["event"],
            &event["message"]
        ),
        (
            &Value::from("news"),
            &Value::from(id.as_str()),
            &Value::from("note"),
            &Value::from("hello world")
        )
    );
    assert!(event["time"].as_str().unwrap().ends_with('Z'), "{event}");

    // One event per non-empty line of standard input, each id printed.
    let done = run(
        &["publish", "--url", &url, "--topic", "news", "--lines"],
        "a\nb\n\nc\n",
        &[],
    )
    .await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    let ids: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(ids.len(), 3, "{}", done.stdout);
    for (message, id) in ["a", "b", "c"].iter().zip(&ids) {
        let event = json.json().await;
        assert_eq!(
            (event["message"].as_str(), event["id"].as_str()),
            (Some(*message), Some(*id))
        );
    }
    // The whole of standard input as one message, its last line break dropped.
    let done = run(
        &["publish", "--url", &url, "--topic", "news"],
        "two\nlines\n",
        &[],
    )
    .await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(json.json().await["message"], "two\nlines");
    for _ in 0..3 {
        text.line().await;
    }
    assert!(text.line().await.ends_with("  message  two\\nlines"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_ends_at_close_with_exit_zero() {
    let (_server, addr) = spawn_binary(&["--interval", "50ms"]).await;
    let url = format!("http://{addr}");
    let mut burst = Running::subscribe(&url, &["--topic", "t", "--mode", "burst", "--json"]).await;
    let id = publish(&url, &["--topic", "t"], "thrice").await;
    for sequence in 1..=3 {
        let event = burst.json().await;
        assert_eq!(event["id"], id.as_str());
        assert_eq!(event["message"], "thrice");
        assert_eq!(
            (event["sequence"].as_u64(), event["total"].as_u64()),
            (Some(sequence), Some(3))
        );
    }
    assert_eq!(burst.exit_code().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_across_server_side_closes_without_loss_or_duplicate() {
    // Every stream is ended by the server after 1 s (`close`, status `lifetime`); the client
    // comes back 200 ms later with Last-Event-ID while events keep being published.
    let (_server, addr) = spawn_binary(&["--max-stream-lifetime", "1s", "--retry-ms", "200"]).await;
    let url = format!("http://{addr}");
    let mut follower = Running::subscribe(&url, &["--topic", "r", "--json"]).await;
    let total = 40;
    let publisher = {
        let url = url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            for n in 0..total {
                let answer: Value = client
                    .post(format!("{url}/api/messages"))
                    .json(&serde_json::json!({"message": format!("m{n}"), "topic": "r"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                ids.push(answer["data"]["id"].as_str().unwrap().to_owned());
                tokio::time::sleep(std::time::Duration::from_millis(75)).await;
            }
            ids
        })
    };
    let mut received = Vec::new();
    while received.len() < total {
        received.push(follower.json().await);
    }
    let ids = publisher.await.unwrap();
    let got: Vec<&str> = received.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids, "every event once, in order");
    let messages: Vec<&str> = received
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..total).map(|n| format!("m{n}")).collect();
    assert_eq!(messages, expected);
    assert!(
        received.iter().any(|e| e["replayed"] == true),
        "some events were missed while disconnected and replayed on resume"
    );
    let notices = follower
        .stderr_until("reconnecting in 200 ms with Last-Event-ID")
        .await;
    assert!(
        notices
            .iter()
            .any(|n| n.contains("the server ended the stream (lifetime)")),
        "{notices:?}"
    );
    follower.stderr_until("(after urn:ssehub:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercure_publish_subscribe_and_resume() {
    let (_server, addr) = spawn_binary(&[]).await;
    let url = format!("http://{addr}");
    let topic = "https://example.com/books/1";
    let mut reader = Running::subscribe(
        &url,
        &[
            "--mercure",
            "--topic",
            "https://example.com/books/{id}",
            "--json",
        ],
    )
    .await;
    let args = ["--mercure", "--topic", topic, "--event", "book"];
    let first = publish(
        &url,
        &[&args[..], &["--id", "book-1"]].concat(),
        r#"{"title": "Dune"}"#,
    )
    .await;
    assert_eq!(first, "book-1");
    let event = reader.json().await;
    assert_eq!(event["id"], "book-1");
    assert_eq!(event["event"], "book");
    assert_eq!(event["message"], r#"{"title": "Dune"}"#);
    assert_eq!(event["topic"], Value::Null);
    let second = publish(&url, &args, "second").await;
    assert!(second.starts_with("urn:ssehub:"), "{second}");
    assert_eq!(reader.json().await["id"], second.as_str());

    // Resume after the first: the second is replayed.
    let mut resumed = Running::subscribe(
        &url,
        &["--mercure", "--topic", topic, "--last-event-id", "book-1"],
    )
    .await;
    let line = resumed.line().await;
    assert!(
        line.contains(&format!("  -  {second}  book  second")),
        "{line}"
    );

    let done = run(&["publish", "--url", &url, "--mercure", "x"], "", &[]).await;
    assert_eq!(done.code, 2);
    assert!(
        done.stderr.contains("--mercure needs --topic"),
        "{}",
        done.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refusals_exit_one_and_tokens_work() {
    let (_server, addr) = spawn_binary(&["--jwt-key", SECRET]).await;
    let url = format!("http://{addr}");
    let done = run(
        &["publish", "--url", &url, "--topic", "p", "no token"],
        "",
        &[],
    )
    .await;
    assert_eq!(done.code, 1, "{}", done.stderr);
    assert!(done.stderr.contains("401 Unauthorized"), "{}", done.stderr);
    assert!(
        done.stderr.contains(r#"{"error":"a token is required"}"#),
        "{}",
        done.stderr
    );

    let minted = run(&["token", "--publish", "*", "--jwt-key", SECRET], "", &[]).await;
    let token = minted.stdout.trim();
    publish(&url, &["--topic", "p", "--token", token], "given").await;
    let done = run(
        &["publish", "--url", &url, "--topic", "p", "from env"],
        "",
        &[("SSEHUB_TOKEN", token)],
    )
    .await;
    assert_eq!(done.code, 0, "{}", done.stderr);

    // Minted from the key, as `ssehub token` would: a subscriber granted `p` gets its private
    // events; an anonymous one only the public sentinel.
    let mut granted = Running::subscribe(&url, &["--topic", "p", "--jwt-key", SECRET]).await;
    let mut anonymous = Running::subscribe(&url, &["--topic", "p"]).await;
    publish(
        &url,
        &["--topic", "p", "--private", "--jwt-key", SECRET],
        "secret",
    )
    .await;
    publish(&url, &["--topic", "p", "--jwt-key", SECRET], "sentinel").await;
    assert!(granted.line().await.ends_with("  secret"));
    assert!(granted.line().await.ends_with("  sentinel"));
    assert!(anonymous.line().await.ends_with("  sentinel"));

    let wrong = run(
        &["token", "--publish", "other", "--jwt-key", SECRET],
        "",
        &[],
    )
    .await;
    let done = run(
        &[
            "publish",
            "--url",
            &url,
            "--topic",
            "p",
            "--token",
            wrong.stdout.trim(),
            "x",
        ],
        "",
        &[],
    )
    .await;
    assert_eq!(done.code, 1);
    assert!(done.stderr.contains("403 Forbidden"), "{}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_connection_failures_have_their_exit_codes() {
    let done = run(&["publish", "--url", "ftp://localhost", "x"], "", &[]).await;
    assert_eq!(done.code, 2, "{}", done.stderr);
    let done = run(&["subscribe", "--url", "http://localhost:1"], "", &[]).await;
    assert_eq!(done.code, 2, "no --topic: {}", done.stderr);
    let port = common::redis::free_port();
    let dead = format!("http://127.0.0.1:{port}");
    let done = run(&["publish", "--url", &dead, "x"], "", &[]).await;
    assert_eq!(done.code, 3, "{}", done.stderr);
    assert!(done.stderr.contains("cannot connect"), "{}", done.stderr);
    let done = run(&["subscribe", "--url", &dead, "--topic", "t"], "", &[]).await;
    assert_eq!(done.code, 3, "{}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca() {
    let dir = std::env::temp_dir().join(format!("ssehub-cli-tls-{}", std::process::id()));
    let (ca, cert, key) = make_certificates(&dir);
    let (cert, key, ca) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        ca.to_str().unwrap(),
    );
    let (_server, addr) = spawn_binary(&["--tls-cert", cert, "--tls-key", key]).await;
    let port = addr.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}");
    let mut reader = Running::subscribe(&url, &["--topic", "s", "--ca", ca]).await;
    let id = publish(&url, &["--topic", "s", "--ca", ca], "over tls").await;
    assert!(reader
        .line()
        .await
        .ends_with(&format!("  {id}  message  over tls")));
    // Without the CA, the certificate is not trusted: a connection failure.
    let done = run(&["publish", "--url", &url, "x"], "", &[]).await;
    assert_eq!(done.code, 3, "{}", done.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let done = run(&["completions", shell], "", &[]).await;
        assert_eq!(done.code, 0, "{shell}: {}", done.stderr);
        for word in ["ssehub", "publish", "subscribe", "last-event-id"] {
            assert!(done.stdout.contains(word), "{shell} script lacks {word}");
        }
    }
}
