//! Mercure reconnection and private updates over real sockets, from the drafts' "Reconnection,
//! State Reconciliation" and "Authorization" sections: cursors from the `Last-Event-ID` header,
//! `last_event_id` (draft-08) and `lastEventID` (draft-07), hub ids and publisher-chosen ids,
//! `earliest`, the `Mercure-Last-Event-ID` response field, and who receives private updates,
//! live and replayed.

use crate::common;

use common::auth::*;
use common::mercure::*;
use common::{message, spawn_app, SseStream, TestApp};

/// The cursor the response reports, in both spellings (draft-08 and draft-07), which agree.
fn anchor(stream: &SseStream) -> Option<String> {
    let value = |name: &str| {
        let value = stream.headers.get(name)?;
        Some(value.to_str().unwrap().to_owned())
    };
    let draft08 = value("mercure-last-event-id");
    assert_eq!(draft08, value("last-event-id"), "the two headers differ");
    draft08
}

/// Publishes on `topic` (with a publisher id if given); returns the id.
async fn put(app: &TestApp, topic: &str, data: &str, id: Option<&str>) -> String {
    let mut pairs = vec![("topic", topic), ("data", data)];
    pairs.extend(id.map(|id| ("id", id)));
    publish(app, &pairs).await
}

#[tokio::test]
async fn every_cursor_spelling_replays_what_followed_it() {
    let app = spawn_app(|_| {}).await;
    let first = put(&app, "r", "first", None).await;
    let custom = put(&app, "r", "second", Some("urn:uuid:second")).await;
    assert_eq!(custom, "urn:uuid:second");
    put(&app, "elsewhere", "other topic", None).await;
    put(&app, "r", "third", None).await;
    let (f, c) = (first.as_str(), custom.as_str());
    const H: &str = "last-event-id";
    // (query, headers, the anchor reported, the updates replayed)
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a [&'a str],
    );
    let cases: &[Case] = &[
        (&[], &[(H, f)], f, &["second", "third"]),
        (&[("last_event_id", f)], &[], f, &["second", "third"]),
        (&[("lastEventID", f)], &[], f, &["second", "third"]),
        (&[], &[(H, c)], c, &["third"]),
        (&[("last_event_id", c)], &[], c, &["third"]),
        (&[("lastEventID", c)], &[], c, &["third"]),
        // The header wins over either query parameter.
        (&[("last_event_id", f)], &[(H, c)], c, &["third"]),
        (&[("lastEventID", c)], &[(H, f)], f, &["second", "third"]),
        (
            &[("last_event_id", "earliest")],
            &[],
            "earliest",
            &["first", "second", "third"],
        ),
        (
            &[],
            &[(H, "earliest")],
            "earliest",
            &["first", "second", "third"],
        ),
    ];
    let mut streams = Vec::new();
    for (query, headers, _, _) in cases {
        let mut pairs = vec![("topic", "r")];
        pairs.extend(query.iter().copied());
        streams.push(subscribe(&app, &pairs, headers).await);
    }
    let mut unknown = subscribe(&app, &[("topic", "r"), ("last_event_id", "nope")], &[]).await;
    assert_eq!(anchor(&unknown).as_deref(), Some("earliest"));
    let mut fresh = subscribe(&app, &[("topic", "r")], &[]).await;
    // Replays come first, then live updates: nothing is repeated before the sentinel.
    put(&app, "r", "sentinel", None).await;
    for ((query, headers, expected_anchor, replayed), stream) in cases.iter().zip(&mut streams) {
        assert_eq!(
            anchor(stream).as_deref(),
            Some(*expected_anchor),
            "{query:?} {headers:?}"
        );
        let mut want = replayed.to_vec();
        want.push("sentinel");
        assert_eq!(
            datas_until(stream, "sentinel").await,
            want,
            "{query:?} {headers:?}"
        );
    }
    assert_eq!(datas_until(&mut fresh, "sentinel").await, ["sentinel"]);
    // What follows an unknown cursor is the hub's choice; the stream goes on live.
    let got = datas_until(&mut unknown, "sentinel").await;
    assert_eq!(got.last().unwrap(), "sentinel");
    // A publisher's id is a cursor on the native API too.
    let path = format!("/stream?mode=live&topic=r&lastEventId={custom}");
    let mut native = app.stream(&path).await;
    assert_eq!(message(&native.next_event().await.unwrap()), "third");
    assert_eq!(message(&native.next_event().await.unwrap()), "sentinel");
    put(&app, "r", "live", Some("urn:uuid:live")).await;
    let live = native.next_event().await.unwrap();
    assert_eq!(
        (message(&live), live.id.as_deref()),
        ("live".into(), Some("urn:uuid:live"))
    );
}

#[tokio::test]
async fn a_reused_publisher_id_resumes_after_its_earliest_update() {
    // "a Last-Event-ID bearing that value MUST resolve to the earliest such update [...] then
    // send all updates published after that one, including any later update carrying the
    // same, reused ID."
    let app = spawn_app(|_| {}).await;
    put(&app, "r", "v1", Some("rev")).await;
    put(&app, "r", "v2", None).await;
    put(&app, "r", "v3", Some("rev")).await;
    let mut stream = subscribe(&app, &[("topic", "r")], &[("last-event-id", "rev")]).await;
    assert_eq!(anchor(&stream).as_deref(), Some("rev"));
    put(&app, "r", "sentinel", None).await;
    assert_eq!(
        datas_until(&mut stream, "sentinel").await,
        ["v2", "v3", "sentinel"]
    );
}

