//! The Mercure protocol on `/.well-known/mercure`: both revisions on one endpoint, told apart by
//! what a request carries (sections "Subscription", "Publication", "Reconciliation" of the
//! drafts in `../shared/reference/mercure/`).
//!
//! - `GET` subscribes: legacy `topic` selectors (exact, `*`, URI templates) and draft-08
//!   `match` / `match_exact` / `match_urlpattern`; cursors from `Last-Event-ID`, `last_event_id`
//!   or `lastEventID`, and `earliest`; `Mercure-Last-Event-ID` (and the legacy `Last-Event-ID`)
//!   on the response.
//! - `POST` publishes a form: `topic` (the first canonical, the rest alternates), `data`,
//!   `private`, `id`, `type`, `retry`; `200 text/plain` with the event's id.
//!
//! It is one hub with the native API: same topics, ids, history, resume and authorization.

use crate::http::Routes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri, Version};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;

mod form;
pub(super) mod publish;
pub(crate) mod selectors;

use super::request::{ClientAddr, RequestMeta};
use super::stream::{start, stream_response, StreamSpec};
use super::subscriptions::Active;
use super::AppState;
use crate::auth::HUB_PATH;
use crate::error::{ApiError, ErrorBody};
use crate::session::{Mode, Session};
use crate::sse::has_forbidden_char;
use crate::topic::TopicName;

/// Most topics one update may name.
pub(super) const MAX_UPDATE_TOPICS: usize = 64;

/// Where the protected resource metadata of the hub URL lives (RFC 9728, section 3).
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

pub(crate) fn router() -> Routes {
    Routes::default()
        .route(HUB_PATH, get(subscribe).post(publish::publish))
        .route(METADATA_PATH, get(metadata))
}

/// The hub's `Link: <...>; rel="mercure"` header value (section "Discovery").
pub(crate) fn link(meta: &RequestMeta) -> Option<HeaderValue> {
    HeaderValue::from_str(&link_value(meta)).ok()
}

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

fn link_value(meta: &RequestMeta) -> String {
    const REL: &str = ">; rel=\"mercure\"";
    let host = meta.host.as_deref().unwrap_or("localhost");
    let mut value = String::with_capacity(16 + host.len() + HUB_PATH.len() + REL.len());
    value.push('<');
    push_hub_url(&mut value, meta);
    value.push_str(REL);
    value
}

/// The protected resource metadata of the hub (RFC 9728).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ResourceMetadata {
    /// The hub's resource identifier (what draft-08 tokens name in `aud`).
    #[schema(example = "http://localhost:8000/.well-known/mercure")]
    resource: String,
    /// `https://mercure.rocks/authorization-detail`.
    authorization_details_types_supported: Vec<&'static str>,
    /// `header`.
    bearer_methods_supported: Vec<&'static str>,
    /// The cookie a browser's token is read from.
    mercure_cookie: String,
    /// `exact`, `urlpattern`.
    mercure_matcher_types_supported: Vec<&'static str>,
    /// The subscriptions API is served (`--subscriptions`).
    mercure_subscriptions: bool,
}

/// The protected resource metadata (draft-08, section "Protected Resource Metadata").
#[utoipa::path(get, operation_id = "mercure_resource_metadata", path = "/.well-known/oauth-protected-resource/.well-known/mercure", tag = "mercure",
    responses((status = 200, description = "The hub's protected resource metadata (RFC 9728)", body = ResourceMetadata)))]
