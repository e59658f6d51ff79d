//! What a verified token grants, from either claim shape, chosen per token:
//!
//! - **legacy** (draft-07, every deployed Mercure client): `{"mercure": {"publish": [...],
//!   "subscribe": [...], "payload": ...}}`; `exp` enforced when present (by the verifier).
//! - **draft-08** (RFC 9068 access tokens, when the token has `authorization_details`): header
//!   `typ` `at+jwt`, `iss` trusted, `aud` naming this hub, `exp` required; grants are the
//!   Mercure authorization details (section "Authorization Details"). One malformed detail
//!   invalidates the whole token; unknown actions grant nothing.

use serde_json::Value;

use super::keys::Verified;
use crate::topic::Selector;

/// The authorization detail type of the Mercure protocol.
pub const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";
/// Most selectors one token may carry.
const MAX_SELECTORS: usize = 256;

/// What a token allows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Topics it may publish to.
    pub publish: Vec<Selector>,
    /// Topics whose private events it may receive.
    pub subscribe: Vec<Selector>,
    /// The subscriber's payload (legacy `mercure.payload`, or the first `subscribe` detail's).
    pub payload: Option<Value>,
    /// `exp`, Unix seconds.
    pub expires: Option<u64>,
    /// `sub`, who the token speaks for.
    pub subject: Option<String>,
    /// `iss`, for the log.
    pub issuer: Option<String>,
    /// Whether the token is a draft-08 access token (else legacy claims): replies to it use
    /// draft-08 shapes.
    pub draft_08: bool,
}

impl Grants {
    /// Whether it grants `publish` on `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|s| s.matches(topic))
    }

    /// Whether it grants `subscribe` on `topic` (private events of it).
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.subscribe.iter().any(|s| s.matches(topic))
    }
}

/// What a draft-08 token must also satisfy.
#[derive(Debug, Clone)]
pub struct Audience<'a> {
    /// Accepted `iss` values.
    pub trusted_issuers: &'a [String],
    /// This hub's resource identifier, which `aud` must name.
    pub resource: &'a str,
}

/// Interprets a verified token.
///
/// # Errors
/// The reason the token is invalid, for the log.
pub fn grants(token: &Verified, audience: &Audience<'_>) -> Result<Grants, String> {
    let claims = token.claims.as_object().ok_or("claims are not an object")?;
    let mut grants = Grants {
        expires: claims.get("exp").and_then(Value::as_u64),
        subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        issuer: claims.get("iss").and_then(Value::as_str).map(str::to_owned),
        ..Grants::default()
    };
    // The verifier checks `exp` and `nbf` only when they are numbers: any other type is
    // refused here, so that a string `nbf` cannot skip the check.
    for name in ["exp", "nbf", "iat"] {
        match claims.get(name) {
            None => {}
            Some(value) if value.as_u64().is_some() => {}
            Some(value) if value.as_f64().is_some_and(|v| v.is_finite() && v >= 0.0) => {}
            Some(_) => return Err(format!("{name} is not a number of seconds")),
        }
    }
    if grants.expires.is_none() {
        grants.expires = claims
            .get("exp")
            .and_then(Value::as_f64)
            .map(|secs| secs as u64);
    }
    match claims.get("authorization_details") {
        Some(details) => {
            grants.draft_08 = true;
            check_access_token(token, audience, &grants)?;
            read_details(details, &mut grants)?;
        }
        None => read_legacy(claims.get("mercure"), &mut grants)?,
    }
    if grants.publish.len() + grants.subscribe.len() > MAX_SELECTORS {
        return Err(format!("more than {MAX_SELECTORS} selectors"));
    }
    Ok(grants)
}

/// RFC 9068 checks for a draft-08 token (section "Token Validation").
fn check_access_token(
    token: &Verified,
    audience: &Audience<'_>,
    grants: &Grants,
) -> Result<(), String> {
    let typ = token
        .header
        .typ
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    if typ.strip_prefix("application/").unwrap_or(&typ) != "at+jwt" {
        return Err(format!("typ {typ:?} is not at+jwt"));
    }
    let issuer = grants.issuer.as_deref().ok_or("no iss")?;
    if !audience.trusted_issuers.iter().any(|t| t == issuer) {
        return Err(format!("issuer {issuer:?} is not trusted"));
    }
    if grants.expires.is_none() {
        return Err("no exp".into());
    }
    let aud_ok = match token.claims.get("aud") {
        Some(Value::String(aud)) => aud == audience.resource,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience.resource)),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("aud does not name {:?}", audience.resource));
    }
    Ok(())
}

fn read_details(details: &Value, grants: &mut Grants) -> Result<(), String> {
    let details = details
        .as_array()
        .ok_or("authorization_details is not an array")?;
    for detail in details {
        let detail = detail
            .as_object()
            .ok_or("an authorization detail is not an object")?;
        if detail.get("type").and_then(Value::as_str) != Some(DETAIL_TYPE) {
            if detail.get("type").and_then(Value::as_str).is_none() {
                return Err("an authorization detail has no type".into());
            }
            continue;
        }
        let actions = non_empty_array(detail.get("actions"), "actions")?;
        let mut actions_read = Vec::with_capacity(actions.len());
        for action in actions {
            actions_read.push(action.as_str().ok_or("an action is not a string")?);
        }
        let mut selectors = Vec::new();
        for topic in non_empty_array(detail.get("topics"), "topics")? {
            let topic = topic
                .as_object()
                .ok_or("a topic matcher is not an object")?;
            let text = topic
                .get("match")
                .and_then(Value::as_str)
                .ok_or("a topic matcher has no string match")?;
            let kind = match topic.get("match_type") {
                None => None,
                Some(Value::String(kind)) => Some(kind.as_str()),
                Some(_) => return Err("match_type is not a string".into()),
            };
            selectors.push(Selector::matcher(text, kind).map_err(|e| e.to_string())?);
        }
        let payload = match detail.get("payload") {
            None => None,
            Some(Value::Object(map)) => Some(Value::Object(map.clone())),
            Some(_) => return Err("payload is not an object".into()),
        };
        if actions_read.contains(&"publish") {
            grants.publish.extend(selectors.iter().cloned());
        }
        if actions_read.contains(&"subscribe") {
            if grants.payload.is_none() {
                grants.payload = payload;
            }
            grants.subscribe.extend(selectors);
        }
    }
    Ok(())
}

fn non_empty_array<'a>(value: Option<&'a Value>, name: &str) -> Result<&'a Vec<Value>, String> {
    match value {
        Some(Value::Array(list)) if !list.is_empty() => Ok(list),
        _ => Err(format!("{name} is not a non-empty array")),
    }
}

fn read_legacy(mercure: Option<&Value>, grants: &mut Grants) -> Result<(), String> {
    let Some(mercure) = mercure else {
        return Ok(());
    };
    let mercure = mercure
        .as_object()
        .ok_or("the mercure claim is not an object")?;
    let list = |key: &str| -> Result<Vec<Selector>, String> {
        match mercure.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    let text = item
                        .as_str()
                        .ok_or_else(|| format!("mercure.{key} holds a non-string"))?;
                    Selector::legacy(text).map_err(|e| e.to_string())
                })
                .collect(),
            Some(_) => Err(format!("mercure.{key} is not an array")),
        }
    };
    grants.publish = list("publish")?;
    grants.subscribe = list("subscribe")?;
    grants.payload = mercure.get("payload").cloned();
    Ok(())
}
