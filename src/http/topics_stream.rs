//! `GET /api/topics/stream?limit=N`: the topic table as Server-Sent Events, for the hub console.
//!
//! One `topics` event at once, then one a second: the topics the caller may know of (the same
//! rule as `GET /api/topics`: private ids, counts and rates only with a subscriber token
//! granting the topic), each with its subscribers here, newest id, history and events per
//! second. Bounded: at most `limit` topics per event (the busiest when there are more, with
//! `total` and `truncated` saying so), the stream takes a slot under `--max-streams` and the
//! per-client caps like any stream, and however many consoles are open the broker's topic list
//! is read at most once a second ([`TableCache`]). The stream ends with `close` on shutdown, at
//! the token's `exp` or `--max-stream-lifetime`.

use std::time::Duration;

use crate::shutdown::Shutdown;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream;
use serde::Serialize;

use super::Routes;
use crate::auth::Grants;
use crate::error::{ApiError, ErrorBody};
use crate::event::{control, control_frame, unix_now};
use crate::hub::{TopicInfo, TopicTable};
use crate::ops::meta::RequestMeta;
use crate::ops::stream::{take_slot, STREAM_HEADERS};
use crate::ops::AppState;
use crate::session::StreamGuard;
use crate::sse::{EventName, FrameBuilder};

/// How often a snapshot is sent, and how old a shared table may be.
use crate::ops::console::EVERY;
/// Most topics one snapshot may list.
pub(crate) const MAX_LIMIT: usize = 1000;
/// Topics per snapshot when the query does not say.
pub(crate) const DEFAULT_LIMIT: usize = 100;

/// Where the console stream is served.
pub(crate) const TOPICS_STREAM_PATH: &str = "/api/topics/stream";
/// The event type of a snapshot of the topic table.
pub(crate) const TOPICS_EVENT: &str = "topics";
/// The event type sent when the broker cannot be read (the stream goes on).
pub(crate) const UNAVAILABLE_EVENT: &str = "unavailable";

pub(crate) fn router() -> Routes {
    Routes::default().route(TOPICS_STREAM_PATH, get(open))
}

fn parse_limit(query: Option<&str>) -> Result<usize, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|err| ApiError::BadRequest(format!("invalid query string: {err}")))?;
    let bad = || ApiError::BadRequest(format!("limit must be 1 to {MAX_LIMIT}"));
    match pairs.iter().rev().find(|(key, _)| key == "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some((_, text)) if text.is_empty() => Ok(DEFAULT_LIMIT),
        Some((_, text)) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(bad),
    }
}

