//! `GET /stream` on the hyper path: the operation (`ops::stream::open`) makes a [`Session`],
//! answered as `text/event-stream` with the session's frames as the body.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream;

use super::Routes;
use crate::error::{ApiError, ErrorBody};
use crate::ops::meta::RequestMeta;
use crate::ops::stream::{open, STREAM_HEADERS, STREAM_PATH};
use crate::ops::AppState;
use crate::session::Session;

pub(crate) fn router() -> Routes {
    Routes::default().route(STREAM_PATH, get(open_stream))
}

/// A topic of a stream: a topic, `prefix/*` or `*`, as the API document describes it.
pub(crate) struct TopicPattern;

impl utoipa::PartialSchema for TopicPattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let longest = crate::topic::MAX_TOPIC_LEN + "/*".len();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(longest))
            .pattern(Some(r"^(\*|[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*(/\*)?)$"))
            .into()
    }
}

impl utoipa::ToSchema for TopicPattern {}

/// A stream's `mode`, as the API document describes it.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // named only in the API document; the query is read by `parse_query`
pub(crate) enum StreamMode {
    /// `burst` (the default): the next matching event `--repeats` times, then `close`.
    Burst,
    /// `live`: every matching event once, until shutdown or the client leaves.
    Live,
}

/// Opens a native event stream (burst or live); see the AsyncAPI document for its events.
#[utoipa::path(get, operation_id = "stream", path = "/stream", tag = "stream",
    params(
        ("topic" = Option<Vec<TopicPattern>>, Query, style = Form, explode,
            description = "Topics to receive (repeatable; `prefix/*` and `*` allowed; default `default`)"),
        ("mode" = Option<StreamMode>, Query, description = "`burst` (default) or `live`"),
        ("lastEventId" = Option<String>, Query,
            description = "Resume after this id (the `Last-Event-ID` header wins)"),
        ("Last-Event-ID" = Option<String>, Header,
            description = "Resume after this id (what `EventSource` sends when it reconnects)"),
        ("ticket" = Option<String>, Query,
            description = "A single-use subscribe ticket (`POST /api/tickets`): it stands for the token that made it"),
    ),
    responses(
        (status = 200, description = "The event stream: `keepalive`, then events (`message` or the publisher's type), `gap`, `close`", body = crate::sse::SseEvent, content_type = "text/event-stream",
            headers(("Cache-Control" = String, description = "`no-cache`"),
                ("X-Accel-Buffering" = String, description = "`no`"))),
        (status = 400, description = "An invalid topic or mode, too many topics, or a malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "A refused token or ticket (used, expired or unknown), or no token with `--require-subscriber-token`", body = ErrorBody),
        (status = 429, description = "Over `--max-streams-per-client` or `--max-streams-per-subject`", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds"))),
        (status = 503, description = "The stream or topic cap is reached, the broker is unreachable or the server is shutting down", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds"))),
    ),
    security((), ("bearer" = []), ("cookie" = []), ("legacyCookie" = []), ("queryToken" = [])))]
pub(super) async fn open_stream(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    meta: RequestMeta,
) -> Result<Response, ApiError> {
    let session = open(&app, query.as_deref(), &meta).await?;
    Ok(stream_response(session))
}

/// A `text/event-stream` response whose body is the session's frames (the hyper path).
pub(crate) fn stream_response(session: Session) -> Response {
    // The timer moves with the session from step to step, so it is boxed to stay pinned.
    let timer = Box::pin(session.timer());
    let body = stream::unfold((session, timer), |(mut session, mut timer)| async move {
        let chunk = session.next_chunk(timer.as_mut()).await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), (session, timer)))
    });
    let mut response = Body::from_stream(body).into_response();
    for (name, value) in STREAM_HEADERS {
        response.headers_mut().insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}
