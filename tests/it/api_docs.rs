//! The API documents over a real socket, and regression tests for what fuzzing them found
//! (`tests/api-fuzz/run` runs schemathesis against the served OpenAPI document).

use crate::common;

use common::mercure::publish;
use common::spawn_app;
use serde_json::Value;

async fn get(app: &common::TestApp, path: &str) -> (u16, String, String) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, kind, response.text().await.unwrap())
}

#[tokio::test]
async fn both_documents_are_served_as_json() {
    let app = spawn_app(|_| {}).await;
    let (status, kind, text) = get(&app, "/api/openapi.json").await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let openapi: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"]["/stream"]["get"].is_object());
    assert!(openapi["paths"]["/api/openapi.json"]["get"].is_object());
    let (status, kind, text) = get(&app, "/api/asyncapi.json").await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let asyncapi: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(asyncapi["asyncapi"], "3.0.0");
    assert_eq!(asyncapi["channels"]["nativeLive"]["address"], "/stream");
}

/// Found by schemathesis's stateful phase: `GET /api/topics` lists Mercure topics (URLs), and
/// their history was refused with 400 because the events route checked native topic rules.
#[tokio::test]
async fn the_history_of_a_listed_mercure_topic_can_be_read() {
    let app = spawn_app(|_| {}).await;
    let book = "https://example.com/books/1";
    let id = publish(&app, &[("topic", book), ("data", "Dune")]).await;
    let topics = app.get_json("/api/topics").await;
    assert!(
        topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["topic"] == book),
        "{topics}"
    );
    for path in [
        "/api/topics/https%3A%2F%2Fexample.com%2Fbooks%2F1/events",
        "/api/topics/https://example.com/books/1/events",
    ] {
        let (status, _, text) = get(&app, path).await;
        assert_eq!(status, 200, "{path}: {text}");
        let page: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(page["topic"], book, "{path}");
        assert_eq!(page["events"][0]["id"], id.as_str(), "{path}");
        assert_eq!(page["events"][0]["message"], "Dune", "{path}");
    }
    // Still refused: a topic no hub could hold.
    let (status, kind, _) = get(&app, "/api/topics/a%01b/events").await;
    assert_eq!((status, kind.as_str()), (400, "application/json"));
}
