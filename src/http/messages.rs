//! `POST /api/messages` (JSON, 201 `accepted`) and `POST /publish` (JSON, form or text, 202
//! `queued`): the seed's two ways to publish, on the hyper path (the operation is
//! `ops::publish`).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::body::{read_body, refuse};
use super::Routes;
use crate::error::{ApiError, ErrorBody};
use crate::ops::input::{content_kind, PublishForm, PublishJson, PublishText};
use crate::ops::meta::RequestMeta;
use crate::ops::publish::{self, Accepted, Endpoint};
use crate::ops::AppState;

pub(crate) fn router() -> Routes {
    Routes::default()
        .route("/api/messages", post(api_messages))
        .route("/publish", post(publish))
}

/// Publishes an event from a JSON body (the seed's endpoint).
#[utoipa::path(post, operation_id = "create_message", path = "/api/messages", tag = "publish",
    request_body(content = PublishJson, content_type = "application/json"),
    responses(
        (status = 201, description = "Published", body = Accepted),
        (status = 400, description = "Invalid JSON, a body that is not an object, a missing or empty message, an invalid topic or event type, or a malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "A publisher key is set and no valid token was presented", body = ErrorBody),
        (status = 403, description = "The token does not grant publishing on the topic, or a cookie token from an origin not in `--publish-origins`", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `--body-timeout`", body = ErrorBody),
        (status = 413, description = "The body is over `--body-limit` or the message over `--max-message`", body = ErrorBody),
        (status = 415, description = "Not `application/json`", body = ErrorBody),
        (status = 503, description = "The topic cap is reached, the broker is unreachable or the server is shutting down", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
pub(super) async fn api_messages(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    accept(&app, &meta, &headers, None, body, Endpoint::Messages).await
}

/// Publishes an event from JSON, a form or plain text (the seed's helper).
#[utoipa::path(post, operation_id = "publish", path = "/publish", tag = "publish",
    params(
        ("topic" = Option<String>, Query, max_length = 128, pattern = r"^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*$",
            description = "The topic when the body does not name one"),
        ("event" = Option<String>, Query, max_length = 64, pattern = r"^[A-Za-z0-9_.:-]+$",
            description = "The event type when the body does not name one"),
        ("private" = Option<String>, Query, description = "Private when present and not `\"\"`, `false`, `off` or `0`"),
    ),
    request_body(content(
        (PublishJson = "application/json"),
        (PublishForm = "application/x-www-form-urlencoded"),
        (PublishText = "text/plain"),
    )),
    responses(
        (status = 202, description = "Published", body = Accepted),
        (status = 400, description = "Invalid JSON or form, a missing or empty message, an invalid topic or event type, text that is not UTF-8, or a malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "A publisher key is set and no valid token was presented", body = ErrorBody),
        (status = 403, description = "The token does not grant publishing on the topic, or a cookie token from an origin not in `--publish-origins`", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `--body-timeout`", body = ErrorBody),
        (status = 413, description = "The body is over `--body-limit` or the message over `--max-message`", body = ErrorBody),
        (status = 415, description = "Not JSON, a form or plain text", body = ErrorBody),
        (status = 503, description = "The topic cap is reached, the broker is unreachable or the server is shutting down", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
pub(super) async fn publish(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    accept(
        &app,
        &meta,
        &headers,
        query.as_deref(),
        body,
        Endpoint::Publish,
    )
    .await
}

/// The hyper path of a native publish: the token first (a refused request's body is drained,
/// so the connection stays usable), the content type before the body is read, then the body,
/// and `ops::publish::native`.
async fn accept(
    app: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let limits = app.input_limits();
    let publisher = match publish::publisher(app, meta) {
        Ok(publisher) => publisher,
        Err(err) => return Err(refuse(err, body, limits).await),
    };
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    if let Err(err) = content_kind(content_type, endpoint.accept()) {
        return Err(refuse(err, body, limits).await);
    }
    let bytes = read_body(headers, body, limits).await?;
    let (status, json) =
        publish::native(app, &publisher, endpoint, content_type, query, &bytes).await?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], json).into_response())
}