/// The topic table as Server-Sent Events, once a second (the hub console's feed); see the
/// AsyncAPI document for its events.
#[utoipa::path(get, operation_id = "topics_stream", path = "/api/topics/stream", tag = "topics",
    params(("limit" = Option<u16>, Query, minimum = 1, maximum = 1000,
        description = "Topics per snapshot at most (default 100; the busiest when there are more)")),
    responses(
        (status = 200, description = "`retry:`, then a `topics` event at once and once a second (`unavailable` while the broker cannot be read), until `close`", body = crate::sse::SseEvent, content_type = "text/event-stream",
            headers(("Cache-Control" = String, description = "`no-cache`"))),
        (status = 400, description = "An invalid limit or a malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "A refused token, or no token with `--require-subscriber-token`", body = ErrorBody),
        (status = 429, description = "Over `--max-streams-per-client` or `--max-streams-per-subject`", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds"))),
        (status = 503, description = "The stream cap is reached or the server is shutting down", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds"))),
    ),
    security((), ("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
pub(super) async fn open(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    meta: RequestMeta,
) -> Result<Response, ApiError> {
    let limit = parse_limit(query.as_deref())?;
    if app.shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    let grants = app.auth().subscriber(&meta.credentials(None))?;
    let guard = take_slot(&app, &meta, grants.as_ref())?;
    let deadline = app
        .auth()
        .stream_deadline(grants.as_ref())
        .map(|(after, status)| (tokio::time::Instant::now() + after, status));
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed {
        shutdown: app.shutdown_token(),
        app,
        grants,
        limit,
        tick,
        deadline,
        opened: false,
        done: false,
        _guard: guard,
    };
    let body = stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), feed))
    });
    let mut response = Body::from_stream(body).into_response();
    for (name, value) in STREAM_HEADERS {
        response.headers_mut().insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    Ok(response)
}

/// One console stream's state.
struct Feed {
    app: AppState,
    grants: Option<Grants>,
    limit: usize,
    tick: tokio::time::Interval,
    deadline: Option<(tokio::time::Instant, &'static str)>,
    shutdown: Shutdown,
    opened: bool,
    done: bool,
    /// Holds the stream's slot until the response ends.
    _guard: StreamGuard,
}

impl Feed {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let (until, status) = self.deadline.unwrap_or((far, control::LIFETIME));
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => Some(self.finish(control::SHUTDOWN, "server shutting down")),
            () = tokio::time::sleep_until(until) => Some(self.finish(status, match status {
                control::EXPIRED => "the token expired: reconnect with a fresh one",
                _ => "the stream reached its longest lifetime: reconnect",
            })),
            _ = self.tick.tick() => Some(self.snapshot().await),
        }
    }

    fn finish(&mut self, status: &str, message: &str) -> Bytes {
        self.done = true;
        control_frame(control::CLOSE, unix_now(), status, message)
    }

    /// The next `topics` event (the first one after the `retry:` hint), or an `unavailable`
    /// event when the broker cannot be read (the stream goes on and tries again).
    async fn snapshot(&mut self) -> Bytes {
        let table = self.app.console_tables().get(self.app.hub()).await;
        let frame = match table {
            Ok(table) => topics_frame(&table, self.grants.as_ref(), self.limit),
            Err(err) => {
                tracing::warn!(%err, "topic table unavailable");
                control_frame(
                    UNAVAILABLE_EVENT,
                    unix_now(),
                    "unavailable",
                    "broker unavailable, retrying",
                )
            }
        };
        if self.opened {
            return frame;
        }
        self.opened = true;
        let retry = FrameBuilder::new()
            .retry(self.app.config().retry_ms)
            .finish();
        let mut both = Vec::with_capacity(retry.len() + frame.len());
        both.extend_from_slice(&retry);
        both.extend_from_slice(&frame);
        Bytes::from(both)
    }
}

#[derive(Serialize)]
struct Snapshot<'a> {
    timestamp: f64,
    data: Topics<'a>,
}

/// The `data` of a `topics` event (the AsyncAPI document's `TopicTable`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Topics<'a> {
    /// By name.
    #[schema(value_type = Vec<TopicInfo>)]
    topics: &'a [TopicInfo],
    /// Topics the caller may know of, listed or not.
    total: usize,
    /// Whether `topics` leaves some out (`total` > `limit`).
    truncated: bool,
}

/// The caller's view of the table: at most `limit` topics, the busiest (events per second,
/// then subscribers) when there are more, listed by name.
pub(crate) fn topics_frame(table: &TopicTable, grants: Option<&Grants>, limit: usize) -> Bytes {
    let mut topics = table.view(|topic| grants.is_some_and(|g| g.may_subscribe(topic.as_str())));
    let total = topics.len();
    if total > limit {
        topics.sort_by(|a, b| {
            b.events_per_second
                .total_cmp(&a.events_per_second)
                .then(b.subscribers.cmp(&a.subscribers))
                .then_with(|| a.topic.cmp(&b.topic))
        });
        topics.truncate(limit);
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    }
    let snapshot = Snapshot {
        timestamp: unix_now(),
        data: Topics {
            topics: &topics,
            total,
            truncated: total > limit,
        },
    };
    // Serialising these plain structs cannot fail.
    let json = serde_json::to_string(&snapshot).unwrap_or_default();
    let name = EventName::new(TOPICS_EVENT).unwrap_or_else(|_| EventName::message());
    FrameBuilder::new().event(&name).data(&json).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("limit=")).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("limit=1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("limit=1000")).unwrap(), 1000);
        for bad in ["limit=0", "limit=1001", "limit=x", "limit=-1", "limit=%ZZ"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
