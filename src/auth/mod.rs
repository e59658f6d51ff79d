//! Who may publish and who may read private events: the Mercure authorization model.
//!
//! Off by default (no key configured: everyone publishes, nobody reads private events). With a
//! publisher key every publish needs a token granting `publish` on its topic; with a subscriber
//! key a stream may present a token whose `subscribe` grants open private events to it (and
//! `--require-subscriber-token` makes one mandatory). Tokens come from `Authorization: Bearer`
//! (which wins), a cookie, or, for subscribers and only when allowed, the `authorization`
//! query parameter. Why a token was refused goes to the log at `info` (issuer and key id, never
//! the token); clients only learn `invalid_token`.
//!
//! No HTTP types here: callers hand in the raw header values as [`Credentials`].

pub mod claims;
pub mod keys;

use std::time::Duration;

pub use crate::topic::Selector;
pub use claims::Grants;
pub use keys::{KeyError, Verifier};

use crate::config::AuthConfig;
use crate::logtext::Untrusted;

/// The legacy (draft-07) cookie name.
pub const LEGACY_COOKIE: &str = "mercureAuthorization";
/// The draft-08 cookie name.
pub const COOKIE: &str = "__Secure-mercure_access_token";
/// Longest a deadline may be, in seconds (ten years).
const MAX_DEADLINE_SECS: f64 = 10.0 * 365.0 * 86_400.0;
/// The hub's path, for the default resource identifier.
pub const HUB_PATH: &str = "/.well-known/mercure";

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: a token is needed and none was presented.
    #[error("a token is required")]
    Missing,
    /// 401 `invalid_token`: the token was refused.
    #[error("the token is not valid")]
    Invalid,
    /// 400 `invalid_request`: the `Authorization` header is not `Bearer <token>`.
    #[error("the Authorization header must be 'Bearer <token>'")]
    Malformed,
    /// 403 `insufficient_scope`: the token does not grant this.
    #[error("the token does not grant this")]
    Forbidden,
    /// 403: a cookie-authenticated publish from an origin not in `--publish-origins`.
    #[error("publishing with a cookie is not allowed from this origin")]
    Origin,
}

/// The credential-bearing parts of a request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a [u8]>,
    /// The `Cookie` header(s), joined with `; `.
    pub cookie: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a [u8]>,
    /// The request's host (the `Host` header or the HTTP/2 authority).
    pub host: Option<&'a str>,
    /// The `authorization` query parameter, when the request had one.
    pub query_token: Option<&'a str>,
    /// `https` or `http`: the default resource identifier's scheme.
    pub scheme: &'a str,
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    Cookie,
    Query,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Auth {
    publisher: Option<Verifier>,
    subscriber: Option<Verifier>,
    trusted_issuers: Vec<String>,
    resource_identifier: Option<String>,
    cookie_names: Vec<String>,
    allow_query_token: bool,
    require_subscriber_token: bool,
    publish_origins: Vec<String>,
    max_lifetime: Option<Duration>,
}

impl Auth {
    /// The configured model.
    ///
    /// # Errors
    /// A key that cannot be loaded.
    pub fn from_config(config: &AuthConfig) -> Result<Self, KeyError> {
        let role =
            |key: &Option<String>, alg: &Option<String>| -> Result<Option<Verifier>, KeyError> {
                let key = key.as_ref().or(config.keys.jwt_key.as_ref());
                let alg = alg
                    .as_deref()
                    .or(config.keys.jwt_alg.as_deref())
                    .unwrap_or("HS256");
                let mut verifier = match key {
                    Some(key) => Some(Verifier::from_flag(key, alg)?),
                    None => None,
                };
                if let Some(path) = &config.jwks_file {
                    let mut set = verifier.take().unwrap_or_else(Verifier::empty);
                    set.add_jwks(path)?;
                    verifier = Some(set);
                }
                Ok(verifier)
            };
        let mut cookie_names = vec![COOKIE.to_owned(), LEGACY_COOKIE.to_owned()];
        if let Some(name) = &config.cookie_name {
            cookie_names.insert(0, name.clone());
        }
        Ok(Self {
            publisher: role(
                &config.keys.publisher_jwt_key,
                &config.keys.publisher_jwt_alg,
            )?,
            subscriber: role(
                &config.keys.subscriber_jwt_key,
                &config.keys.subscriber_jwt_alg,
            )?,
            trusted_issuers: config
                .trusted_issuers
                .iter()
                .flat_map(|t| t.split_whitespace())
                .map(str::to_owned)
                .collect(),
            resource_identifier: config.resource_identifier.clone(),
            cookie_names,
            allow_query_token: config.allow_query_token,
            require_subscriber_token: config.require_subscriber_token,
            publish_origins: config.publish_origins.clone(),
            max_lifetime: config.max_stream_lifetime,
        })
    }

