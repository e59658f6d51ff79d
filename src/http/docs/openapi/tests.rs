//! The document against the router: every route the router serves is documented with exactly
//! the methods it answers, every documented path is served, and every error refers to the one
//! error schema.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::document;
use crate::http::{router, routes};

fn doc() -> Value {
    serde_json::from_str(document()).expect("the document is JSON")
}

/// Whether the router path `route` (axum syntax) serves the documented `path`: equal, or a
/// catch-all `{*rest}` standing for one or more documented segments.
fn serves(route: &str, path: &str) -> bool {
    match route.split_once("{*") {
        Some((prefix, _)) => path.starts_with(prefix) && path.len() > prefix.len(),
        None => route == path,
    }
}

/// A concrete path the router sends to `route` (a catch-all filled in as the topics route
/// expects).
fn concrete(route: &str) -> String {
    match route.split_once("{*") {
        Some((prefix, _)) => format!("{prefix}some-topic/events"),
        None => route.to_owned(),
    }
}

/// The methods the router answers on `path`, from the `Allow` header of its 405 to a method no
/// route uses.
async fn served_methods(app: &axum::Router, path: &str) -> BTreeSet<String> {
    let request = Request::builder()
        .method(Method::DELETE)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
    let allow = response.headers()[header::ALLOW]
        .to_str()
        .unwrap()
        .to_owned();
    allow
        .split(',')
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| m != "head" && m != "options")
        .collect()
}

#[tokio::test]
async fn every_route_is_documented_with_the_methods_it_serves() {
    let config = crate::Config::with_bind("127.0.0.1:0".parse().unwrap());
    let app = router(crate::app::in_memory(config).unwrap());
    let doc = doc();
    let paths = doc["paths"].as_object().unwrap();
    let served = routes().paths;
    assert!(served.len() >= 15, "{served:?}");
    for route in &served {
        let methods = served_methods(&app, &concrete(route)).await;
        let documented: Vec<&String> = paths.keys().filter(|p| serves(route, p)).collect();
        assert!(
            !documented.is_empty(),
            "route {route} is not in the OpenAPI document"
        );
        for path in documented {
            let operations: BTreeSet<String> = paths[path]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.as_str() != "parameters")
                .cloned()
                .collect();
            assert_eq!(operations, methods, "methods of {path} (route {route})");
        }
    }
    for path in paths.keys() {
        assert!(
            served.iter().any(|route| serves(route, path)),
            "{path} is documented but not served"
        );
    }
}

#[test]
fn errors_refer_to_the_one_error_schema_and_bodies_are_declared() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["components"]["schemas"]["ErrorBody"]["properties"]["error"].is_object());
    for scheme in ["bearer", "cookie", "legacyCookie", "queryToken"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    let mut errors = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let readiness = path == "/api/ready" && status == "503";
                if (status.starts_with('4') || status.starts_with('5')) && !readiness {
                    let schema = &response["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > 40, "{errors}");
    let stream = &doc["paths"]["/stream"]["get"]["responses"]["200"]["content"];
    assert!(stream["text/event-stream"].is_object(), "{stream}");
    let publish = &doc["paths"]["/publish"]["post"]["requestBody"]["content"];
    for kind in [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
    ] {
        assert!(publish[kind].is_object(), "{kind}");
    }
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    let text = document();
    let mut refs = 0;
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &piece[..piece.find('"').unwrap()]);
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref #{pointer}");
        refs += 1;
    }
    assert!(refs > 50, "{refs}");
}
