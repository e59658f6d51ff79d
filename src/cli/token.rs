//! `ssehub token`: mints a token the server configured with the same key flags accepts.
//!
//! The default format is legacy (the `mercure` claim), which needs nothing but the key; the
//! draft-08 format (RFC 9068 `at+jwt` with `authorization_details`) also sets `iss`, `aud`,
//! `sub`, `client_id`, `iat`, `jti` and `exp`. HMAC keys sign directly; asymmetric algorithms
//! need the private key (`--signing-key`), since the server holds only the public one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::auth::claims::DETAIL_TYPE;
use crate::config::{KeyFlags, DEFAULT_TRUSTED_ISSUER};

/// Which claim shape to mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `{"mercure": {"publish": [...], "subscribe": [...]}}` (draft-07, every Mercure client).
    Legacy,
    /// RFC 9068 access token with `authorization_details` (draft-08).
    #[value(name = "draft-08")]
    Draft08,
}

/// Flags of `ssehub token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Topics (selectors: a topic, `prefix/*`, `*`) the token may publish to.
    #[arg(long, num_args = 1..)]
    pub publish: Vec<String>,
    /// Topics whose private events the token may receive.
    #[arg(long, num_args = 1..)]
    pub subscribe: Vec<String>,
    /// A JSON object for the subscriber's `payload`.
    #[arg(long)]
    pub payload: Option<String>,
    /// Lifetime, e.g. `1h`, `10m`; `0s` mints a token without `exp` (legacy only).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Claim shape.
    #[arg(long, value_enum, default_value_t = Format::Legacy)]
    pub format: Format,
    /// `sub`: who the token speaks for.
    #[arg(long)]
    pub subject: Option<String>,
    /// `iss` of a draft-08 token (one of the server's `--trusted-issuers`).
    #[arg(long, default_value = DEFAULT_TRUSTED_ISSUER)]
    pub issuer: String,
    /// `aud` of a draft-08 token: the hub's resource identifier.
    #[arg(long, default_value = "http://localhost:8000/.well-known/mercure")]
    pub audience: String,
    /// PEM private key for RS*/PS*/ES*/EdDSA (HS* tokens use the secret of the key flags).
    #[arg(long)]
    pub signing_key: Option<std::path::PathBuf>,
    /// The server's key flags (`--jwt-key`, `--publisher-jwt-key`, ... and their environment).
    #[command(flatten)]
    pub keys: KeyFlags,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MintError(String);

/// Mints the token described by `args`.
///
/// # Errors
/// No key, an unknown algorithm, a key that does not parse, or a malformed payload.
pub fn mint(args: &TokenArgs) -> Result<String, MintError> {
    let fail = |text: String| MintError(text);
    // A publish-only token uses the publisher's key, a subscribe-only one the subscriber's.
    let keys = &args.keys;
    let (key, alg) = if args.subscribe.is_empty() && !args.publish.is_empty() {
        (&keys.publisher_jwt_key, &keys.publisher_jwt_alg)
    } else if args.publish.is_empty() && !args.subscribe.is_empty() {
        (&keys.subscriber_jwt_key, &keys.subscriber_jwt_alg)
    } else {
        (&None, &None)
    };
    let key = key.as_ref().or(keys.jwt_key.as_ref());
    let alg = alg
        .as_deref()
        .or(keys.jwt_alg.as_deref())
        .unwrap_or("HS256");
    let algorithm: Algorithm = alg
        .parse()
        .map_err(|_| fail(format!("unknown JWT algorithm {alg:?}")))?;
    let encoding = match (algorithm, &args.signing_key) {
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, _) => {
            let key =
                key.ok_or_else(|| fail("no key: set --jwt-key (or SSEHUB_JWT_KEY)".into()))?;
            EncodingKey::from_secret(key.as_bytes())
        }
        (_, None) => return Err(fail(format!("{alg} needs --signing-key PRIVATE.pem"))),
        (_, Some(path)) => {
            let pem = std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            let parsed = match algorithm {
                Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                _ => EncodingKey::from_rsa_pem(&pem),
            };
            parsed.map_err(|e| fail(format!("--signing-key: {e}")))?
        }
    };
    let payload: Option<Value> = match &args.payload {
        Some(text) => Some(
            serde_json::from_str(text).map_err(|e| fail(format!("--payload is not JSON: {e}")))?,
        ),
        None => None,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let exp = (!args.ttl.is_zero()).then(|| now + args.ttl.as_secs());
    let mut header = Header::new(algorithm);
    let claims = match args.format {
        Format::Legacy => {
            let mut claims =
                json!({"mercure": {"publish": args.publish, "subscribe": args.subscribe}});
            if let Some(payload) = payload {
                claims["mercure"]["payload"] = payload;
            }
            if let Some(exp) = exp {
                claims["exp"] = json!(exp);
            }
            if let Some(subject) = &args.subject {
                claims["sub"] = json!(subject);
            }
            claims
        }
        Format::Draft08 => {
            header.typ = Some("at+jwt".into());
            let exp = exp.ok_or_else(|| fail("draft-08 tokens need a --ttl above 0".into()))?;
            let detail = |action: &str, topics: &[String]| {
                let matchers: Vec<Value> = topics.iter().map(|t| matcher(t)).collect();
                json!({"type": DETAIL_TYPE, "actions": [action], "topics": matchers})
            };
            let mut details = Vec::new();
            if !args.publish.is_empty() {
                details.push(detail("publish", &args.publish));
            }
            if !args.subscribe.is_empty() {
                let mut subscribe = detail("subscribe", &args.subscribe);
                if let Some(payload) = payload {
                    subscribe["payload"] = payload;
                }
                details.push(subscribe);
            }
            let subject = args.subject.clone().unwrap_or_else(|| "ssehub-cli".into());
            json!({
                "iss": args.issuer, "aud": args.audience, "sub": subject,
                "client_id": args.issuer, "iat": now, "exp": exp,
                "jti": format!("urn:ssehub:{now}:{}", std::process::id()),
                "authorization_details": details,
            })
        }
    };
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|e| fail(e.to_string()))
}

/// A draft-08 topic matcher: URL patterns (`:name`, `*` in a URL) as `urlpattern`, `*` and
/// anything else as given.
fn matcher(topic: &str) -> Value {
    let pattern = topic.contains("://") && (topic.contains("/:") || topic.ends_with("/*"));
    if pattern {
        json!({"match": topic, "match_type": "urlpattern"})
    } else {
        json!({"match": topic})
    }
}
