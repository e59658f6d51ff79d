//! Mercure's active subscriptions (`--subscriptions`, off by default as in Mercure), whatever
//! the transport: the subscriptions open on this node, and a private update of type `mercure`
//! on the hub's own topics when a subscription starts and ends (drafts, sections "Active
//! Subscriptions", "Subscription Events"). The API that lists them is `http::subscriptions`.
//!
//! A subscription made with draft-08 parameters (`match=`, `match_urlpattern=`) is described
//! in draft-08's shape; one made with a legacy `topic=` selector in draft-07's JSON-LD shape.
//! Each node lists its own subscribers; the events reach every node's subscribers.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

use super::AppState;
use crate::error::ApiError;
use crate::event::Draft;
use crate::sse::EventName;
use crate::topic::TopicName;

/// The path of the subscriptions API and of subscription events' topics.
pub(crate) const PREFIX: &str = "/.well-known/mercure/subscriptions";

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
pub(crate) fn pct(text: &str) -> String {
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Value>> {
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
        let (legacy, doc) = Registry::document(&Matcher::Legacy("a b".into()), "s", None);
        assert_eq!(legacy, "/.well-known/mercure/subscriptions/a%20b/s");
        assert_eq!(doc["type"], "Subscription");
    }
}