#[tokio::test]
async fn a_publisher_id_shaped_like_a_hub_id_is_still_its_own_cursor() {
    // Publishers choose any id; `2024-1` is theirs, not a position in the hub's sequence.
    let app = spawn_app(|_| {}).await;
    assert_eq!(put(&app, "r", "v1", Some("2024-1")).await, "2024-1");
    put(&app, "r", "v2", None).await;
    let mut stream = subscribe(&app, &[("topic", "r")], &[("last-event-id", "2024-1")]).await;
    let got_anchor = anchor(&stream);
    put(&app, "r", "sentinel", None).await;
    let got = datas_until(&mut stream, "sentinel").await;
    assert_eq!(
        (got_anchor.as_deref(), got.as_slice()),
        (
            Some("2024-1"),
            &["v2".to_owned(), "sentinel".to_owned()][..]
        ),
        "GET ?topic=r, Last-Event-ID: 2024-1 after publishing id=2024-1 (v1) then v2"
    );
}

#[tokio::test]
async fn alternates_and_resume_combine() {
    let app = spawn_app(|_| {}).await;
    let id = publish(&app, &[("topic", "a"), ("topic", "b"), ("data", "both")]).await;
    put(&app, "a", "a only", None).await;
    put(&app, "b", "b only", None).await;
    let earliest = [("match", "b"), ("last_event_id", "earliest")];
    let mut from_start = subscribe(&app, &earliest, &[]).await;
    let mut after = subscribe(
        &app,
        &[("match", "b"), ("match", "a")],
        &[("last-event-id", &id)],
    )
    .await;
    assert_eq!(anchor(&after).as_deref(), Some(id.as_str()));
    put(&app, "b", "sentinel", None).await;
    let got = datas_until(&mut from_start, "sentinel").await;
    assert_eq!(got, ["both", "b only", "sentinel"]);
    let got = datas_until(&mut after, "sentinel").await;
    assert_eq!(got, ["a only", "b only", "sentinel"]);
}

#[tokio::test]
async fn private_updates_reach_tokens_granting_any_of_their_topics() {
    let app = spawn_app(|c| c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into())).await;
    let book = "https://example.com/books/1";
    let mine = "https://example.com/users/42/books/1";
    let route = [("match_urlpattern", "https://example.com/books/:id")];
    let reader = |topics: &[&str]| bearer(&hs256(SUB_SECRET, &legacy(&[], topics)));
    let (alternate, canonical) = (reader(&[mine]), reader(&["https://example.com/books/{id}"]));
    let other = reader(&["https://example.com/books/2"]);
    let here = format!("http://{}/.well-known/mercure", app.addr);
    let details = exact_subscribe(mine);
    let by_draft08 = bearer(&at_jwt(SUB_SECRET, &draft08(&here, details)));
    let tokens = [
        None,
        Some(&alternate),
        Some(&canonical),
        Some(&other),
        Some(&by_draft08),
    ];
    let sees_private = [false, true, true, false, true];
    let mut live = Vec::new();
    for token in tokens {
        live.push(open(&app, &route, token, false).await);
    }
    let alt = ("topic", mine);
    publish(
        &app,
        &[("topic", book), alt, ("private", ""), ("data", "secret 1")],
    )
    .await;
    publish(
        &app,
        &[
            ("topic", book),
            alt,
            ("private", "false"),
            ("data", "secret 2"),
        ],
    )
    .await;
    let bare = format!(
        "{}&private",
        form(&[("topic", book), alt, ("data", "secret 3")])
    );
    assert_eq!(post(&app, None, &bare).await.status, 200);
    publish(&app, &[("topic", book), ("data", "public")]).await;
    let mut replayed = Vec::new();
    for token in tokens {
        replayed.push(open(&app, &route, token, true).await);
    }
    publish(&app, &[("topic", book), ("data", "end")]).await;
    for (i, (stream, sees)) in live
        .iter_mut()
        .chain(&mut replayed)
        .zip(sees_private.iter().cycle())
        .enumerate()
    {
        let want: &[&str] = if *sees {
            &["secret 1", "secret 2", "secret 3", "public", "end"]
        } else {
            &["public", "end"]
        };
        let resumed = if i < tokens.len() { "live" } else { "replayed" };
        let who = tokens[i % tokens.len()]
            .map(String::as_str)
            .unwrap_or("anonymous");
        assert_eq!(datas_until(stream, "end").await, want, "{resumed}, {who}");
        if !sees {
            assert!(!String::from_utf8_lossy(&stream.raw).contains("secret"));
        }
    }
}

/// Subscribes to `route` with this bearer token (if any), from `earliest` if `resume`.
async fn open(
    app: &TestApp,
    route: &[(&str, &str)],
    token: Option<&String>,
    resume: bool,
) -> SseStream {
    let mut headers = Vec::new();
    headers.extend(token.map(|t| ("authorization", t.as_str())));
    if resume {
        headers.push(("last-event-id", "earliest"));
    }
    subscribe(app, route, &headers).await
}

/// Draft-08 authorization details granting `subscribe` on one exact topic.
fn exact_subscribe(topic: &str) -> serde_json::Value {
    let topics = serde_json::json!([{ "match": topic }]);
    serde_json::json!([detail(serde_json::json!(["subscribe"]), topics)])
}
