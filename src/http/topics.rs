//! `GET /api/topics` and `GET /api/topics/{topic}/events?after=ID&limit=N`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::AppState;
use crate::auth::Grants;
use crate::error::ApiError;
use crate::hub::TopicName;

/// Largest page of `GET /api/topics/{topic}/events`.
const MAX_LIMIT: usize = 1000;
/// Default page size.
const DEFAULT_LIMIT: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/topics", get(list))
        .route("/api/topics/{*topic_events}", get(events))
}

/// The caller's subscriber grants, from a token if it presented one.
fn reader(app: &AppState, uri: &Uri, headers: &HeaderMap) -> Result<Option<Grants>, ApiError> {
    let meta = app.request_meta(headers, uri, None);
    Ok(app.auth().subscriber(&meta.credentials(None))?)
}

async fn list(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let grants = reader(&app, &uri, &headers)?;
    let topics = app
        .hub()
        .topics(|topic| {
            grants
                .as_ref()
                .is_some_and(|g| g.may_subscribe(topic.as_str()))
        })
        .await?;
    Ok(Json(json!({ "topics": topics })))
}

#[derive(Debug, Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<String>,
}

/// Topic names may contain `/`, so the route is a catch-all ending in `/events`.
async fn events(
    State(app): State<AppState>,
    Path(topic_events): Path<String>,
    Query(page): Query<Page>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let grants = reader(&app, &uri, &headers)?;
    let topic = topic_events
        .strip_suffix("/events")
        .ok_or(ApiError::NotFound)?;
    let topic = TopicName::new(topic).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let after = match page.after.as_deref() {
        None | Some("") => crate::hub::EventId::default(),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::BadRequest("after must be an event id".into()))?,
    };
    let limit = match page.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let private = grants
        .as_ref()
        .is_some_and(|g| g.may_subscribe(topic.as_str()));
    let events = app.hub().history(&topic, after, limit, private).await?;
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "id": e.id.to_string(),
                "topic": e.topic.as_str(),
                "event": e.name.as_str(),
                "message": e.message,
                "timestamp": e.timestamp,
            })
        })
        .collect();
    Ok(Json(json!({ "topic": topic.as_str(), "events": events })))
}
