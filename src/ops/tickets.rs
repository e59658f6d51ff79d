//! Subscribe tickets: a short-lived, single-use string that stands for the caller's subscriber
//! token, so that a plain `EventSource` (which cannot send an `Authorization` header) can open
//! `GET /stream?ticket=…` or `GET /.well-known/mercure?ticket=…` without a long-lived
//! credential in its URL.
//!
//! - **Issued** by `POST /api/tickets` to a caller with a valid subscriber token (header or
//!   cookie), optionally narrowed to some of the topics it may read; it lives
//!   [`TICKET_TTL`] (less if the token expires sooner).
//! - **Stored** under the SHA-256 of the ticket (so a store's contents are not tickets): in
//!   the broker's [`OnceStore`](crate::broker::OnceStore) when it has one (Redis: any node
//!   redeems a ticket made on any other), else in this node's memory, bounded by
//!   [`MAX_LOCAL`] tickets.
//! - **Redeemed** once: taken atomically, then the token it stands for is verified again (so a
//!   ticket is never worth more than its token, and a stream opened with it ends when the token
//!   expires). Used twice, expired or forged: 401 `invalid_token`, like a refused token.
//! - Never logged: the query string is not in the access log, and nothing here logs a ticket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::meta::RequestMeta;
use super::AppState;
use crate::auth::{AuthError, Grants, Selector};
use crate::error::ApiError;

/// How long a ticket may wait to be redeemed.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Tickets one node holds in memory at most (without a shared store); then `503`.
pub const MAX_LOCAL: usize = 10_000;
/// Topics a ticket may be narrowed to.
pub const MAX_TOPICS: usize = 64;

/// What a ticket stands for (stored, never sent).
#[derive(Serialize, Deserialize)]
struct Stored {
    /// The subscriber token that made it, verified again on redemption.
    token: String,
    /// The topics it was narrowed to, if it was.
    topics: Option<Vec<String>>,
}

/// A ticket just made.
pub(crate) struct Issued {
    pub ticket: String,
    pub expires_in: u64,
}

/// This node's tickets when the broker shares none: key → (deadline, stored value).
#[derive(Default)]
pub(crate) struct LocalTickets {
    held: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
}

impl std::fmt::Debug for LocalTickets {
    /// The count only: what is held stands for tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTickets")
            .field("held", &self.len())
            .finish()
    }
}

impl LocalTickets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Vec<u8>)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `value`; `false` when [`MAX_LOCAL`] unexpired tickets are held.
    fn put(&self, key: String, value: Vec<u8>, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut held = self.lock();
        if held.len() >= MAX_LOCAL {
            held.retain(|_, (deadline, _)| *deadline > now);
        }
        if held.len() >= MAX_LOCAL {
            return false;
        }
        held.insert(key, (now + ttl, value));
        true
    }

    fn take(&self, key: &str) -> Option<Vec<u8>> {
        let (deadline, value) = self.lock().remove(key)?;
        (deadline > Instant::now()).then_some(value)
    }

    /// Tickets held now (expired ones included until swept).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The store key of a ticket: its SHA-256, in hex.
