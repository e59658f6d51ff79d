//! Mercure's active subscriptions (`--subscriptions`, off by default as in Mercure): a private
//! update of type `mercure` on the hub's own topics when a subscription starts and ends, and the
//! subscriptions API under `/.well-known/mercure/subscriptions` (drafts, sections "Active
//! Subscriptions", "Subscription Events", "Subscription API").
//!
//! A subscription made with draft-08 parameters (`match=`, `match_urlpattern=`) is described
//! in draft-08's shape; one made with a legacy `topic=` selector in draft-07's JSON-LD shape.
//! Each node lists its own subscribers; the events reach every node's subscribers.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Routes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Value};

use super::AppState;
use crate::auth::{AuthError, HUB_PATH};
use crate::error::{ApiError, ErrorBody};
use crate::event::Draft;
use crate::sse::EventName;
use crate::topic::TopicName;

/// The path of the subscriptions API and of subscription events' topics.
const PREFIX: &str = "/.well-known/mercure/subscriptions";

/// The subscriptions open on this node, by their topic (which is also their id).
#[derive(Debug)]
pub struct Registry {
    docs: Mutex<BTreeMap<String, Value>>,
    next: AtomicU64,
    seed: u64,
}

impl Default for Registry {
    fn default() -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self {
            docs: Mutex::default(),
            next: AtomicU64::new(1),
            seed,
        }
    }
}

/// One subscription parameter of a request: which draft's shape, and the matcher.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// `topic=` (draft-07).
    Legacy(String),
    /// `match=`/`match_exact=` (`exact`) or `match_urlpattern=` (`urlpattern`).
    Typed(&'static str, String),
}

/// RFC 6570 simple expansion of one value: everything but unreserved characters
/// percent-encoded, once.
fn pct(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Value>> {
        self.docs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh, unguessable identifier for one connection.
    fn subscriber(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(self.seed ^ n);
        format!("urn:ssehub:subscriber:{:016x}{n:x}", hasher.finish())
    }

    fn document(matcher: &Matcher, subscriber: &str, payload: Option<&Value>) -> (String, Value) {
        let (id, mut doc) = match matcher {
            Matcher::Legacy(topic) => {
                let id = format!("{PREFIX}/{}/{}", pct(topic), pct(subscriber));
                let doc = json!({"@context": "https://mercure.rocks/", "id": id,
                    "type": "Subscription", "topic": topic, "subscriber": subscriber, "active": true});
                (id, doc)
            }
            Matcher::Typed(kind, text) => {
                let id = format!("{PREFIX}/{kind}/{}/{}", pct(text), pct(subscriber));
                let doc = json!({"id": id, "type": "subscription", "match_type": kind,
                    "match": text, "subscriber": subscriber, "active": true});
                (id, doc)
            }
        };
        if let Some(payload) = payload {
            doc["payload"] = payload.clone();
        }
        (id, doc)
    }
}

/// A connection's subscriptions: registered and announced when made, announced as ended and
/// removed when dropped (the stream holds it).
pub(crate) struct Active {
    app: AppState,
    docs: Vec<(String, Value)>,
}

impl Active {
    /// Registers the subscriptions of one connection and publishes their events.
    ///
    /// # Errors
    /// When the events cannot be published.
    pub(crate) async fn open(
        app: &AppState,
        matchers: &[Matcher],
        payload: Option<&Value>,
    ) -> Result<Self, ApiError> {
        let registry = app.subscriptions();
        let subscriber = registry.subscriber();
        let docs: Vec<(String, Value)> = matchers
            .iter()
            .map(|m| Registry::document(m, &subscriber, payload))
            .collect();
        registry.lock().extend(docs.iter().cloned());
        for (id, doc) in &docs {
            announce(app, id, doc).await?;
        }
        Ok(Self {
            app: app.clone(),
            docs,
        })
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let mut docs = std::mem::take(&mut self.docs);
        {
            let mut registry = self.app.subscriptions().lock();
            for (id, _) in &docs {
                registry.remove(id);
            }
        }
        let app = self.app.clone();
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(async move {
                for (id, doc) in &mut docs {
                    doc["active"] = json!(false);
                    if let Err(err) = announce(&app, id, doc).await {
                        tracing::debug!(%err, "subscription end not announced");
                    }
                }
            });
        }
    }
}

/// Publishes a subscription event: private, type `mercure`, on the subscription's own topic.
async fn announce(app: &AppState, id: &str, doc: &Value) -> Result<(), ApiError> {
    let topic = TopicName::any(id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let name = EventName::any("mercure").map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut draft = Draft::new(topic, name, doc.to_string());
    draft.private = true;
    app.hub().publish(draft).await?;
    Ok(())
}

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
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !app.config().subscriptions {
        return Err(ApiError::NotFound);
    }
    let path = uri.path();
    // The requested URL, in relative form, is the topic a token must grant `subscribe` on.
    let meta = app.request_meta(&headers, &uri, None);
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

/// The registry's handle, for [`AppState`].
pub(crate) type Shared = Arc<Registry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_encode_each_value_once() {
        let (id, doc) = Registry::document(
            &Matcher::Typed("urlpattern", "https://example.com/:selector".into()),
            "urn:uuid:bb3de268",
            Some(&json!({"foo": "bar"})),
        );
        assert_eq!(
            id,
            "/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fexample.com%2F%3Aselector/urn%3Auuid%3Abb3de268"
        );
        assert_eq!(doc["match_type"], "urlpattern");
        assert_eq!(doc["payload"]["foo"], "bar");
        assert_eq!(decode("https%3A%2F%2Fexample.com"), "https://example.com");
        let (legacy, doc) = Registry::document(&Matcher::Legacy("a b".into()), "s", None);
        assert_eq!(legacy, "/.well-known/mercure/subscriptions/a%20b/s");
        assert_eq!(doc["type"], "Subscription");
    }
}
