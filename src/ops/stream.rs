//! Opening a stream, whatever the transport: a native `GET /stream` ([`open`]) or, through
//! [`start`], a Mercure subscription. Who may open it (the subscriber's token), its slots
//! (the stream caps, per client and per token subject), where it starts (`Last-Event-ID` or
//! the query's cursor), the hub subscription and what to replay, and the [`Session`] that
//! writes it.

use std::sync::Arc;

use super::meta::RequestMeta;
use super::AppState;
use crate::auth::Grants;
use crate::error::ApiError;
use crate::hub::{Access, EventId, Pattern, ResumeFrom, TopicName};
use crate::metrics::StreamKind;
use crate::session::{Mode, Session, StreamGuard};
use crate::sse::fields::ID_PREFIX;

/// Where native streams are served.
pub(crate) const STREAM_PATH: &str = "/stream";
/// The `mode` of the seed's streams: one event repeated, then `close`.
pub(crate) const MODE_BURST: &str = "burst";
/// The `mode` of long-lived streams: every event once, until shutdown.
pub(crate) const MODE_LIVE: &str = "live";

/// A parsed `GET /stream` query.
struct Request {
    patterns: Vec<Pattern>,
    mode: Mode,
    last_event_id: Option<String>,
    /// The legacy `authorization` query parameter (used only with `--allow-query-token`).
    token: Option<String>,
    /// A subscribe ticket (`ops::tickets`).
    ticket: Option<String>,
}

fn parse_query(query: Option<&str>, max_patterns: usize) -> Result<Request, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|err| ApiError::BadRequest(format!("invalid query string: {err}")))?;
    let mut request = Request {
        patterns: Vec::new(),
        mode: Mode::Burst,
        last_event_id: None,
        token: None,
        ticket: None,
    };
    for (key, value) in pairs {
        match key.as_str() {
            "topic" => {
                let pattern =
                    Pattern::parse(&value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
                if !request.patterns.contains(&pattern) {
                    request.patterns.push(pattern);
                }
            }
            "mode" => {
                request.mode = match value.as_str() {
                    MODE_BURST => Mode::Burst,
                    MODE_LIVE => Mode::Live,
                    _ => return Err(ApiError::BadRequest("mode must be burst or live".into())),
                }
            }
            // Empty means "no id yet", as EventSource's own lastEventId does.
            "lastEventId" if !value.trim().is_empty() => request.last_event_id = Some(value),
            "authorization" => request.token = Some(value),
            "ticket" => request.ticket = Some(value),
            _ => {}
        }
    }
    if request.patterns.len() > max_patterns {
        return Err(ApiError::BadRequest(format!(
            "at most {max_patterns} topics per stream"
        )));
    }
    if request.patterns.is_empty() {
        request.patterns.push(
            Pattern::parse(crate::topic::DEFAULT_TOPIC)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        );
    }
    Ok(request)
}

/// Parses a `GET /stream` request and opens its session: what both transports call.
///
/// # Errors
/// 400 for a bad query, 401/403 for a refused token, 429 past a per-client or per-subject cap,
/// 503 past the stream or topic cap or during shutdown, or a broker error.
pub(crate) async fn open(
    app: &AppState,
    query: Option<&str>,
    meta: &RequestMeta,
) -> Result<Session, ApiError> {
    let request = parse_query(query, app.config().max_topics_per_stream)?;
    let spec = StreamSpec {
        patterns: request.patterns,
        mode: request.mode,
        last_event_id: request.last_event_id,
        token: request.token,
        ticket: request.ticket,
    };
    Ok(start(app, spec, meta).await?.0)
}

/// What a stream asks for, from either API.
pub(crate) struct StreamSpec {
    pub patterns: Vec<Pattern>,
    pub mode: Mode,
    /// The cursor from the query (the `Last-Event-ID` header, if any, wins over it).
    pub last_event_id: Option<String>,
    /// The `authorization` query parameter.
    pub token: Option<String>,
    /// The `ticket` query parameter: a subscribe ticket, which stands for a token (it wins over
    /// the request's other credentials).
    pub ticket: Option<String>,
}

/// How a stream's cursor resolved.
pub(crate) struct Resumed {
    /// The cursor the client sent, if any.
    pub requested: Option<String>,
    /// Events after it may be missing (unknown, discarded, or trimmed).
    pub gap: bool,
    /// The subscriber's payload, from its token (Mercure's subscriptions API shows it).
    pub payload: Option<serde_json::Value>,
    /// Without a cursor: where the stream starts (the newest event issued before it).
    pub start: Option<EventId>,
}

