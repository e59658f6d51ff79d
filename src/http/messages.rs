//! `POST /api/messages` (JSON, 201 `accepted`) and `POST /publish` (JSON, form or text, 202
//! `queued`): the seed's two ways to publish.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::input::{read_draft, refuse, Accept};
use super::AppState;
use crate::auth::Auth;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/messages", post(api_messages))
        .route("/publish", post(publish))
}

async fn api_messages(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    accept(
        &app,
        &uri,
        &headers,
        None,
        body,
        Accept::Json,
        StatusCode::CREATED,
        "accepted",
    )
    .await
}

async fn publish(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query = query.as_deref();
    accept(
        &app,
        &uri,
        &headers,
        query,
        body,
        Accept::Any,
        StatusCode::ACCEPTED,
        "queued",
    )
    .await
}

/// The answer to an accepted publish.
#[derive(Serialize)]
pub(crate) struct Accepted<'a> {
    status: &'a str,
    data: AcceptedEvent<'a>,
}

#[derive(Serialize)]
struct AcceptedEvent<'a> {
    message: &'a str,
    topic: &'a str,
    event: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    private: bool,
    id: String,
    subscribers: usize,
}

#[allow(clippy::too_many_arguments)] // one call per endpoint, each naming its differences
async fn accept(
    app: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
    forms: Accept,
    status: StatusCode,
    word: &'static str,
) -> Result<Response, ApiError> {
    let meta = app.request_meta(headers, uri, None);
    let grants = match app.auth().publisher(&meta.credentials(None)) {
        Ok(grants) => grants,
        Err(err) => return Err(refuse(err.into(), body, app.input_limits()).await),
    };
    let draft = read_draft(headers, query, body, forms, app.input_limits()).await?;
    Auth::may_publish(grants.as_ref(), draft.topic.as_str())?;
    let published = app.hub().publish(draft).await?;
    let event = &published.event;
    let answer = Accepted {
        status: word,
        data: AcceptedEvent {
            message: &event.message,
            topic: event.topic.as_str(),
            event: event.name.as_str(),
            private: event.private,
            id: event.id.to_string(),
            subscribers: published.subscribers,
        },
    };
    Ok((status, Json(answer)).into_response())
}
