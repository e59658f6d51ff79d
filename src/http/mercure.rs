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

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::stream;

use super::input::read_body;
use super::request::{ClientAddr, RequestMeta};
use super::stream::{start, StreamSpec, STREAM_HEADERS};
use super::subscriptions::{Active, Matcher};
use super::AppState;
use crate::auth::{Auth, HUB_PATH};
use crate::error::ApiError;
use crate::event::Draft;
use crate::session::Mode;
use crate::sse::fields::MAX_LINE_TEXT;
use crate::sse::{forbidden_char, EventName, LineText};
use crate::topic::{selector, Pattern, Selector, TopicName};

/// Most topics one update may name.
const MAX_UPDATE_TOPICS: usize = 64;

/// Where the protected resource metadata of the hub URL lives (RFC 9728, section 3).
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(HUB_PATH, get(subscribe).post(publish))
        .route(METADATA_PATH, get(metadata))
}

/// The hub's `Link: <...>; rel="mercure"` header value (section "Discovery").
pub(crate) fn link(meta: &RequestMeta) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("<{}>; rel=\"mercure\"", hub_url(meta))).ok()
}

/// The protected resource metadata (draft-08, section "Protected Resource Metadata").
async fn metadata(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> axum::Json<serde_json::Value> {
    let meta = RequestMeta::from_headers(&headers, &uri, None);
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
    axum::Json(serde_json::json!({
        "resource": resource,
        "authorization_details_types_supported": [crate::auth::claims::DETAIL_TYPE],
        "bearer_methods_supported": ["header"],
        "mercure_cookie": cookie,
        "mercure_matcher_types_supported": ["exact", "urlpattern"],
        "mercure_subscriptions": app.config().subscriptions,
    }))
}

/// The hub's URL for this request: what relative URL patterns resolve against and what the
/// reserved namespace is checked against.
fn hub_url(meta: &RequestMeta) -> String {
    format!(
        "http://{}{HUB_PATH}",
        meta.host.as_deref().unwrap_or("localhost")
    )
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// Checks a parameter value: UTF-8 is given; no control or format characters.
fn clean(value: &str, what: &str) -> Result<(), ApiError> {
    if value.chars().any(forbidden_char) {
        return Err(bad(format!("{what} holds a control or format character")));
    }
    Ok(())
}

/// A legacy `topic` selector as a subscription pattern.
fn legacy_pattern(value: &str) -> Result<Pattern, ApiError> {
    clean(value, "topic")?;
    if value.is_empty() {
        return Err(bad("topic is empty"));
    }
    Ok(
        match Selector::legacy(value).map_err(|e| bad(e.to_string()))? {
            Selector::Any => Pattern::Prefix("".into()),
            Selector::Prefix(prefix) => Pattern::Prefix(prefix.into()),
            Selector::Exact(topic) => Pattern::Exact(topic_name(&topic)?),
            matcher => Pattern::Matcher(matcher),
        },
    )
}

fn topic_name(text: &str) -> Result<TopicName, ApiError> {
    TopicName::any(text).map_err(|e| bad(e.to_string()))
}

async fn subscribe(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    client: Option<Extension<ClientAddr>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let peer = client.map(|Extension(ClientAddr(addr))| addr.ip());
    let meta = RequestMeta::from_headers(&headers, &uri, peer);
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|err| bad(format!("invalid query string: {err}")))?;
    let mut patterns: Vec<Pattern> = Vec::new();
    let mut matchers: Vec<Matcher> = Vec::new();
    let (mut draft_cursor, mut legacy_cursor, mut token) = (None, None, None);
    for (key, value) in pairs {
        let matcher = match key.as_str() {
            "topic" => Matcher::Legacy(value.clone()),
            "match_urlpattern" => Matcher::Typed("urlpattern", value.clone()),
            _ => Matcher::Typed("exact", value.clone()),
        };
        let pattern = match key.as_str() {
            "topic" => legacy_pattern(&value)?,
            "match" | "match_exact" => {
                clean(&value, &key)?;
                match value.as_str() {
                    "*" => Pattern::Prefix("".into()),
                    _ => Pattern::Exact(topic_name(&value)?),
                }
            }
            "match_urlpattern" => {
                clean(&value, &key)?;
                match value.as_str() {
                    "*" => Pattern::Prefix("".into()),
                    _ => Pattern::Matcher(
                        selector::url_pattern_with_base(&value, &hub_url(&meta))
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                }
            }
            name if name.len() >= 5 && name[..5].eq_ignore_ascii_case("match") => {
                return Err(bad(format!("unsupported matcher parameter {name:?}")));
            }
            "last_event_id" => {
                draft_cursor.get_or_insert(value);
                continue;
            }
            "lastEventID" => {
                legacy_cursor.get_or_insert(value);
                continue;
            }
            "authorization" => {
                token = Some(value);
                continue;
            }
            _ => continue,
        };
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
            matchers.push(matcher);
        }
    }
    if patterns.is_empty() {
        return Err(bad(
            "name at least one topic (topic=, match= or match_urlpattern=)",
        ));
    }
    if patterns.len() > app.config().max_topics_per_stream {
        return Err(bad(format!(
            "at most {} topic selectors per subscription",
            app.config().max_topics_per_stream
        )));
    }
    let spec = StreamSpec {
        patterns,
        mode: Mode::Mercure,
        last_event_id: draft_cursor.or(legacy_cursor).filter(|c| !c.is_empty()),
        token,
    };
    let (mut session, resumed) = start(&app, spec, &meta).await?;
    if app.config().subscriptions {
        let payload = app
            .auth()
            .subscriber(&meta.credentials(None))
            .ok()
            .flatten()
            .and_then(|g| g.payload);
        session.hold(Active::open(&app, &matchers, payload.as_ref()).await?);
    }
    let body = stream::unfold(session, |mut session| async move {
        let chunk = session.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), session))
    });
    let mut response = Body::from_stream(body).into_response();
    let response_headers = response.headers_mut();
    if let Some(link) = link(&meta) {
        response_headers.insert(header::LINK, link);
    }
    for (name, value) in STREAM_HEADERS {
        response_headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    // The event preceding the first one sent: the cursor itself, unless it is unknown, gone,
    // or `earliest` (section "Reconciliation").
    if let Some(requested) = resumed.requested {
        let anchor = if resumed.gap || requested == "earliest" {
            "earliest".to_owned()
        } else {
            requested
        };
        if let Ok(value) = HeaderValue::from_str(&anchor) {
            response_headers.insert("mercure-last-event-id", value.clone());
            response_headers.insert("last-event-id", value);
        }
    }
    Ok(response)
}

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