    /// Whether publishes need a token.
    pub fn guards_publishing(&self) -> bool {
        self.publisher.is_some()
    }

    /// Whether subscribers can present tokens.
    pub fn reads_subscriber_tokens(&self) -> bool {
        self.subscriber.is_some()
    }

    /// The publisher's grants: `None` when publishing is open to everyone.
    ///
    /// # Errors
    /// 401 without a valid token; 403 for a cookie from an origin not allowed.
    pub fn publisher(&self, request: &Credentials<'_>) -> Result<Option<Grants>, AuthError> {
        let Some(verifier) = &self.publisher else {
            return Ok(None);
        };
        let (token, source) = self.token(request, false)?.ok_or(AuthError::Missing)?;
        if source == Source::Cookie {
            let origin = request.origin.and_then(|o| std::str::from_utf8(o).ok());
            if !origin.is_some_and(|o| self.publish_origins.iter().any(|allowed| allowed == o)) {
                tracing::info!(origin = ?origin, "cookie publish refused: origin not in --publish-origins");
                return Err(AuthError::Origin);
            }
        }
        self.check(verifier, &token, request, "publisher").map(Some)
    }

    /// Checks a publisher's grants for one topic.
    ///
    /// # Errors
    /// 403 when the token does not grant `publish` on it.
    pub fn may_publish(grants: Option<&Grants>, topic: &str) -> Result<(), AuthError> {
        match grants {
            Some(grants) if !grants.may_publish(topic) => {
                let topic = Untrusted(topic);
                tracing::info!(%topic, subject = ?grants.subject, "publish refused: no grant for the topic");
                Err(AuthError::Forbidden)
            }
            _ => Ok(()),
        }
    }

    /// The subscriber's grants: `None` for an anonymous subscriber.
    ///
    /// # Errors
    /// 401 for a presented token that is invalid, or no token when one is required.
    pub fn subscriber(&self, request: &Credentials<'_>) -> Result<Option<Grants>, AuthError> {
        let Some(verifier) = &self.subscriber else {
            return Ok(None);
        };
        match self.token(request, self.allow_query_token)? {
            Some((token, _)) => self
                .check(verifier, &token, request, "subscriber")
                .map(Some),
            None if self.require_subscriber_token => Err(AuthError::Missing),
            None => Ok(None),
        }
    }

    /// The token the request presents in its `Authorization` header or a cookie (not the
    /// query): what a subscribe ticket stands for. Not verified here.
    ///
    /// # Errors
    /// 400 for an `Authorization` header that is not `Bearer <token>`.
    pub fn presented_token(&self, request: &Credentials<'_>) -> Result<Option<String>, AuthError> {
        Ok(self.token(request, false)?.map(|(token, _)| token))
    }

