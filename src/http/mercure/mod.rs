//! The Mercure protocol's routes on the hyper path: `GET` subscribes, `POST` publishes (the
//! operations, and the protocol's rules, are in `ops::mercure`), and the protected resource
//! metadata of the hub URL (RFC 9728).

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::get;

pub(super) mod publish;

use super::stream::stream_response;
use super::Routes;
use crate::auth::HUB_PATH;
use crate::error::{ApiError, ErrorBody};
use crate::ops::mercure::{hub_url, link_value, subscribe as open};
use crate::ops::meta::RequestMeta;
use crate::ops::AppState;

/// Where the protected resource metadata of the hub URL lives (RFC 9728, section 3).
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

pub(crate) fn router() -> Routes {
    Routes::default()
        .route(HUB_PATH, get(subscribe).post(publish::publish))
        .route(METADATA_PATH, get(metadata))
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
    meta: RequestMeta,
) -> axum::Json<ResourceMetadata> {
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
        ("ticket" = Option<String>, Query,
            description = "A single-use subscribe ticket (`POST /api/tickets`): it stands for the token that made it"),
    ),
    responses(
        (status = 200, description = "The event stream: each update as published (`id`, `event` unless `message`, `retry`, `data`)", body = crate::sse::SseEvent, content_type = "text/event-stream",
            headers(
                ("Link" = String, description = "`<hub URL>; rel=\"mercure\"`"),
                ("Mercure-Last-Event-ID" = String, description = "The event preceding the first one sent: with a cursor, the cursor, or `earliest` when it is unknown or gone; without one, the newest event issued before the stream began (`earliest` if none), a cursor to resume from without missing anything"),
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
    meta: RequestMeta,
) -> Result<Response, ApiError> {
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

/// The hub's `Link: <...>; rel="mercure"` header value (section "Discovery").
pub(crate) fn link(meta: &RequestMeta) -> Option<HeaderValue> {
    HeaderValue::from_str(&link_value(meta)).ok()
}
