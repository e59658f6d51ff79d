//! A native publish (`POST /api/messages`, `POST /publish`), whatever the transport: who
//! publishes (the token, read before the body so the hyper path can refuse without reading
//! it), then the body, the grant for its topic, the hub, and the answer's bytes.
//!
//! The checks run in one order on both transports (the direct HTTP/1 path and hyper): the
//! publisher's token, the content type, the body, the grant for the topic; so a request
//! refused on one is refused with the same error on the other (`tests/it/paths.rs` sends the
//! same requests both ways).

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::input::{self, Accept};
use super::meta::RequestMeta;
use super::AppState;
use crate::auth::{Auth, Grants};
use crate::error::ApiError;
use crate::hub::Published;
use crate::json;

/// The native publish endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /api/messages`: JSON, 201 `accepted`.
    Messages,
    /// `POST /publish`: JSON, form or text (the query may name the topic), 202 `queued`.
    Publish,
}

impl Endpoint {
    /// Its path, for the access log and the metrics.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Messages => "/api/messages",
            Self::Publish => "/publish",
        }
    }

    /// The body forms it reads.
    pub(crate) fn accept(self) -> Accept {
        match self {
            Self::Messages => Accept::Json,
            Self::Publish => Accept::Any,
        }
    }

    /// The status and `status` word of its answer.
    pub(crate) fn status(self) -> (StatusCode, &'static str) {
        match self {
            Self::Messages => (StatusCode::CREATED, "accepted"),
            Self::Publish => (StatusCode::ACCEPTED, "queued"),
        }
    }
}

/// Who publishes: what the publisher's token grants (`None`: no publisher key is set).
pub(crate) struct Publisher(Option<Grants>);

/// Reads the publisher's token: the first check of every publish.
///
/// # Errors
/// 400 for a malformed `Authorization` header, 401 without a valid token when a publisher key
/// is set, 403 for a cookie token from an origin not in `--publish-origins`.
pub(crate) fn publisher(app: &AppState, meta: &RequestMeta) -> Result<Publisher, ApiError> {
    Ok(Publisher(app.auth().publisher(&meta.credentials(None))?))
}

impl Publisher {
    /// What the token grants (`None` when no publisher key is set).
    pub(crate) fn grants(&self) -> Option<&Grants> {
        self.0.as_ref()
    }
}

/// Publishes a body already in hand, for `publisher`: the content type, the body, the grant
/// for its topic, then the hub. Returns the status and JSON body of the answer.
///
/// # Errors
/// 415 for a content type the endpoint does not read, 400 or 413 for the body, 403 when the
/// token does not grant the topic, 503 from the hub.
pub(crate) async fn native(
    app: &AppState,
    publisher: &Publisher,
    endpoint: Endpoint,
    content_type: Option<&[u8]>,
    query: Option<&str>,
    body: &[u8],
) -> Result<(StatusCode, Vec<u8>), ApiError> {
    let accept = endpoint.accept();
    let kind = input::content_kind(content_type, accept)?;
    let query = match accept {
        Accept::Any => query,
        Accept::Json => None,
    };
    let draft = input::draft(kind, body, query, accept, app.input_limits())?;
    Auth::may_publish(publisher.grants(), draft.topic.as_str())?;
    let published = app.hub().publish(draft).await?;
    let (status, word) = endpoint.status();
    Ok((status, accepted_json(word, &published)))
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

/// The JSON answer to an accepted publish, `{"status": word, "data": {...}}`: the hyper route
/// and the direct path (`transport::direct::publish`) both send it. Written by hand (every publish
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
