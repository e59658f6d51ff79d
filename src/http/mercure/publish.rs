//! `POST /.well-known/mercure`: an update from a form (draft-08, section "Publication").
//!
//! The checks live in [`checked`] and [`update_draft`], shared by the axum route here and the
//! direct HTTP/1 path (`http::direct::publish`), so both refuse the same request the same way.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::form::{pairs, reserved};
use super::{bad, hub_url, link, topic_name, MAX_UPDATE_TOPICS};
use crate::auth::{Auth, Grants};
use crate::error::{ApiError, ErrorBody};
use crate::event::Draft;
use crate::http::input::{read_body, refuse, Limits};
use crate::http::request::RequestMeta;
use crate::http::AppState;
use crate::sse::fields::MAX_LINE_TEXT;
use crate::sse::{EventName, LineText};
use crate::topic::MAX_MERCURE_TOPIC_LEN;

/// The fields of a publish form.
#[derive(Default)]
struct Update {
    topics: Vec<String>,
    data: Option<String>,
    private: bool,
    id: Option<String>,
    kind: Option<String>,
    retry: Option<String>,
}

/// The publish form, as the API document describes it (read by [`read_update`]).
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

fn read_update(bytes: &[u8]) -> Result<Update, ApiError> {
    let mut update = Update::default();
    for (key, value) in pairs(bytes)? {
        let value = value.into_owned();
        match &*key {
            "topic" => update.topics.push(value),
            "data" => update.data = Some(value),
            // Present means private, whatever the value (draft-08, "Publication").
            "private" => update.private = true,
            "id" => update.id = Some(value),
            "type" => update.kind = Some(value),
            "retry" => update.retry = Some(value),
            _ => {}
        }
    }
    Ok(update)
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
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let meta = app.request_meta(&headers, &uri, None);
    let limits = app.input_limits();
    let grants = match app.auth().publisher(&meta.credentials(None)) {
        Ok(grants) => grants,
        Err(err) => return Err(refuse(err.into(), body, limits).await),
    };
    let content_type = headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    if !is_form(content_type) {
        return Err(refuse(not_a_form(), body, limits).await);
    }
    let form = read_body(&headers, body, limits).await?;
    let draft = update_draft(&form, &meta, grants.as_ref(), limits)?;
    let published = app.hub().publish(draft).await?;
    let mut response = (StatusCode::OK, published.event.wire_id().to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    if let Some(link) = link(&meta) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// The content type of the answer: the update's id as text.
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// The checks of [`publish`], in its order, for a request whose form is already in hand (the
/// direct HTTP/1 path, `http::direct::publish`): the publisher's token, the content type, the
/// form and its fields, the grant for every topic.
///
/// # Errors
/// What [`publish`] answers for the same request.
pub(crate) fn checked(
    app: &AppState,
    meta: &RequestMeta,
    content_type: Option<&[u8]>,
    form: &[u8],
) -> Result<Draft, ApiError> {
    let grants = app.auth().publisher(&meta.credentials(None))?;
    if !is_form(content_type) {
        return Err(not_a_form());
    }
    update_draft(form, meta, grants.as_ref(), app.input_limits())
}

/// Whether a `Content-Type` value names a form (parameters and case aside). Read as hyper's
/// `to_str` would: visible ASCII only.
fn is_form(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type else {
        return false;
    };
    let visible = value
        .iter()
        .all(|b| *b == b'\t' || (b' '..0x7f).contains(b));
    let mime = value.split(|b| *b == b';').next().unwrap_or_default();
    visible
        && mime
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

fn not_a_form() -> ApiError {
    ApiError::UnsupportedMediaType("application/x-www-form-urlencoded")
}

/// The update a form describes, checked field by field, and the publisher's grant for each of
/// its topics.
fn update_draft(
    form: &[u8],
    meta: &RequestMeta,
    grants: Option<&Grants>,
    limits: Limits,
) -> Result<Draft, ApiError> {
    let update = read_update(form)?;
    if update.topics.is_empty() {
        return Err(bad("topic is required"));
    }
    if update.topics.len() > MAX_UPDATE_TOPICS {
        return Err(ApiError::TooLarge(format!(
            "at most {MAX_UPDATE_TOPICS} topics per update"
        )));
    }
    let too_long =
        |what: &str, max: usize| ApiError::TooLarge(format!("{what} is longer than {max} bytes"));
    if update
        .topics
        .iter()
        .any(|t| t.len() > MAX_MERCURE_TOPIC_LEN)
    {
        return Err(too_long("a topic", MAX_MERCURE_TOPIC_LEN));
    }
    if update.id.as_ref().is_some_and(|i| i.len() > MAX_LINE_TEXT) {
        return Err(too_long("id", MAX_LINE_TEXT));
    }
    if update
        .kind
        .as_ref()
        .is_some_and(|k| k.len() > MAX_LINE_TEXT)
    {
        return Err(too_long("type", MAX_LINE_TEXT));
    }
    let mut topics = Vec::with_capacity(update.topics.len());
    for topic in &update.topics {
        if topic == "*" {
            return Err(bad("the topic * is reserved for the wildcard"));
        }
        if reserved(topic, || hub_url(meta)) {
            return Err(bad("topics under the hub's own URL are reserved"));
        }
        topics.push(topic_name(topic)?);
    }
    let message = update.data.unwrap_or_default();
    if message.len() > limits.message {
        return Err(ApiError::TooLarge(format!(
            "data is longer than {} bytes",
            limits.message
        )));
    }
    let custom_id = match update.id.as_deref() {
        None | Some("") => None,
        Some(id) if id.starts_with('#') || id == "earliest" => {
            return Err(bad("an id may not start with # or be earliest"));
        }
        // The hub's own ids always mean the hub's events as cursors.
        Some(id) if id.starts_with(crate::sse::fields::ID_PREFIX) => {
            return Err(bad(format!(
                "ids beginning with {} are the hub's own",
                crate::sse::fields::ID_PREFIX
            )));
        }
        Some(id) => Some(LineText::new(id, MAX_LINE_TEXT).map_err(|e| bad(format!("id {e}")))?),
    };
    let name = match update.kind.as_deref() {
        None | Some("") => EventName::message(),
        Some("mercure") => return Err(bad("the type mercure is reserved for the hub")),
        Some(kind) => EventName::any(kind).map_err(|e| bad(format!("type {e}")))?,
    };
    let retry = match update.retry.as_deref() {
        None => None,
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            Some(text.parse().map_err(|_| bad("retry is too large"))?)
        }
        Some(_) => return Err(bad("retry must be digits")),
    };
    for topic in &topics {
        Auth::may_publish(grants, topic.as_str())?;
    }
    let mut topics = topics.into_iter();
    let canonical = topics.next().ok_or_else(|| bad("topic is required"))?;
    Ok(Draft {
        topic: canonical,
        name,
        message,
        private: update.private,
        alternates: topics.collect(),
        custom_id,
        retry,
    })
}