fn read_update(bytes: &[u8]) -> Result<Update, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|err| bad(format!("invalid form body: {err}")))?;
    let mut update = Update::default();
    for (key, value) in pairs {
        match key.as_str() {
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

/// Whether a topic, resolved against the hub's URL, addresses the hub's own namespace.
fn reserved(topic: &str, hub: &str) -> bool {
    let Ok(base) = url::Url::parse(hub) else {
        return false;
    };
    let Ok(resolved) = base.join(topic) else {
        return false;
    };
    let path = normalize(&decode_unreserved(resolved.path()));
    path == HUB_PATH || path.starts_with(&format!("{HUB_PATH}/"))
}

/// Decodes percent-escapes of unreserved characters (RFC 3986 section 2.3).
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(byte));
                    i += 3;
                    continue;
                }
            }
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

/// Removes dot segments (RFC 3986 section 5.2.4).
fn normalize(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

async fn publish(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let meta = RequestMeta::from_headers(&headers, &uri, None);
    let grants = app.auth().publisher(&meta.credentials(None))?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(ApiError::UnsupportedMediaType(
            "application/x-www-form-urlencoded",
        ));
    }
    let limits = app.input_limits();
    let update = read_update(&read_body(&headers, body, limits).await?)?;
    if update.topics.is_empty() {
        return Err(bad("topic is required"));
    }
    if update.topics.len() > MAX_UPDATE_TOPICS {
        return Err(ApiError::TooLarge(format!(
            "at most {MAX_UPDATE_TOPICS} topics per update"
        )));
    }
    let hub = hub_url(&meta);
    let mut topics = Vec::with_capacity(update.topics.len());
    for topic in &update.topics {
        if topic == "*" {
            return Err(bad("the topic * is reserved for the wildcard"));
        }
        if reserved(topic, &hub) {
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
        Auth::may_publish(grants.as_ref(), topic.as_str())?;
    }
    let mut topics = topics.into_iter();
    let canonical = topics.next().ok_or_else(|| bad("topic is required"))?;
    let draft = Draft {
        topic: canonical,
        name,
        message,
        private: update.private,
        alternates: topics.collect(),
        custom_id,
        retry,
    };
    let published = app.hub().publish(draft).await?;
    let mut response = (StatusCode::OK, published.event.wire_id().to_owned()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(link) = link(&meta) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_namespace_is_reserved_however_spelled() {
        let hub = "http://hub.test/.well-known/mercure";
        for topic in [
            "/.well-known/mercure",
            "/.well-known/mercure/subscriptions/x",
            "https://other.test/.well-known/mercure/x",
            "/.well-known/%6Dercure/x",
            "/.well-known/mercure/../mercure/x",
            "/a/../.well-known/mercure",
        ] {
            assert!(reserved(topic, hub), "{topic}");
        }
        for topic in [
            "/.well-known/mercurex",
            "https://example.com/books/1",
            "plain",
        ] {
            assert!(!reserved(topic, hub), "{topic}");
        }
    }
}
