//! `POST /.well-known/mercure` on the hyper path: an update from a form (draft-08, section
//! "Publication"); the operation is `ops::mercure::publish`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::link;
use crate::error::{ApiError, ErrorBody};
use crate::http::body::{read_body, refuse};
use crate::ops;
use crate::ops::mercure::publish::{self as mercure, is_form, not_a_form, TEXT_PLAIN};
use crate::ops::meta::RequestMeta;
use crate::ops::AppState;

/// The publish form, as the API document describes it (read by `ops::mercure::publish`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // named only in the API document
pub(crate) struct UpdateForm {
    /// The update's topics, canonical first (repeatable, at most 64).
    #[schema(example = json!(["https://example.com/books/1"]))]
    topic: Vec<String>,
    /// The content; one `data:` line per line.
    data: Option<String>,
    /// Present: a private update.
    private: Option<String>,
    /// The update's id (not `earliest`, not starting with `#`; default: the hub's).
    id: Option<String>,
    /// The SSE event type (not `mercure`).
    #[schema(rename = "type")]
    kind: Option<String>,
    /// The `retry:` field, digits.
    retry: Option<String>,
}

/// Publishes a Mercure update from a form; answers the update's id as plain text.
#[utoipa::path(post, operation_id = "mercure_publish", path = "/.well-known/mercure", tag = "mercure",
    request_body(content = UpdateForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Published: the update's id", body = String, content_type = "text/plain",
            headers(("Link" = String, description = "`<hub URL>; rel=\"mercure\"`"))),
        (status = 400, description = "No topic, a reserved topic, id or type, a non-digit retry, a control character, an invalid form, or a malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "A publisher key is set and no valid token was presented", body = ErrorBody),
        (status = 403, description = "The token does not grant publishing on every topic, or a cookie token from an origin not in `--publish-origins`", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `--body-timeout`", body = ErrorBody),
        (status = 413, description = "Over 64 topics, a topic, id or type too long, data over `--max-message` or a body over `--body-limit`", body = ErrorBody),
        (status = 415, description = "Not a form", body = ErrorBody),
        (status = 503, description = "The topic cap is reached, the broker is unreachable or the server is shutting down", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
pub(super) async fn publish(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limits = app.input_limits();
    let publisher = match ops::publish::publisher(&app, &meta) {
        Ok(publisher) => publisher,
        Err(err) => return Err(refuse(err, body, limits).await),
    };
    let content_type = headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    if !is_form(content_type) {
        return Err(refuse(not_a_form(), body, limits).await);
    }
    let form = read_body(&headers, body, limits).await?;
    let published = mercure::publish(&app, &publisher, &meta, content_type, &form).await?;
    let mut response = (StatusCode::OK, published.event.wire_id().to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    if let Some(link) = link(&meta) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}
