//! The subscriptions API of Mercure (`--subscriptions`) under
//! `/.well-known/mercure/subscriptions` (drafts, section "Subscription API"): the collection,
//! a matcher's collection or one subscription, from the registry in `ops::subscriptions`.

use axum::extract::State;
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Value};

use super::Routes;
use crate::auth::{AuthError, HUB_PATH};
use crate::error::{ApiError, ErrorBody};
use crate::ops::meta::RequestMeta;
use crate::ops::subscriptions::{pct, PREFIX};
use crate::ops::AppState;

pub(crate) fn router() -> Routes {
    Routes::default()
        .route(PREFIX, get(list))
        .route(&format!("{PREFIX}/{{*rest}}"), get(list))
}

/// Percent-decodes one path segment.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&segment[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The subscriptions API (with `--subscriptions`): the collection, a matcher's collection or
/// one subscription, by path.
#[utoipa::path(get, operation_id = "mercure_subscriptions", path = "/.well-known/mercure/subscriptions", tag = "mercure",
    responses(
        (status = 200, description = "Every subscription on this node", body = Subscriptions,
            headers(("Link" = String, description = "`<hub>; rel=\"mercure\"; last-event-id=\"...\"`"))),
        (status = 400, description = "A malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "No token, or a refused one", body = ErrorBody),
        (status = 403, description = "The token does not grant `subscribe` on this path", body = ErrorBody),
        (status = 404, description = "`--subscriptions` is off", body = ErrorBody),
        (status = 503, description = "The broker is unreachable", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
pub(super) async fn list(
    State(app): State<AppState>,
    meta: RequestMeta,
    uri: Uri,
) -> Result<Response, ApiError> {
    if !app.config().subscriptions {
        return Err(ApiError::NotFound);
    }
    let path = uri.path();
    // The requested URL, in relative form, is the topic a token must grant `subscribe` on.
    let grants = app
        .auth()
        .subscriber(&meta.credentials(None))?
        .ok_or(AuthError::Missing)?;
    if !grants.may_subscribe(path) {
        return Err(AuthError::Forbidden.into());
    }
    let rest: Vec<String> = path
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let legacy = rest
        .first()
        .is_some_and(|kind| kind != "exact" && kind != "urlpattern");
    let wanted = rest.iter().map(|s| pct(s)).collect::<Vec<_>>().join("/");
    let prefix = if wanted.is_empty() {
        PREFIX.to_owned()
    } else {
        format!("{PREFIX}/{wanted}")
    };
    let docs: Vec<Value> = app
        .subscriptions()
        .lock()
        .range(prefix.clone()..)
        .take_while(|(id, _)| id.starts_with(&prefix))
        .filter(|(id, _)| id.len() == prefix.len() || id[prefix.len()..].starts_with('/'))
        .map(|(_, doc)| doc.clone())
        .collect();
    let last = app
        .hub()
        .last_id()
        .await?
        .map_or_else(|| "earliest".to_owned(), |id| id.to_string());
    let single = (legacy && rest.len() == 2) || rest.len() == 3;
    let body = if single {
        docs.into_iter().next().ok_or(ApiError::NotFound)?
    } else if legacy || (rest.is_empty() && !grants.draft_08) {
        json!({"@context": "https://mercure.rocks/", "id": path, "type": "Subscriptions",
            "lastEventID": last, "subscriptions": docs})
    } else {
        json!({"id": path, "type": "subscriptions", "subscriptions": docs})
    };
    let mut response = axum::Json(body).into_response();
    let link = format!(
        "<{}{HUB_PATH}>; rel=\"mercure\"; last-event-id=\"{last}\"; type=\"mercure\"; content-type=\"application/json\"",
        meta.host
            .as_deref()
            .map(|h| format!("{}://{h}", meta.scheme()))
            .unwrap_or_default()
    );
    if let Ok(link) = HeaderValue::from_str(&link) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// A subscriptions document (draft-07 JSON-LD or draft-08 shape), or one subscription.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // named only in the API document; built with `json!` above
pub(crate) struct Subscriptions {
    /// This document's path.
    id: String,
    /// `subscriptions`, `Subscriptions` (draft-07), `subscription` or `Subscription`.
    #[schema(rename = "type")]
    kind: String,
    /// The subscriptions (collections only).
    subscriptions: Option<Vec<serde_json::Value>>,
}

/// One segment under the subscriptions path: a draft-07 topic, or a draft-08 match type.
#[utoipa::path(get, operation_id = "mercure_subscriptions_of", path = "/.well-known/mercure/subscriptions/{selector}", tag = "mercure",
    params(("selector" = String, Path, description = "A draft-07 topic, or `exact` / `urlpattern`")),
    responses(
        (status = 200, description = "The subscriptions of a topic or a match type", body = Subscriptions),
        (status = 400, description = "A malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "No token, or a refused one", body = ErrorBody),
        (status = 403, description = "The token does not grant `subscribe` on this path", body = ErrorBody),
        (status = 404, description = "`--subscriptions` is off", body = ErrorBody),
        (status = 503, description = "The broker is unreachable", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
#[allow(dead_code)] // served by `list`; documents the same route's deeper paths
fn doc_selector() {}

/// Two segments: one draft-07 subscription, or the subscriptions of one draft-08 matcher.
#[utoipa::path(get, operation_id = "mercure_subscription_pair", path = "/.well-known/mercure/subscriptions/{selector}/{key}", tag = "mercure",
    params(
        ("selector" = String, Path, description = "A draft-07 topic, or `exact` / `urlpattern`"),
        ("key" = String, Path, description = "The draft-07 subscriber, or the draft-08 matcher"),
    ),
    responses(
        (status = 200, description = "One subscription or a matcher's subscriptions", body = Subscriptions),
        (status = 400, description = "A malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "No token, or a refused one", body = ErrorBody),
        (status = 403, description = "The token does not grant `subscribe` on this path", body = ErrorBody),
        (status = 404, description = "`--subscriptions` is off, or no such subscription", body = ErrorBody),
        (status = 503, description = "The broker is unreachable", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
#[allow(dead_code)] // served by `list`
fn doc_pair() {}

/// Three segments: one draft-08 subscription.
#[utoipa::path(get, operation_id = "mercure_subscription", path = "/.well-known/mercure/subscriptions/{match_type}/{matcher}/{subscriber}", tag = "mercure",
    params(
        ("match_type" = String, Path, description = "`exact` or `urlpattern`"),
        ("matcher" = String, Path, description = "The matcher, percent-encoded"),
        ("subscriber" = String, Path, description = "The subscriber, percent-encoded"),
    ),
    responses(
        (status = 200, description = "One subscription", body = Subscriptions),
        (status = 400, description = "A malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "No token, or a refused one", body = ErrorBody),
        (status = 403, description = "The token does not grant `subscribe` on this path", body = ErrorBody),
        (status = 404, description = "`--subscriptions` is off, or no such subscription", body = ErrorBody),
        (status = 503, description = "The broker is unreachable", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
#[allow(dead_code)] // served by `list`
fn doc_single() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(decode("https%3A%2F%2Fexample.com"), "https://example.com");
        assert_eq!(decode("a%2"), "a%2");
    }
}
