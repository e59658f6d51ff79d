//! Subscription patterns as an attacker writes them: what one request may cost in memory and
//! CPU, what the hub holds over all requests, and that the bytes come back.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use crate::common::{spawn_app, spawn_binary, PATIENCE};

const HUB: &str = "/.well-known/mercure";

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(key: &str, values: impl IntoIterator<Item = String>) -> String {
    values
        .into_iter()
        .map(|v| format!("{key}={}", encode(&v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Round 2's attack: 16 `\w{200}` URL patterns in a 1 KiB request took ~400 MiB and 3 s of a
/// worker each; four at once stalled `/api/ping` for seconds. Now each is answered at once
/// (accepted or refused with JSON), the server grows by a few MiB, and ping is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_patterns_cost_a_bounded_amount_and_stall_no_one() {
    let (child, addr) = spawn_binary(&[]).await;
    let pid = child.id().unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let ping = || client.get(format!("{base}/api/ping")).send();
    assert_eq!(ping().await.unwrap().status(), 200);
    let before = rss_kib(pid);
    let patterns = |n: usize| {
        query(
            "match_urlpattern",
            (0..16).map(move |i| format!(r"https://*/:a(\w{{200}}0x{n}{i})")),
        )
    };
    let opened = join_all((0..4).map(|n| {
        let url = format!("{base}{HUB}?{}", patterns(n));
        client.get(url).send()
    }));
    let started = Instant::now();
    let (responses, pong) = tokio::join!(opened, ping());
    assert_eq!(pong.unwrap().status(), 200);
    // Generous for a loaded CI: this took 3 s and more.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let mut held = Vec::new();
    for response in responses {
        let response = response.unwrap();
        match response.status().as_u16() {
            200 => held.push(response),
            400 => {
                let body: Value = response.json().await.unwrap();
                assert!(
                    body["error"].as_str().unwrap().contains("pattern"),
                    "{body}"
                );
            }
            other => panic!("status {other}"),
        }
    }
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 48 * 1024, "grew {grown} KiB");
    drop(held);
}

fn url_patterns(n: usize, count: usize) -> String {
    query(
        "match_urlpattern",
        (0..count).map(move |i| format!("https://example.com/s{n}/p{i}/:id")),
    )
}

/// The per-stream allowance answers 400, the hub's budget 503 with `Retry-After`, and every
/// byte comes back when the streams close.
#[tokio::test]
async fn the_pattern_budget_refuses_with_json_and_comes_back() {
    let app = spawn_app(|c| {
        c.max_pattern_bytes_per_stream = 200_000;
        c.max_pattern_bytes = 1_000_000;
    })
    .await;
    let budget = app.state.pattern_budget().clone();
    let open = |query: String| app.client.get(app.url(&format!("{HUB}?{query}"))).send();
    let one = open(url_patterns(0, 2)).await.unwrap();
    assert_eq!(one.status(), 200);
    let per_pattern = budget.used() / 2;
    assert!(per_pattern > 1000, "{per_pattern}");
    // More than one stream's allowance: 400, and nothing kept.
    let too_many = 200_000 / per_pattern + 1;
    assert!(too_many <= 16, "{per_pattern}");
    let used = budget.used();
    let refused = open(url_patterns(1, too_many)).await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-pattern-bytes-per-stream"),
        "{body}"
    );
    assert_eq!(budget.used(), used);
    // Fill the hub with streams within their allowance: then 503 with Retry-After.
    let fits = too_many - 1;
    let mut held = vec![one];
    let mut n = 2;
    let full = loop {
        let response = open(url_patterns(n, fits)).await.unwrap();
        n += 1;
        if response.status() != 200 {
            break response;
        }
        held.push(response);
        assert!(n < 200, "the hub budget never ran out");
    };
    assert_eq!(full.status(), 503);
    assert_eq!(full.headers()["retry-after"], "1");
    let body: Value = full.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("patterns"),
        "{body}"
    );
    assert!(budget.used() <= 1_000_000);
    drop(held);
    let deadline = Instant::now() + PATIENCE;
    while budget.used() != 0 {
        assert!(
            Instant::now() < deadline,
            "{} bytes still held",
            budget.used()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open(url_patterns(0, fits)).await.unwrap().status(), 200);
}

/// Patterns with no literal text to index them by all run for every new topic: past
/// `--max-broad-patterns` distinct ones the hub answers 503, and subscribers of patterns it
/// can index are still served.
#[tokio::test]
async fn patterns_that_match_every_topic_alike_are_capped() {
    let app = spawn_app(|c| c.max_broad_patterns = 8).await;
    let broad = |n: usize| query("topic", (0..4).map(move |i| format!("{{a}}x{n}y{i}{{b}}")));
    let open = |query: String| app.client.get(app.url(&format!("{HUB}?{query}"))).send();
    let mut held = Vec::new();
    for n in 0..2 {
        let response = open(broad(n)).await.unwrap();
        assert_eq!(response.status(), 200);
        held.push(response);
    }
    let refused = open(broad(2)).await.unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-broad-patterns"),
        "{body}"
    );
    let indexed = open(url_patterns(0, 4)).await.unwrap();
    assert_eq!(indexed.status(), 200);
    drop(held);
}
