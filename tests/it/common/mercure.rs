//! Helpers of the Mercure tests (`tests/mercure*.rs`).

use super::auth::{bearer, Reply};
use super::{SseStream, TestApp};

/// The hub's path.
pub const HUB: &str = "/.well-known/mercure";

/// `application/x-www-form-urlencoded` pairs, every reserved character escaped.
pub fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// `POST /.well-known/mercure` of a form body, as `token` if given.
pub async fn post(app: &TestApp, token: Option<&str>, body: &str) -> Reply {
    let mut request = app
        .client
        .post(app.url(HUB))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("authorization", bearer(token));
    }
    Reply::read(request).await
}

/// Publishes as `token`, asserts `200 text/plain; charset=utf-8`; returns the id.
pub async fn publish_with(app: &TestApp, token: Option<&str>, pairs: &[(&str, &str)]) -> String {
    let reply = post(app, token, &form(pairs)).await;
    assert_eq!(reply.status, 200, "{pairs:?}: {reply:?}");
    let kind = reply.header("content-type");
    assert_eq!(kind, Some("text/plain; charset=utf-8"), "{reply:?}");
    assert!(!reply.text.is_empty(), "no id: {reply:?}");
    reply.text
}

/// [`publish_with`] without a token.
pub async fn publish(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    publish_with(app, None, pairs).await
}

/// Subscribes with these query pairs and headers; asserts `200 text/event-stream` and that
/// the response opens with a comment.
pub async fn subscribe(
    app: &TestApp,
    pairs: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> SseStream {
    let url = app.url(&format!("{HUB}?{}", form(pairs)));
    let mut stream = SseStream::open(&app.client, &url, headers).await;
    assert_eq!(stream.status, 200, "{pairs:?}");
    let kind = stream.headers.get("content-type").unwrap();
    assert_eq!(kind, "text/event-stream", "{pairs:?}");
    stream.read_raw_until(b"\n\n").await;
    assert_eq!(
        stream.raw[0],
        b':',
        "{:?}",
        String::from_utf8_lossy(&stream.raw)
    );
    stream
}

/// The data of the next events, up to and including the first whose data is `last`.
pub async fn datas_until(stream: &mut SseStream, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some(last) {
        let event = stream.next().await.expect("the stream ended");
        seen.push(event.data);
    }
    seen
}

/// The status a subscription request gets (an admitted stream is dropped unread).
pub async fn subscribe_status(app: &TestApp, query: &str) -> String {
    let request = app.client.get(app.url(&format!("{HUB}?{query}"))).send();
    match tokio::time::timeout(super::PATIENCE, request).await {
        Ok(Ok(response)) => response.status().as_u16().to_string(),
        Ok(Err(err)) => format!("no response ({err})"),
        Err(_) => "no response in time".into(),
    }
}
