//! The Mercure endpoint on two nodes sharing one real Redis: an update published on one node
//! reaches Mercure subscribers of the other whole (alternates, publisher id, type, retry,
//! multi-line data), and the other node resumes from the publisher's id.

use crate::common;

use std::time::Duration;

use common::mercure::*;
use common::redis::RedisServer;
use common::{spawn_app, TestApp};

async fn node(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    let app = spawn_app(move |c| {
        c.broker = Some(url);
        c.broker_timeout = Duration::from_millis(500);
    })
    .await;
    app.wait_ready().await;
    app
}

const BOOK: &str = "https://example.com/books/1";
const ALTERNATE: &str = "https://example.com/users/42/books/1";

#[tokio::test]
async fn a_mercure_update_crosses_nodes_whole_and_resumes_there() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    // One subscriber of the canonical topic, one of the alternate only.
    let pattern = ("match_urlpattern", "https://example.com/books/:id");
    let mut by_canonical = subscribe(&b, &[pattern], &[]).await;
    let mut by_alternate = subscribe(&b, &[("topic", ALTERNATE)], &[]).await;
    let full = [
        ("topic", BOOK),
        ("topic", ALTERNATE),
        ("data", "{\n  \"title\": \"one\"\r\n}"),
        ("id", "urn:uuid:book-1-v2"),
        ("type", "book"),
        ("retry", "2500"),
    ];
    assert_eq!(publish(&a, &full).await, "urn:uuid:book-1-v2");
    for stream in [&mut by_canonical, &mut by_alternate] {
        let event = stream.next().await.unwrap();
        assert_eq!(event.id.as_deref(), Some("urn:uuid:book-1-v2"));
        assert_eq!((event.event.as_str(), event.retry), ("book", Some(2500)));
        assert_eq!(event.data, "{\n  \"title\": \"one\"\n}");
    }
    let both = [("topic", BOOK), ("topic", ALTERNATE)];
    let next = publish(&a, &[both[0], both[1], ("data", "next")]).await;
    publish(&a, &[("topic", BOOK), ("data", "canonical only")]).await;
    // Node B resumes from the publisher's id, by either subscription.
    let from = [("last-event-id", "urn:uuid:book-1-v2")];
    let mut resumed_canonical = subscribe(&b, &[pattern], &from).await;
    let query = [
        ("topic", ALTERNATE),
        ("last_event_id", "urn:uuid:book-1-v2"),
    ];
    let mut resumed_alternate = subscribe(&b, &query, &[]).await;
    for stream in [&resumed_canonical, &resumed_alternate] {
        let anchor = stream.headers.get("mercure-last-event-id");
        assert_eq!(anchor.unwrap(), "urn:uuid:book-1-v2");
    }
    publish(&a, &[both[0], both[1], ("data", "sentinel")]).await;
    let got = datas_until(&mut resumed_canonical, "sentinel").await;
    assert_eq!(got, ["next", "canonical only", "sentinel"]);
    // The live subscribers got each update once, in order.
    let got = datas_until(&mut by_canonical, "sentinel").await;
    assert_eq!(got, ["next", "canonical only", "sentinel"]);
    let got = datas_until(&mut by_alternate, "sentinel").await;
    assert_eq!(got, ["next", "sentinel"]);
    // A hub id issued on node A is a cursor on node B as well.
    let mut after_next = subscribe(&b, &[pattern], &[("last-event-id", &next)]).await;
    assert_eq!(
        after_next.headers.get("mercure-last-event-id").unwrap(),
        next.as_str()
    );
    publish(&a, &[("topic", BOOK), ("data", "end")]).await;
    let got = datas_until(&mut after_next, "end").await;
    assert_eq!(got, ["canonical only", "sentinel", "end"]);
    // Last: the update replayed through its alternate topic only.
    let got = datas_until(&mut resumed_alternate, "sentinel").await;
    assert_eq!(
        got,
        ["next", "sentinel"],
        "GET ?topic={ALTERNATE}&last_event_id=urn:uuid:book-1-v2 on node B"
    );
}
