//! The Mercure protocol's operations on `/.well-known/mercure`, whatever the transport: both
//! revisions on one endpoint, told apart by what a request carries (sections "Subscription",
//! "Publication", "Reconciliation" of the drafts in `../shared/reference/mercure/`).
//!
//! - [`subscribe`]: legacy `topic` selectors (exact, `*`, URI templates) and draft-08
//!   `match` / `match_exact` / `match_urlpattern`; cursors from `Last-Event-ID`,
//!   `last_event_id` or `lastEventID`, and `earliest`; `Mercure-Last-Event-ID` (and, after a
//!   cursor, the legacy `Last-Event-ID`) on the response, also without a cursor: where the
//!   stream starts.
//! - [`publish::publish`]: a form: `topic` (the first canonical, the rest alternates), `data`,
//!   `private`, `id`, `type`, `retry`; answered with the event's id as text.
//!
//! It is one hub with the native API: same topics, ids, history, resume and authorization.

pub(crate) mod form;
pub(crate) mod publish;
pub(crate) mod selectors;

use axum::http::HeaderValue;

use super::meta::RequestMeta;
use super::stream::{start, StreamSpec};
use super::subscriptions::Active;
use super::AppState;
use crate::auth::HUB_PATH;
use crate::error::ApiError;
use crate::hub::EventId;
use crate::session::{Mode, Session};
use crate::sse::has_forbidden_char;
use crate::topic::TopicName;

/// Most topics one update may name.
pub(crate) const MAX_UPDATE_TOPICS: usize = 64;

/// The `Link` header's value as text, when it can be sent as text (a `Host` of visible ASCII,
/// as `HeaderValue::to_str` requires): what the direct HTTP/1 path writes, with no header map.
pub(crate) fn link_text(meta: &RequestMeta) -> Option<String> {
    // The rest of the value is ASCII of the hub's own.
    let host = meta.host.as_deref().unwrap_or_default().as_bytes();
    let visible = host.iter().fold(true, |visible, &b| {
        visible & ((b == b'\t') | ((b' '..0x7f).contains(&b)))
    });
    visible.then(|| link_value(meta))
}

pub(crate) fn link_value(meta: &RequestMeta) -> String {
    const REL: &str = ">; rel=\"mercure\"";
    let host = meta.host.as_deref().unwrap_or("localhost");
    let mut value = String::with_capacity(16 + host.len() + HUB_PATH.len() + REL.len());
    value.push('<');
    push_hub_url(&mut value, meta);
    value.push_str(REL);
    value
}

/// The hub's URL for this request: what relative URL patterns resolve against and what the
/// reserved namespace is checked against.
pub(crate) fn hub_url(meta: &RequestMeta) -> String {
    let mut url = String::new();
    push_hub_url(&mut url, meta);
    url
}

/// Appends the hub's URL as the request names it. Pushed, not `format!`ted: this is on every
/// Mercure publish's path (its `Link`).
fn push_hub_url(out: &mut String, meta: &RequestMeta) {
    out.push_str(meta.scheme());
    out.push_str("://");
    out.push_str(meta.host.as_deref().unwrap_or("localhost"));
    out.push_str(HUB_PATH);
}

pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// Checks a parameter value: UTF-8 is given; no control or format characters.
pub(crate) fn clean(value: &str, what: &str) -> Result<(), ApiError> {
    if has_forbidden_char(value) {
        return Err(bad(format!("{what} holds a control or format character")));
    }
    Ok(())
}

pub(crate) fn topic_name(text: &str) -> Result<TopicName, ApiError> {
    TopicName::any(text).map_err(|_| {
        bad(format!(
            "a topic must be 1 to {} bytes without control or format characters",
            crate::topic::MAX_MERCURE_TOPIC_LEN
        ))
    })
}

/// Parses a subscription and opens its session: what both transports call. Returns the session and the response headers beyond a
/// stream's own (`Link`, `Mercure-Last-Event-ID`, `Last-Event-ID`), lower-case names.
///
/// # Errors
/// 400 for a bad query, else as [`super::stream::start`].
pub(crate) async fn subscribe(
    app: &AppState,
    query: Option<&str>,
    meta: &RequestMeta,
) -> Result<(Session, Vec<(&'static str, String)>), ApiError> {
    let pairs = form::pairs(query.unwrap_or("").as_bytes())?;
    let mut raw: Vec<selectors::Raw> = Vec::new();
    let (mut draft_cursor, mut legacy_cursor, mut token, mut ticket) = (None, None, None, None);
    let max = app.config().max_topics_per_stream;
    for (key, value) in pairs {
        match &*key {
            "topic" | "match" | "match_exact" | "match_urlpattern" => {
                let pair = (key.into_owned(), value.into_owned());
                if !raw.contains(&pair) {
                    // Refused before anything is compiled.
                    if raw.len() == max {
                        return Err(bad(format!(
                            "at most {max} topic selectors per subscription"
                        )));
                    }
                    raw.push(pair);
                }
            }
            name if name.len() >= 5 && name.as_bytes()[..5].eq_ignore_ascii_case(b"match") => {
                return Err(bad(format!("unsupported matcher parameter {name:?}")));
            }
            "last_event_id" => {
                draft_cursor.get_or_insert(value.into_owned());
            }
            "lastEventID" => {
                legacy_cursor.get_or_insert(value.into_owned());
            }
            "authorization" => token = Some(value.into_owned()),
            "ticket" => ticket = Some(value.into_owned()),
            _ => {}
        }
    }
    if raw.is_empty() {
        return Err(bad(
            "name at least one topic (topic=, match= or match_urlpattern=)",
        ));
    }
    let selectors::Selectors { patterns, matchers } = selectors::read(app, meta, raw).await?;
    let spec = StreamSpec {
        patterns,
        mode: Mode::Mercure,
        last_event_id: draft_cursor.or(legacy_cursor).filter(|c| !c.is_empty()),
        token,
        ticket,
    };
    let (mut session, resumed) = start(app, spec, meta).await?;
    if app.config().subscriptions {
        session.hold(Active::open(app, &matchers, resumed.payload.as_ref()).await?);
    }
    let mut headers = vec![("link", link_value(meta))];
    // The event preceding the first one sent: the cursor itself, unless it is unknown, gone,
    // or `earliest` (section "Reconciliation").
    if let Some(requested) = resumed.requested {
        let anchor = if resumed.gap || requested == "earliest" {
            "earliest".to_owned()
        } else {
            requested
        };
        headers.push(("mercure-last-event-id", anchor.clone()));
        headers.push(("last-event-id", anchor));
    } else if let Some(start) = resumed.start {
        // Without a cursor too: the event preceding the first one this stream can send, so
        // that a client which reconnects (or hands the stream to another tab) before any event
        // came resumes from there and misses none published in between.
        let anchor = if start == EventId::default() {
            "earliest".to_owned()
        } else {
            start.wire()
        };
        headers.push(("mercure-last-event-id", anchor));
    }
    // The direct path writes these into the head as they are: only valid header values.
    headers.retain(|(_, value)| HeaderValue::from_str(value).is_ok());
    Ok((session, headers))
}
