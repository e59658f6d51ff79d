//! The command-line client end to end: the real `ssehub` binary publishing to and subscribing
//! from a real `ssehub` server (another process of the same binary) on a loopback port: lines,
//! bursts, reconnects, restarts, stalls, completions (`tests/it/cli_protocols.rs`: Mercure, tokens,
//! HTTPS, exit codes). Synchronised on the lines the client
//! prints (`connected to ...` on standard error, events on standard output), never on sleeps.

use crate::common;

use common::cli::{publish, run, serve_on, terminate, Running};
use common::redis::free_port;
use common::spawn_binary;
use serde_json::Value;

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
async fn lines_keep_publishing_across_the_servers_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let (_server, addr) = spawn_binary(&["--idle-timeout", "300ms"]).await;
    let url = format!("http://{addr}");
    let mut lines = Running::start(&["publish", "--url", &url, "--topic", "l", "--lines"]);
    let mut stdin = lines.child.stdin.take().unwrap();
    let mut ids = Vec::new();
    for line in ["first\n", "second\n", "third\n"] {
        stdin.write_all(line.as_bytes()).await.unwrap();
        ids.push(lines.line().await);
        // The subject of the test, not a synchronisation: longer than the server's idle
        // timeout, so it closes the kept-alive connection and the next publish needs another.
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    }
    drop(stdin);
    assert_eq!(lines.exit_code().await, 0);
    let history: Value = reqwest::get(format!("{url}/api/topics/l/events"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(held, ids, "each line published once");
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
    // Every stream is ended by the server after 1 s (native: `close`, status `lifetime`); the
    // client comes back 200 ms later with Last-Event-ID while events keep being published.
    let (_server, addr) = spawn_binary(&["--max-stream-lifetime", "1s", "--retry-ms", "200"]).await;
    let url = format!("http://{addr}");
    let mut follower = Running::subscribe(&url, &["--topic", "r", "--json"]).await;
    // A Mercure stream ends with a comment and sets no `retry:`: back after 3 s, as a browser.
    let mut mercure = Running::subscribe(&url, &["--mercure", "--topic", "r", "--json"]).await;
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

    let mut through_mercure = Vec::new();
    while through_mercure.len() < total {
        through_mercure.push(mercure.json().await["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(through_mercure, ids, "Mercure: every event once, in order");
    mercure
        .stderr_until("reconnecting in 3000 ms with Last-Event-ID urn:ssehub:")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_restart_of_the_server_on_the_same_port_with_its_history() {
    // A rolling restart: SIGTERM ends the live stream (`close`, status `shutdown`); the client
    // retries while nothing listens, and resumes on the new process, whose history
    // (`--data-dir`) holds what was published meanwhile.
    let dir = std::env::temp_dir().join(format!("ssehub-cli-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let args = [
        "--data-dir",
        dir.to_str().unwrap(),
        "--retry-ms",
        "300",
        "--drain-spread",
        "200ms",
        "--shutdown-grace",
        "1s",
    ];
    let mut first = serve_on(port, &args).await;
    let url = format!("http://127.0.0.1:{port}");
    let mut follower = Running::subscribe(&url, &["--topic", "d", "--json"]).await;
    let before = publish(&url, &["--topic", "d"], "before").await;
    assert_eq!(follower.json().await["id"], before.as_str());

    terminate(&mut first).await;
    follower
        .stderr_until("the server ended the stream (shutdown)")
        .await;
    let _second = serve_on(port, &args).await;
    let during = publish(&url, &["--topic", "d"], "after the restart").await;
    let after = publish(&url, &["--topic", "d"], "later").await;
    follower.stderr_until(&format!("(after {before})")).await;
    // Any duplicate of `before` would come before these.
    let next = follower.json().await;
    assert_eq!(
        (next["id"].as_str(), next["message"].as_str()),
        (Some(during.as_str()), Some("after the restart"))
    );
    assert_eq!(follower.json().await["id"], after.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_retries_when_the_server_is_gone() {
    let port = free_port();
    let mut server = serve_on(port, &["--retry-ms", "100"]).await;
    let url = format!("http://127.0.0.1:{port}");
    let mut follower = Running::subscribe(&url, &["--topic", "g", "--max-retries", "2"]).await;
    // An event read means the stream's `retry: 100`, sent before it, was read too.
    publish(&url, &["--topic", "g"], "before the end").await;
    follower.line().await;
    server.kill().await.unwrap();
    let notices = follower
        .stderr_until("gave up after 2 failed reconnection attempts")
        .await;
    assert!(
        notices.iter().any(|n| n.contains("reconnecting in 100 ms")),
        "{notices:?}"
    );
    assert_eq!(follower.exit_code().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_reconnected_after_the_stall_timeout() {
    // The server's heartbeat (15 s) is far above the client's stall timeout: the client gives
    // up on the silent connection and opens another with Last-Event-ID, losing nothing.
    let (_server, addr) = spawn_binary(&["--retry-ms", "100"]).await;
    let url = format!("http://{addr}");
    let mut follower = Running::subscribe(&url, &["--topic", "q", "--stall-timeout", "1s"]).await;
    // Within the first second (a publish takes milliseconds), so the cursor is set before the
    // first reconnection; from then on every gap is replayed.
    let first = publish(&url, &["--topic", "q"], "first").await;
    assert!(follower.line().await.ends_with("  first"));
    follower
        .stderr_until(&format!(
            "nothing received for 1s (not even a heartbeat); reconnecting in 100 ms with Last-Event-ID {first}"
        ))
        .await;
    let id = publish(&url, &["--topic", "q"], "still here").await;
    // Next, with no duplicate of `first` before it (live, or replayed if it was published
    // while the client was away).
    let line = follower.line().await;
    assert!(
        line.contains(&format!("  {id}  message")) && line.ends_with("  still here"),
        "{line}"
    );
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

/// `--version` names the package version and the commit the binary was built from.
#[tokio::test]
async fn the_version_names_the_commit() {
    let done = run(&["--version"], "", &[]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    let line = done.stdout.trim();
    let rest = line
        .strip_prefix(&format!("ssehub {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line:?}"));
    // What build.rs found: `SSEHUB_COMMIT`, the checkout's short hash, or `unknown`.
    assert_eq!(rest, env!("SSEHUB_COMMIT"));
    assert!(
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_graphic()),
        "{line:?}"
    );
}
