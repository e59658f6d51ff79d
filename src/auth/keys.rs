//! Trusted keys and signature checks, by the `jsonwebtoken` crate.
//!
//! Keys come from configuration only (a secret, a PEM public key, or a JWK Set file), each with
//! the one algorithm it may verify; the token's header can pick among them (`alg`, `kid`) but
//! never bring its own (`jwk`, `jku`, `x5u` are ignored), `alg: none` does not parse, and an
//! algorithm of another family than the key is refused by the crate.

use std::path::Path;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// Why keys could not be loaded (a start-up error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// One trusted key and the algorithm it verifies.
struct TrustedKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The keys of one role (publisher or subscriber).
pub struct Verifier {
    keys: Vec<TrustedKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<Algorithm> = self.keys.iter().map(|k| k.algorithm).collect();
        f.debug_struct("Verifier")
            .field("algorithms", &algorithms)
            .finish_non_exhaustive()
    }
}

/// A verified token: its header and its claims, not yet interpreted.
#[derive(Debug)]
pub struct Verified {
    /// The protected header.
    pub header: Header,
    /// The claims.
    pub claims: Value,
}

/// Why a token was refused (for the log; clients only learn `invalid_token`).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Rejected {
    /// What failed.
    pub reason: String,
    /// The token's `kid`, if it had a readable header.
    pub kid: Option<String>,
}

impl Verifier {
    /// Keys from a flag value: a secret for HS*, else a PEM public key (the PEM text itself,
    /// or the path of a file holding it).
    ///
    /// # Errors
    /// An unknown algorithm or a key that does not parse for it.
    pub fn from_flag(key: &str, algorithm: &str) -> Result<Self, KeyError> {
        let algorithm: Algorithm = algorithm
            .parse()
            .map_err(|_| KeyError(format!("unknown JWT algorithm {algorithm:?}")))?;
        let decoding = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                if key.is_empty() {
                    return Err(KeyError("an HMAC JWT key cannot be empty".into()));
                }
                DecodingKey::from_secret(key.as_bytes())
            }
            _ => {
                let pem = if key.trim_start().starts_with("-----BEGIN") {
                    key.as_bytes().to_vec()
                } else {
                    std::fs::read(key)
                        .map_err(|err| KeyError(format!("reading JWT key file {key:?}: {err}")))?
                };
                pem_key(&pem, algorithm)?
            }
        };
        Ok(Self {
            keys: vec![TrustedKey {
                kid: None,
                algorithm,
                key: decoding,
            }],
        })
    }

    /// Adds every key of a JWK Set file (each with its `alg`, required).
    ///
    /// # Errors
    /// An unreadable file, or a key without `alg` or that does not parse.
    pub fn add_jwks(&mut self, path: &Path) -> Result<(), KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| KeyError(format!("reading {}: {err}", path.display())))?;
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|err| KeyError(format!("{} is not a JWK Set: {err}", path.display())))?;
        for jwk in &set.keys {
            let algorithm = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                .ok_or_else(|| KeyError("every key of --jwks-file needs an \"alg\"".into()))?;
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|err| KeyError(format!("a key of --jwks-file: {err}")))?;
            self.keys.push(TrustedKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            });
        }
        Ok(())
    }

    /// An empty set, for a JWK Set alone.
    pub fn empty() -> Self {
        Self { keys: Vec::new() }
    }

    /// Checks the signature, `exp` (when present) and `nbf` (when present).
    ///
    /// # Errors
    /// [`Rejected`] with the reason, for the log.
    pub fn verify(&self, token: &str) -> Result<Verified, Rejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|err| Rejected {
            reason: format!("unreadable header: {err}"),
            kid: None,
        })?;
        let reject = |reason: String| Rejected {
            reason,
            kid: header.kid.clone(),
        };
        let candidates: Vec<&TrustedKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(reject(format!(
                "algorithm {:?} is not configured for this role",
                header.alg
            )));
        }
        let mut last = String::new();
        for trusted in candidates {
            let mut validation = Validation::new(trusted.algorithm);
            validation.required_spec_claims.clear();
            validation.validate_aud = false;
            validation.validate_nbf = true;
            validation.leeway = LEEWAY_SECS;
            match jsonwebtoken::decode::<Value>(token, &trusted.key, &validation) {
                Ok(data) => {
                    return Ok(Verified {
                        header: data.header,
                        claims: data.claims,
                    })
                }
                Err(err) => last = err.to_string(),
            }
        }
        Err(reject(last))
    }
}

/// The `iss` a token claims, read without checking anything: for the log line of a refused
/// token only (escaped there, and named unverified).
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let issuer: String = claims.get("iss")?.as_str()?.chars().take(200).collect();
    Some(issuer)
}

fn pem_key(pem: &[u8], algorithm: Algorithm) -> Result<DecodingKey, KeyError> {
    let parsed = match algorithm {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            return Err(KeyError("HMAC keys are secrets, not PEM".into()))
        }
    };
    parsed.map_err(|err| {
        KeyError(format!(
            "the JWT key is not a PEM public key for {algorithm:?}: {err}"
        ))
    })
}