    /// When a stream with these grants must end: the token's `exp`, or `--max-stream-lifetime`
    /// from now, whichever is first (Unix seconds and a status word for the `close` event).
    pub fn stream_deadline(&self, grants: Option<&Grants>) -> Option<(Duration, &'static str)> {
        let now = crate::event::unix_now();
        // A far-away `exp` is no deadline in practice: cap it where time arithmetic stays safe.
        let expires = grants
            .and_then(|g| g.expires)
            .map(|exp| (exp as f64 - now).clamp(0.0, MAX_DEADLINE_SECS))
            .map(|secs| {
                (
                    Duration::from_secs_f64(secs),
                    crate::event::control::EXPIRED,
                )
            });
        let lifetime = self
            .max_lifetime
            .map(|d| (d, crate::event::control::LIFETIME));
        match (expires, lifetime) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    fn check(
        &self,
        verifier: &Verifier,
        token: &str,
        request: &Credentials<'_>,
        role: &'static str,
    ) -> Result<Grants, AuthError> {
        let verified = verifier.verify(token).map_err(|rejected| {
            // Not verified: the issuer is what the token claims, logged as such.
            let unverified_issuer = keys::unverified_issuer(token);
            tracing::info!(
                role,
                reason = %Untrusted(&rejected.reason),
                unverified_issuer = unverified_issuer.as_deref().map(Untrusted).map(tracing::field::display),
                kid = ?rejected.kid,
                "token refused"
            );
            AuthError::Invalid
        })?;
        let resource = match &self.resource_identifier {
            Some(resource) => resource.clone(),
            None => format!(
                "{}://{}{HUB_PATH}",
                if request.scheme.is_empty() {
                    "http"
                } else {
                    request.scheme
                },
                request.host.unwrap_or("localhost")
            ),
        };
        let audience = claims::Audience {
            trusted_issuers: &self.trusted_issuers,
            resource: &resource,
        };
        claims::grants(&verified, &audience).map_err(|reason| {
            let issuer = verified.claims.get("iss").and_then(|v| v.as_str());
            tracing::info!(
                role,
                reason = %Untrusted(&reason),
                issuer = issuer.map(Untrusted).map(tracing::field::display),
                kid = ?verified.header.kid,
                "token refused"
            );
            AuthError::Invalid
        })
    }

    /// The presented token: the header wins over a cookie; the query only when allowed.
    fn token(
        &self,
        request: &Credentials<'_>,
        query_allowed: bool,
    ) -> Result<Option<(String, Source)>, AuthError> {
        if let Some(header) = request.authorization {
            let header = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
            let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(AuthError::Malformed);
            }
            return Ok(Some((token.trim().to_owned(), Source::Header)));
        }
        if let Some(cookies) = request.cookie {
            for name in &self.cookie_names {
                if let Some(value) = cookie(cookies, name) {
                    return Ok(Some((value.to_owned(), Source::Cookie)));
                }
            }
        }
        match request.query_token {
            Some(token) if query_allowed && !token.is_empty() => {
                Ok(Some((token.to_owned(), Source::Query)))
            }
            _ => Ok(None),
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "a=1; mercureAuthorization=tok; __Secure-mercure_access_token=\"q\"";
        assert_eq!(cookie(header, LEGACY_COOKIE), Some("tok"));
        assert_eq!(cookie(header, COOKIE), Some("q"));
        assert_eq!(cookie(header, "mercure"), None);
    }

    #[test]
    fn the_header_wins_and_must_be_bearer() {
        let auth = Auth {
            cookie_names: vec![LEGACY_COOKIE.into()],
            ..Auth::default()
        };
        let mut request = Credentials {
            authorization: Some(b"bEaReR  abc "),
            cookie: Some("mercureAuthorization=zzz"),
            ..Credentials::default()
        };
        assert_eq!(
            auth.token(&request, false),
            Ok(Some(("abc".into(), Source::Header)))
        );
        request.authorization = Some(b"Basic abc");
        assert_eq!(auth.token(&request, false), Err(AuthError::Malformed));
        request.authorization = None;
        assert_eq!(
            auth.token(&request, false),
            Ok(Some(("zzz".into(), Source::Cookie)))
        );
        request.cookie = None;
        request.query_token = Some("qqq");
        assert_eq!(auth.token(&request, false), Ok(None));
        assert_eq!(
            auth.token(&request, true),
            Ok(Some(("qqq".into(), Source::Query)))
        );
    }
}
