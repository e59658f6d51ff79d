//! History in `--data-dir` survives the process: real restarts of the binary, graceful and
//! SIGKILL, then clients resume with the ids they had.

use crate::common;

use common::{message, spawn_binary, SseStream};

fn kill(child: &tokio::process::Child, signal: i32) {
    let pid = child.id().unwrap() as i32;
    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, signal)
    };
}

async fn publish(client: &reqwest::Client, addr: &str, topic: &str, text: &str) -> String {
    let response = client
        .post(format!("http://{addr}/api/messages"))
        .json(&serde_json::json!({"message": text, "topic": topic}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["data"]["id"].as_str().unwrap().to_owned()
}

async fn restart_resumes(signal: i32, fsync: &str) {
    let dir = std::env::temp_dir().join(format!(
        "ssehub-durable-{fsync}-{signal}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let data_dir = dir.to_str().unwrap().to_owned();
    let args = ["--data-dir", data_dir.as_str(), "--fsync", fsync];
    let client = reqwest::Client::new();
    let (mut first, addr) = spawn_binary(&args).await;
    let a = publish(&client, &addr, "d", "one").await;
    let b = publish(&client, &addr, "d", "two").await;
    // A Mercure update with the publisher's own id, on the same topic.
    let mercure = client
        .post(format!("http://{addr}/.well-known/mercure"))
        .form(&[("topic", "d"), ("data", "three"), ("id", "book-3")])
        .send()
        .await
        .unwrap();
    assert_eq!(mercure.text().await.unwrap(), "book-3");
    kill(&first, signal);
    first.wait().await.unwrap();

    let (mut second, addr) = spawn_binary(&args).await;
    // Resuming after the first: exactly the two that followed, no gap, nothing twice.
    let mut resumed = SseStream::open(
        &client,
        &format!("http://{addr}/stream?mode=live&topic=d"),
        &[("last-event-id", &a)],
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = resumed.next().await.unwrap();
        assert_ne!(event.event, "gap", "a gap after a restart with {fsync}");
        if event.event == "message" {
            seen.push((message(&event), event.id.unwrap()));
        }
    }
    assert_eq!(seen[0], ("two".to_owned(), b.clone()));
    assert_eq!(seen[1], ("three".to_owned(), "book-3".to_owned()));
    // Ids keep increasing across the restart.
    let c = publish(&client, &addr, "d", "four").await;
    let (old, new): (ssehub::sse::EventId, ssehub::sse::EventId) =
        (b.parse().unwrap(), c.parse().unwrap());
    assert!(new > old, "{c} after {b}");
    let next = resumed.next_event().await.unwrap();
    assert_eq!((message(&next), next.id.unwrap()), ("four".to_owned(), c));
    // The publisher's id resumes too, on the Mercure endpoint.
    let mut mercure = SseStream::open(
        &client,
        &format!("http://{addr}/.well-known/mercure?topic=d&last_event_id=book-3"),
        &[],
    )
    .await;
    assert_eq!(
        mercure.headers.get("mercure-last-event-id").unwrap(),
        "book-3"
    );
    let replayed = mercure.next_event().await.unwrap();
    assert_eq!(replayed.data, "four");
    let ready: serde_json::Value = client
        .get(format!("http://{addr}/api/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["broker"], "durable");
    assert!(ready["store_bytes"].as_u64().unwrap() > 0, "{ready}");
    kill(&second, libc::SIGTERM);
    second.wait().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answered_is_lost_when_killed_with_fsync_always() {
    restart_resumes(libc::SIGKILL, "always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_with_fsync_interval_keeps_history() {
    restart_resumes(libc::SIGTERM, "interval").await;
}