fn key_of(ticket: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ticket.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes, base64url without padding (43 characters).
fn new_ticket() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::Unavailable("no randomness for a ticket".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `grants` lets its holder read `topic` (a topic, or one of its own selectors).
fn covers(grants: &Grants, topic: &str) -> bool {
    grants.may_subscribe(topic)
        || grants.subscribe.iter().any(|s| {
            s.source() == topic || matches!(s, Selector::Prefix(p) if format!("{p}*") == topic)
        })
}

/// `POST /api/tickets`: a ticket for the caller's subscriber token, narrowed to `topics`.
///
/// # Errors
/// 401 without a valid subscriber token (a ticket stands for one); 403 for a topic the token
/// does not grant; 400 for too many topics; 503 when the store is full or unreachable.
pub(crate) async fn issue(
    app: &AppState,
    meta: &RequestMeta,
    topics: Option<Vec<String>>,
) -> Result<Issued, ApiError> {
    let grants = app
        .auth()
        .subscriber(&meta.credentials(None))?
        .ok_or(AuthError::Missing)?;
    let token = app
        .auth()
        .presented_token(&meta.credentials(None))?
        .ok_or(AuthError::Missing)?;
    if let Some(topics) = &topics {
        if topics.is_empty() || topics.len() > MAX_TOPICS {
            return Err(ApiError::BadRequest(format!(
                "topics: name 1 to {MAX_TOPICS} topics, or leave it out"
            )));
        }
        if !topics.iter().all(|topic| covers(&grants, topic)) {
            return Err(AuthError::Forbidden.into());
        }
    }
    let now = crate::event::unix_now();
    let left = grants.expires.map_or(TICKET_TTL, |exp| {
        Duration::from_secs_f64((exp as f64 - now).max(0.0))
    });
    let ttl = TICKET_TTL.min(left);
    if ttl < Duration::from_secs(1) {
        return Err(AuthError::Invalid.into());
    }
    let value = serde_json::to_vec(&Stored { token, topics })
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let ticket = new_ticket()?;
    let key = key_of(&ticket);
    let stored = match app.hub().broker().once_store() {
        Some(store) => store.put_once(&key, value, ttl).await?,
        None => app.local_tickets().put(key, value, ttl),
    };
    if !stored {
        return Err(ApiError::TooManyTickets);
    }
    Ok(Issued {
        ticket,
        expires_in: ttl.as_secs(),
    })
}

/// Takes `ticket` and returns the grants of the token it stands for, narrowed as it was.
///
/// # Errors
/// 401 `invalid_token` for a ticket unknown, used or expired, or whose token no longer
/// verifies; 503 when the store is unreachable.
pub(crate) async fn redeem(
    app: &AppState,
    meta: &RequestMeta,
    ticket: &str,
) -> Result<Grants, ApiError> {
    let key = key_of(ticket);
    let value = match app.hub().broker().once_store() {
        Some(store) => store.take_once(&key).await?,
        None => app.local_tickets().take(&key),
    };
    let stored: Stored = value
        .and_then(|value| serde_json::from_slice(&value).ok())
        .ok_or(AuthError::Invalid)?;
    let header = format!("Bearer {}", stored.token);
    let mut credentials = meta.credentials(None);
    credentials.authorization = Some(header.as_bytes());
    credentials.cookie = None;
    let mut grants = app
        .auth()
        .subscriber(&credentials)?
        .ok_or(AuthError::Invalid)?;
    if let Some(topics) = stored.topics {
        grants.subscribe = topics
            .iter()
            .filter_map(|topic| Selector::legacy(topic).ok())
            .collect();
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_local_ticket_is_taken_once_and_not_after_its_lifetime() {
        let tickets = LocalTickets::default();
        assert!(tickets.put("a".into(), b"1".to_vec(), Duration::from_secs(30)));
        assert!(tickets.put("b".into(), b"2".to_vec(), Duration::from_secs(30)));
        assert_eq!(tickets.take("a").as_deref(), Some(&b"1"[..]));
        assert_eq!(tickets.take("a"), None, "a second use");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(tickets.take("b"), None, "expired");
        assert_eq!(tickets.take("never"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn local_tickets_are_bounded_and_expired_ones_make_room() {
        let tickets = LocalTickets::default();
        for i in 0..MAX_LOCAL {
            assert!(tickets.put(i.to_string(), Vec::new(), Duration::from_secs(30)));
        }
        assert!(!tickets.put("one more".into(), Vec::new(), Duration::from_secs(30)));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(tickets.put("one more".into(), Vec::new(), Duration::from_secs(30)));
        assert_eq!(tickets.len(), 1);
    }

    #[test]
    fn tickets_are_random_and_stored_by_their_hash() {
        let (a, b) = (new_ticket().unwrap(), new_ticket().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(key_of(&a).len(), 64);
        assert!(!key_of(&a).contains(&a));
    }
}