/// Checks who may open the stream, takes its slots, subscribes and reads what to replay.
///
/// # Errors
/// As [`open`].
pub(crate) async fn start(
    app: &AppState,
    mut spec: StreamSpec,
    meta: &RequestMeta,
) -> Result<(Session, Resumed), ApiError> {
    // EventSource sends the header on reconnects, reusing the first URL: the header is newer.
    if let Some(header) = meta.last_event_id.as_deref().filter(|h| !h.is_empty()) {
        spec.last_event_id = Some(String::from_utf8_lossy(header).into_owned());
    }
    if app.shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    let (grants, mut guard) = match spec.ticket.as_deref() {
        // A ticket is spent by its redemption: the caps that do not depend on who it stands
        // for are taken first, so that a stream refused by them (`503`, `429`) leaves it for
        // the retry. Only the per-subject cap, which needs the redeemed grants, can refuse a
        // stream whose ticket is spent.
        Some(ticket) => {
            let mut guard = take_slot(app, meta, None)?;
            let grants = super::tickets::redeem(app, meta, ticket).await?;
            take_subject_slot(app, &mut guard, Some(&grants))?;
            (Some(grants), guard)
        }
        None => {
            let grants = app
                .auth()
                .subscriber(&meta.credentials(spec.token.as_deref()))?;
            let guard = take_slot(app, meta, grants.as_ref())?;
            (grants, guard)
        }
    };
    let payload = grants.as_ref().and_then(|g| g.payload.clone());
    let resume = match spec.last_event_id.as_deref() {
        Some(cursor) => Some(resume_from(app, cursor, &spec.patterns).await?),
        None => None,
    };
    let deadline = app.auth().stream_deadline(grants.as_ref());
    let access: Option<Access> = grants.map(|grants| {
        let grants = Arc::new(grants);
        Arc::new(move |topic: &TopicName| grants.may_subscribe(topic.as_str())) as Access
    });
    let (subscription, replay) = app
        .hub()
        .subscribe(&spec.patterns, resume, app.replay_limit(), access)
        .await?;
    let resumed = Resumed {
        requested: spec.last_event_id.clone(),
        gap: replay.gap,
        payload,
        start: replay.start,
    };
    let kind = match spec.mode {
        Mode::Burst => StreamKind::Burst,
        Mode::Live => StreamKind::Live,
        Mode::Mercure => StreamKind::Mercure,
    };
    // From here on the stream is open: it counts until its session is dropped.
    guard.observe(app.metrics().stream(kind, meta.version));
    let session = Session::new(
        spec.mode,
        app.session_settings(),
        subscription,
        replay,
        spec.last_event_id.as_deref(),
        app.shutdown_token(),
        guard,
    );
    let session = match deadline {
        Some((after, status)) => session.ending_after(after, status),
        None => session,
    };
    Ok((session, resumed))
}

/// A stream's slot under `--max-streams` and the per-client and per-subject caps, held until
/// the returned guard drops.
///
/// # Errors
/// 503 past the stream cap, 429 past a per-client or per-subject cap.
pub(crate) fn take_slot(
    app: &AppState,
    meta: &RequestMeta,
    grants: Option<&Grants>,
) -> Result<StreamGuard, ApiError> {
    let mut guard = StreamGuard::acquire(app.stream_count(), app.stream_cap())
        .ok_or(ApiError::TooManyStreams)?;
    if let (Some(quota), Some(peer)) = (app.streams_per_client(), meta.peer) {
        guard.hold(quota.enter(peer).ok_or(ApiError::TooManyClientStreams)?);
    }
    take_subject_slot(app, &mut guard, grants)?;
    Ok(guard)
}

/// The per-subject part of [`take_slot`]: a slot under `--max-streams-per-subject` for the
/// token's `sub`, held by `guard`.
///
/// # Errors
/// 429 past the cap.
fn take_subject_slot(
    app: &AppState,
    guard: &mut StreamGuard,
    grants: Option<&Grants>,
) -> Result<(), ApiError> {
    if let (Some(quota), Some(subject)) = (
        app.streams_per_subject(),
        grants.and_then(|g| g.subject.clone()),
    ) {
        guard.hold(quota.enter(subject).ok_or(ApiError::TooManyClientStreams)?);
    }
    Ok(())
}

/// Where a cursor points, first match wins:
/// 1. `earliest`;
/// 2. one of the hub's ids as it sends them (`urn:ssehub:MS-SEQ`: no publisher may choose one);
/// 3. a publisher-chosen id on one of the stream's own topics (the earliest such event), so
///    that no publisher can move another topic's subscribers;
/// 4. a hub id in its bare `MS-SEQ` form.
///
/// Anything else is unknown (and the stream is told of a gap).
async fn resume_from(
    app: &AppState,
    cursor: &str,
    patterns: &[Pattern],
) -> Result<ResumeFrom, ApiError> {
    if cursor == "earliest" {
        return Ok(ResumeFrom::Earliest);
    }
    let hub_id = cursor.parse::<EventId>();
    if let (Ok(id), true) = (&hub_id, cursor.trim().starts_with(ID_PREFIX)) {
        return Ok(ResumeFrom::After(*id));
    }
    if let Some(id) = app.hub().resolve(cursor, patterns).await? {
        return Ok(ResumeFrom::After(id));
    }
    Ok(match hub_id {
        Ok(id) => ResumeFrom::After(id),
        Err(_) => ResumeFrom::Unknown,
    })
}

/// The headers of every stream response.
pub(crate) const STREAM_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];
