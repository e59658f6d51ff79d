//! The Mercure endpoint's subscriptions over real sockets, from the drafts' "Subscription"
//! section (`../shared/reference/mercure/`): the selectors of both revisions, relative topics,
//! malformed requests, and the one hub shared with the native API. Publication is in
//! `tests/it/mercure.rs`.

use crate::common;

use common::mercure::*;
use common::{message, spawn_app};

const BOOK: &str = "https://example.com/books/1";

#[tokio::test]
async fn selectors_of_both_revisions_pick_their_topics() {
    let app = spawn_app(|_| {}).await;
    let here = format!("http://{}/books/1", app.addr);
    let selectors: [(&str, &str, &[&str]); 7] = [
        ("topic", BOOK, &["1"]),
        ("topic", "*", &["1", "2", "reviews", "org", "here"]),
        ("topic", "https://example.com/books/{id}", &["1", "2"]),
        ("match", BOOK, &["1"]),
        ("match_exact", BOOK, &["1"]),
        (
            "match_urlpattern",
            "https://example.com/books/:id",
            &["1", "2"],
        ),
        ("match_urlpattern", "/books/:id", &["here"]),
    ];
    let mut streams = Vec::new();
    for (name, value, _) in &selectors {
        streams.push(subscribe(&app, &[(*name, *value)], &[]).await);
    }
    publish(&app, &[("topic", BOOK), ("data", "1")]).await;
    publish(
        &app,
        &[("topic", "https://example.com/books/2"), ("data", "2")],
    )
    .await;
    let reviews = "https://example.com/books/1/reviews";
    publish(&app, &[("topic", reviews), ("data", "reviews")]).await;
    publish(
        &app,
        &[("topic", "https://example.org/books/1"), ("data", "org")],
    )
    .await;
    publish(&app, &[("topic", &here), ("data", "here")]).await;
    // Every stream matches one of these topics; `*` matches both, and still gets it once.
    publish(&app, &[("topic", BOOK), ("topic", &here), ("data", "end")]).await;
    publish(
        &app,
        &[("topic", BOOK), ("topic", &here), ("data", "end 2")],
    )
    .await;
    for ((name, value, expected), stream) in selectors.iter().zip(&mut streams) {
        let data = datas_until(stream, "end 2").await;
        let mut want: Vec<&str> = expected.to_vec();
        want.extend(["end", "end 2"]);
        assert_eq!(data, want, "{name}={value}");
    }
}

#[tokio::test]
async fn relative_topics_resolve_against_the_hub_url() {
    // URL Pattern: "When evaluating a relative pattern or a relative topic, the hub MUST use
    // the hub's URL as the base URL."
    let app = spawn_app(|_| {}).await;
    let absolute = format!("http://{}/books/:id", app.addr);
    let mut relative_pattern = subscribe(&app, &[("match_urlpattern", "/books/:id")], &[]).await;
    let mut absolute_pattern = subscribe(&app, &[("match_urlpattern", &absolute)], &[]).await;
    publish(&app, &[("topic", "/books/1"), ("data", "relative")]).await;
    // Both patterns match this absolute topic on the hub's own host.
    let sentinel = format!("http://{}/books/2", app.addr);
    publish(&app, &[("topic", &sentinel), ("data", "sentinel")]).await;
    let mut wrong = Vec::new();
    for (pattern, stream) in [
        ("/books/:id", &mut relative_pattern),
        (absolute.as_str(), &mut absolute_pattern),
    ] {
        let got = datas_until(stream, "sentinel").await;
        if got != ["relative", "sentinel"] {
            wrong.push(format!(
                "match_urlpattern={pattern}, topic /books/1 then {sentinel}: \
                 expected [relative, sentinel], got {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn an_update_reaches_a_subscriber_of_several_of_its_topics_once() {
    let app = spawn_app(|_| {}).await;
    let pattern = ("match_urlpattern", "https://example.com/c/:id");
    let mut several = subscribe(&app, &[("topic", "a"), ("match", "b"), pattern], &[]).await;
    let mut alternate_only = subscribe(&app, &[("match", "b")], &[]).await;
    let topics = [
        ("topic", "a"),
        ("topic", "b"),
        ("topic", "https://example.com/c/1"),
    ];
    publish(&app, &[topics[0], topics[1], topics[2], ("data", "once")]).await;
    publish(&app, &[("topic", "b"), ("data", "after")]).await;
    assert_eq!(datas_until(&mut several, "after").await, ["once", "after"]);
    assert_eq!(
        datas_until(&mut alternate_only, "after").await,
        ["once", "after"]
    );
}

#[tokio::test]
async fn malformed_subscriptions_are_400() {
    let app = spawn_app(|_| {}).await;
    let many: String = (0..17).map(|i| format!("match=t{i}&")).collect();
    let mut wrong = Vec::new();
    for query in [
        "",
        "last_event_id=x",
        "match_foo=a",
        "topic=a&match_foo=a",
        "topic=a&MATCHx=a",
        "topic=a&Match=a",
        "topic=a&matchexact=a",
        "topic=a&match_type=exact",
        "match_urlpattern=https://example.com/(",
        "match_urlpattern=https://example.com/books/:id(",
        "match=a%01b",
        "match=a%E2%80%8Bb",
        "match_urlpattern=/a%7F",
        "topic=a%C2%85",
        many.as_str(),
    ] {
        let status = subscribe_status(&app, query).await;
        if status != "400" {
            wrong.push(format!("GET ?{query}: expected 400, got {status}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn non_ascii_parameter_names_are_no_trouble() {
    // Not in the `match` namespace (`matcé` does not begin with `match`): ignored.
    let app = spawn_app(|_| {}).await;
    let status = subscribe_status(&app, "topic=a&matc%C3%A9=1").await;
    assert_eq!(status, "200", "GET ?topic=a&matc%C3%A9=1");
}

#[tokio::test]
async fn the_native_api_and_mercure_are_one_hub() {
    let app = spawn_app(|_| {}).await;
    let mut mercure = subscribe(&app, &[("topic", "a")], &[]).await;
    let mut native = app.stream("/stream?mode=live&topic=a").await;
    let id = app.publish("a", "from native").await.to_string();
    let event = mercure.next().await.unwrap();
    assert_eq!(
        (event.id.as_deref(), event.data.as_str()),
        (Some(&*id), "from native")
    );
    assert_eq!(event.event, "message");
    assert_eq!(message(&native.next_event().await.unwrap()), "from native");
    for custom in [None, Some("rev-1")] {
        let mut pairs = vec![("topic", "a"), ("data", "from mercure")];
        pairs.extend(custom.map(|id| ("id", id)));
        let id = publish(&app, &pairs).await;
        assert_eq!(custom.unwrap_or(&id), id.as_str());
        let event = native.next_event().await.unwrap();
        assert_eq!(message(&event), "from mercure");
        assert_eq!(event.id.as_deref(), Some(&*id));
        assert_eq!(mercure.next().await.unwrap().id.as_deref(), Some(&*id));
    }
}
