//! `POST /api/messages` (JSON, 201 `accepted`) and `POST /publish` (JSON, form or text, 202
//! `queued`): the seed's two ways to publish.

use super::Routes;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;

use super::input::{read_draft, refuse, Accept, PublishForm, PublishJson, PublishText};
use super::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::hub::Published;
use crate::json;
use utoipa::ToSchema;

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
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted<'a> {
    /// `accepted` (`/api/messages`) or `queued` (`/publish`).
    #[schema(example = "accepted")]
    status: &'a str,
    data: AcceptedEvent<'a>,
}

/// The event as published.
#[derive(Serialize, ToSchema)]
pub(crate) struct AcceptedEvent<'a> {
    /// The message text.
    message: &'a str,
    /// Its topic.
    topic: &'a str,
    /// Its event type.
    event: &'a str,
    /// Present (and `true`) only for a private event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    private: bool,
    /// The event's id, for `Last-Event-ID`.
    #[schema(example = "urn:ssehub:1795509003220-1")]
    id: String,
    /// Streams on this node that matched its topic.
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
    let body = accepted_json(word, &published);
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The JSON answer to an accepted publish, `{"status": word, "data": {...}}`: the hyper route
/// and the direct path (`http::direct::publish`) both send it. Written by hand (every publish
/// makes one; `crate::json` says why): the bytes serialising [`Accepted`] gives (tested).
pub(crate) fn accepted_json(word: &str, published: &Published) -> Vec<u8> {
    let event = &published.event;
    let mut out = Vec::with_capacity(192 + event.message.len() + event.topic.as_str().len());
    json::raw(&mut out, r#"{"status":"#);
    json::string(&mut out, word);
    json::raw(&mut out, r#","data":{"message":"#);
    json::string(&mut out, &event.message);
    json::raw(&mut out, r#","topic":"#);
    json::string(&mut out, event.topic.as_str());
    json::raw(&mut out, r#","event":"#);
    json::string(&mut out, event.name.as_str());
    if event.private {
        json::raw(&mut out, r#","private":true"#);
    }
    json::raw(&mut out, r#","id":"#);
    // The hub's id: the wire id unless the publisher chose one (never on these endpoints).
    match event.custom_id {
        None => json::string(&mut out, event.wire_id()),
        Some(_) => json::string(&mut out, &event.id.wire()),
    }
    json::raw(&mut out, r#","subscribers":"#);
    json::number(&mut out, published.subscribers);
    json::raw(&mut out, "}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::hub::{Draft, TopicName};
    use crate::sse::{EventId, EventName};

    #[test]
    fn the_answer_is_what_serde_writes() {
        for (message, private) in [("hi", false), ("\"q\" \\ \n é", true)] {
            let mut draft = Draft::new(
                TopicName::new("a/b").unwrap(),
                EventName::message(),
                message.into(),
            );
            draft.private = private;
            let published = Published {
                event: std::sync::Arc::new(Event::new(EventId::new(17, 3), draft, 1.5)),
                subscribers: 12,
            };
            let event = &published.event;
            let serde = serde_json::to_vec(&Accepted {
                status: "queued",
                data: AcceptedEvent {
                    message: &event.message,
                    topic: event.topic.as_str(),
                    event: event.name.as_str(),
                    private: event.private,
                    id: event.id.to_string(),
                    subscribers: published.subscribers,
                },
            })
            .unwrap();
            assert_eq!(
                String::from_utf8(accepted_json("queued", &published)).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }
}
