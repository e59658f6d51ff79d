//! The REST side of the seed contract over real TCP: ping, both publish endpoints in every body
//! form, and every bad-input case, each followed by a publish that still works.

use crate::common;

use common::spawn_app;
use serde_json::{json, Value};

#[tokio::test]
async fn ping_answers_pong() {
    let app = spawn_app(|_| {}).await;
    let response = app.client.get(app.url("/api/ping")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["message"], "pong");
    assert!(body["uptime"].is_f64());
}

#[tokio::test]
async fn api_messages_accepts_json() {
    let app = spawn_app(|_| {}).await;
    let (status, body) = app.post_json(json!({"message": "Hello from curl"})).await;
    assert_eq!(status, 201);
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["data"]["message"], "Hello from curl");
    assert_eq!(body["data"]["topic"], "default");
    assert!(body["data"]["id"]
        .as_str()
        .unwrap()
        .parse::<ssehub::sse::EventId>()
        .is_ok());
    assert_eq!(body["data"]["subscribers"], 0);
}

#[tokio::test]
async fn publish_accepts_json_form_and_text() {
    let app = spawn_app(|_| {}).await;
    let json = app
        .client
        .post(app.url("/publish"))
        .json(&json!({"message": "j"}));
    let form = app
        .client
        .post(app.url("/publish"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("message=f+%26+more");
    let text = app
        .client
        .post(app.url("/publish?topic=t"))
        .header("content-type", "text/plain; charset=utf-8")
        .body("plain\ntext");
    for (request, expected, topic) in [
        (json, "j", "default"),
        (form, "f & more", "default"),
        (text, "plain\ntext", "t"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "queued");
        assert_eq!(body["data"]["message"], expected);
        assert_eq!(body["data"]["topic"], topic);
    }
}

/// Sends a raw request and returns status, headers and JSON body.
async fn raw(
    app: &common::TestApp,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, headers, body)
}

/// Method, path, content type, body, expected status.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16);

#[tokio::test]
async fn bad_input_gets_json_errors_and_the_service_keeps_working() {
    let app = spawn_app(|c| {
        c.body_limit = 1024;
        c.max_message = 512;
    })
    .await;
    let json = Some("application/json");
    let cases: Vec<Case> = vec![
        ("POST", "/api/messages", json, b"{not json".to_vec(), 400),
        ("POST", "/api/messages", json, b"[1,2]".to_vec(), 400),
        ("POST", "/api/messages", json, b"{}".to_vec(), 400),
        (
            "POST",
            "/api/messages",
            json,
            br#"{"message": ""}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/messages",
            json,
            br#"{"message": "   "}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/messages",
            json,
            br#"{"message": 5}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/messages",
            json,
            br#"{"message": null}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/messages",
            json,
            br#"{"message": "x", "topic": "a b"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/messages",
            json,
            br#"{"message": "x", "topic": 3}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/messages",
            json,
            br#"{"message": "x", "event": "a\nid: 3"}"#.to_vec(),
            400,
        ),
        ("POST", "/api/messages", json, b"".to_vec(), 400),
        (
            "POST",
            "/api/messages",
            Some("text/plain"),
            b"hello".to_vec(),
            415,
        ),
        (
            "POST",
            "/api/messages",
            None,
            br#"{"message": "x"}"#.to_vec(),
            415,
        ),
        (
            "POST",
            "/publish",
            Some("application/xml"),
            b"<m/>".to_vec(),
            415,
        ),
        (
            "POST",
            "/publish",
            Some("application/x-www-form-urlencoded"),
            b"other=1".to_vec(),
            400,
        ),
        (
            "POST",
            "/publish",
            Some("text/plain"),
            vec![0xff, 0xfe],
            400,
        ),
        (
            "POST",
            "/api/messages",
            json,
            format!(r#"{{"message": "{}"}}"#, "x".repeat(2000)).into_bytes(),
            413,
        ),
        (
            "POST",
            "/api/messages",
            json,
            format!(r#"{{"message": "{}"}}"#, "x".repeat(600)).into_bytes(),
            413,
        ),
        ("GET", "/api/messages", None, vec![], 405),
        ("DELETE", "/api/ping", None, vec![], 405),
        ("PUT", "/stream", None, vec![], 405),
        ("GET", "/api/nope", None, vec![], 404),
        ("GET", "/stream?topic=bad%20topic", None, vec![], 400),
        ("GET", "/stream?mode=sideways", None, vec![], 400),
        ("GET", "/api/topics/x/events?limit=0", None, vec![], 400),
        ("GET", "/api/topics/x/events?after=abc", None, vec![], 400),
    ];
    for (method, path, content_type, body, expected) in cases {
        let (status, headers, json) = raw(&app, method, path, content_type, body.clone()).await;
        assert_eq!(
            status,
            expected,
            "{method} {path} {:?}: {json}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
        if expected == 405 {
            assert!(headers.contains_key("allow"), "{method} {path} lacks Allow");
        }
        if expected == 400 && path == "/api/messages" && body.starts_with(b"{\"message\": \"\"}") {
            assert_eq!(json["error"], "message is required");
        }
        let (status, _) = app.post_json(json!({"message": "still works"})).await;
        assert_eq!(status, 201, "publish after {method} {path}");
    }
}

#[tokio::test]
async fn topics_and_history_endpoints() {
    let app = spawn_app(|_| {}).await;
    let first = app.publish("news/eu", "one").await;
    let second = app.publish("news/eu", "two").await;
    app.publish("other", "three").await;
    assert!(second > first);

    let topics: Value = app.get_json("/api/topics").await;
    let list = topics["topics"].as_array().unwrap();
    let eu = list.iter().find(|t| t["topic"] == "news/eu").unwrap();
    assert_eq!(eu["last_id"], second.to_string());
    assert_eq!(eu["history"], 2);

    let page: Value = app
        .get_json(&format!(
            "/api/topics/news/eu/events?after={first}&limit=10"
        ))
        .await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["message"], "two");
    assert_eq!(events[0]["id"], second.to_string());
}

#[tokio::test]
async fn page_and_assets_are_served() {
    let app = spawn_app(|_| {}).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
}