pub(super) async fn metadata(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> axum::Json<ResourceMetadata> {
    let meta = app.request_meta(&headers, &uri, None);
    let resource = app
        .config()
        .auth
        .resource_identifier
        .clone()
        .unwrap_or_else(|| hub_url(&meta));
    let cookie = app
        .config()
        .auth
        .cookie_name
        .clone()
        .unwrap_or_else(|| crate::auth::COOKIE.to_owned());
    axum::Json(ResourceMetadata {
        resource,
        authorization_details_types_supported: vec![crate::auth::claims::DETAIL_TYPE],
        bearer_methods_supported: vec!["header"],
        mercure_cookie: cookie,
        mercure_matcher_types_supported: vec!["exact", "urlpattern"],
        mercure_subscriptions: app.config().subscriptions,
    })
}

/// The hub's URL for this request: what relative URL patterns resolve against and what the
/// reserved namespace is checked against.
pub(super) fn hub_url(meta: &RequestMeta) -> String {
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

pub(super) fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// Checks a parameter value: UTF-8 is given; no control or format characters.
fn clean(value: &str, what: &str) -> Result<(), ApiError> {
    if has_forbidden_char(value) {
        return Err(bad(format!("{what} holds a control or format character")));
    }
    Ok(())
}

pub(super) fn topic_name(text: &str) -> Result<TopicName, ApiError> {
    TopicName::any(text).map_err(|_| {
        bad(format!(
            "a topic must be 1 to {} bytes without control or format characters",
            crate::topic::MAX_MERCURE_TOPIC_LEN
        ))
    })
}

/// Subscribes to Mercure updates (both drafts); see the AsyncAPI document for the events.
#[utoipa::path(get, operation_id = "mercure_subscribe", path = "/.well-known/mercure", tag = "mercure",
    params(
        ("topic" = Option<Vec<String>>, Query, style = Form, explode,
            description = "draft-07 selectors: a topic, `*`, or an RFC 6570 URI template (repeatable)"),
        ("match" = Option<Vec<String>>, Query, style = Form, explode, description = "draft-08: an exact topic or `*`"),
        ("match_exact" = Option<Vec<String>>, Query, style = Form, explode, description = "draft-08: an exact topic or `*`"),
        ("match_urlpattern" = Option<Vec<String>>, Query, style = Form, explode,
            description = "draft-08: a WHATWG URL pattern (relative ones resolve against the hub URL)"),
        ("last_event_id" = Option<String>, Query, description = "draft-08 cursor: an id or `earliest`"),
        ("lastEventID" = Option<String>, Query, description = "draft-07 cursor"),
        ("Last-Event-ID" = Option<String>, Header, description = "The cursor (wins over the query)"),
    ),
    responses(
        (status = 200, description = "The event stream: each update as published (`id`, `event` unless `message`, `retry`, `data`)", body = crate::sse::SseEvent, content_type = "text/event-stream",
            headers(
                ("Link" = String, description = "`<hub URL>; rel=\"mercure\"`"),
                ("Mercure-Last-Event-ID" = String, description = "With a cursor: the cursor, or `earliest` when it is unknown or gone"),
                ("Cache-Control" = String, description = "`no-cache`"),
            )),
        (status = 400, description = "No selector, an invalid selector or cursor, an unsupported `match*` parameter, too many selectors, or a malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "A refused token, or no token with `--require-subscriber-token`", body = ErrorBody),
        (status = 429, description = "Over `--max-streams-per-client` or `--max-streams-per-subject`", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds"))),
        (status = 503, description = "The stream or topic cap is reached, the broker is unreachable or the server is shutting down", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds"))),
    ),
    security((), ("bearer" = []), ("cookie" = []), ("legacyCookie" = []), ("queryToken" = [])))]
pub(super) async fn subscribe(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    client: Option<Extension<ClientAddr>>,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let peer = client.map(|Extension(ClientAddr(addr))| addr.ip());
    let meta = app.request_meta(&headers, &uri, peer).version(version);
    let (session, extra) = open(&app, query.as_deref(), &meta).await?;
    let mut response = stream_response(session);
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

/// Parses a subscription and opens its session: what both the axum route and the direct
/// HTTP/1 path (`http::direct`) call. Returns the session and the response headers beyond a
/// stream's own (`Link`, `Mercure-Last-Event-ID`, `Last-Event-ID`), lower-case names.
///
/// # Errors
/// 400 for a bad query, else as [`super::stream::start`].
pub(crate) async fn open(
    app: &AppState,
    query: Option<&str>,
    meta: &RequestMeta,
) -> Result<(Session, Vec<(&'static str, String)>), ApiError> {
    let pairs = form::pairs(query.unwrap_or("").as_bytes())?;
    let mut raw: Vec<selectors::Raw> = Vec::new();
    let (mut draft_cursor, mut legacy_cursor, mut token) = (None, None, None);
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
    };
    let (mut session, resumed) = start(app, spec, meta).await?;
    if app.config().subscriptions {
        let payload = app
            .auth()
            .subscriber(&meta.credentials(None))
            .ok()
            .flatten()
            .and_then(|g| g.payload);
        session.hold(Active::open(app, &matchers, payload.as_ref()).await?);
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
    }
    // The direct path writes these into the head as they are: only valid header values.
    headers.retain(|(_, value)| HeaderValue::from_str(value).is_ok());
    Ok((session, headers))
}
