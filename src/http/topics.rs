//! `GET /api/topics` and `GET /api/topics/{topic}/events?after=ID&limit=N`.

use super::Routes;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Grants;
use crate::error::{ApiError, ErrorBody};
use crate::hub::{TopicInfo, TopicName};
use crate::ops::meta::RequestMeta;
use crate::ops::AppState;

/// Largest page of `GET /api/topics/{topic}/events`.
const MAX_LIMIT: usize = 1000;
/// Default page size.
const DEFAULT_LIMIT: usize = 100;

pub(crate) fn router() -> Routes {
    Routes::default()
        .route("/api/topics", get(list))
        .route("/api/topics/{*topic_events}", get(events))
}

/// The caller's subscriber grants, from a token if it presented one.
fn reader(app: &AppState, meta: &RequestMeta) -> Result<Option<Grants>, ApiError> {
    Ok(app.auth().subscriber(&meta.credentials(None))?)
}

/// The topics that exist, with their subscribers, newest id and history count.
#[utoipa::path(get, operation_id = "list_topics", path = "/api/topics", tag = "topics",
    responses(
        (status = 200, description = "The topics (what the caller may see)", body = TopicList),
        (status = 400, description = "A malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "A refused token, or no token with `--require-subscriber-token`", body = ErrorBody),
        (status = 503, description = "The broker is unreachable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
pub(super) async fn list(
    State(app): State<AppState>,
    meta: RequestMeta,
) -> Result<Json<TopicList>, ApiError> {
    let grants = reader(&app, &meta)?;
    let topics = app
        .hub()
        .topics(|topic| {
            grants
                .as_ref()
                .is_some_and(|g| g.may_subscribe(topic.as_str()))
        })
        .await?;
    Ok(Json(TopicList { topics }))
}

/// Any topic the hub may hold (native or Mercure), as the API document describes it: text
/// without control or format characters, of a length that fits 2,048 bytes of UTF-8 however it
/// is spelt.
pub(crate) struct AnyTopic;

impl utoipa::PartialSchema for AnyTopic {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let class = crate::sse::fields::forbidden_class();
        // Characters of the Basic Multilingual Plane as `\uXXXX`, which ECMA-262 and Python
        // regular expressions read alike: raw control characters in the document trip the
        // YAML readers of common tools (openapi-spec-validator, client generators).
        let mut allowed = String::from("^[^");
        for c in class[1..class.len() - 1].chars() {
            if c != '-' && u32::from(c) <= 0xffff {
                allowed.push_str(&format!("\\u{:04x}", u32::from(c)));
            } else {
                allowed.push(c);
            }
        }
        allowed.push_str("]+$");
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::topic::MAX_MERCURE_TOPIC_LEN / 4))
            .pattern(Some(allowed))
            .into()
    }
}

impl utoipa::ToSchema for AnyTopic {}

/// The answer of `GET /api/topics`.
#[derive(Serialize, ToSchema)]
pub(crate) struct TopicList {
    topics: Vec<TopicInfo>,
}

/// The answer of `GET /api/topics/{topic}/events`.
#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryPage {
    /// The topic asked for.
    topic: String,
    /// Its events after `after`, oldest first.
    events: Vec<HistoryEvent>,
}

/// One event of history.
#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryEvent {
    /// Its id.
    #[schema(example = "urn:ssehub:1795509003220-1")]
    id: String,
    /// Its topic.
    topic: String,
    /// Its event type.
    event: String,
    /// Its text.
    message: String,
    /// Publish time, seconds since the Unix epoch.
    timestamp: f64,
}

#[derive(Debug, Deserialize)]
pub(super) struct Page {
    after: Option<String>,
    limit: Option<String>,
}

/// Topic names may contain `/`, so the route is a catch-all ending in `/events`.
#[utoipa::path(get, operation_id = "topic_events", path = "/api/topics/{topic}/events", tag = "topics",
    params(
        ("topic" = AnyTopic, Path,
            description = "The topic, native or Mercure (1 to 2,048 bytes; its `/` may be sent as is or as `%2F`)"),
        ("after" = Option<String>, Query, pattern = r"^(urn:ssehub:)?[0-9]{1,19}-[0-9]{1,19}$",
            description = "Events after this id (default: from the oldest)"),
        ("limit" = Option<u16>, Query, minimum = 1, maximum = 1000, description = "Events at most (default 100)"),
    ),
    responses(
        (status = 200, description = "History of the topic, oldest first (private events only with a granting token)", body = HistoryPage),
        (status = 400, description = "An invalid topic, id or limit, or a malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "A refused token, or no token with `--require-subscriber-token`", body = ErrorBody),
        (status = 404, description = "The path does not end in `/events`", body = ErrorBody),
        (status = 503, description = "The broker is unreachable", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
pub(super) async fn events(
    State(app): State<AppState>,
    Path(topic_events): Path<String>,
    Query(page): Query<Page>,
    meta: RequestMeta,
) -> Result<Json<HistoryPage>, ApiError> {
    let grants = reader(&app, &meta)?;
    let topic = topic_events
        .strip_suffix("/events")
        .ok_or(ApiError::NotFound)?;
    // Any topic the hub may hold: the listing shows Mercure topics too (URLs, usually).
    let topic = TopicName::any(topic).map_err(|e| ApiError::BadRequest(e.to_string()))?;
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
    let events = events
        .iter()
        .map(|e| HistoryEvent {
            id: e.id.to_string(),
            topic: e.topic.as_str().to_owned(),
            event: e.name.as_str().to_owned(),
            message: e.message.clone(),
            timestamp: e.timestamp,
        })
        .collect();
    Ok(Json(HistoryPage {
        topic: topic.as_str().to_owned(),
        events,
    }))
}
