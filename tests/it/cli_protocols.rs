//! The command-line client against a hub that asks more of it: Mercure publishing and
//! subscribing, tokens (refusals exit 1), HTTPS with a private CA, and the exit codes of usage and
//! connection errors. The real `ssehub` binary on both ends, synchronised on the lines the client
//! prints, never on sleeps (`tests/it/cli.rs` has the native basics).

use crate::common;

use common::auth::SECRET;
use common::cli::{publish, run, Running};
use common::redis::{free_port, make_certificates};
use common::spawn_binary;
use serde_json::Value;

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
    let port = free_port();
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
