//! Helpers of the authorization tests: tokens minted with `jsonwebtoken` (and by hand, for the
//! ones no library makes), keys generated with `openssl`, and replies checked for their status,
//! challenge, JSON error and for never echoing the token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::TestApp;

/// The publisher secret of most tests.
pub const SECRET: &str = "publisher-secret-that-is-long-enough-for-hs256";
/// The subscriber secret of most tests.
pub const SUB_SECRET: &str = "subscriber-secret-that-is-long-enough-for-hs256";
/// The draft-08 authorization detail type.
pub const DETAIL: &str = "https://mercure.rocks/authorization-detail";

/// The error texts clients see (`src/auth/mod.rs`).
pub const MISSING: &str = "a token is required";
pub const INVALID: &str = "the token is not valid";
pub const MALFORMED: &str = "the Authorization header must be 'Bearer <token>'";
pub const FORBIDDEN: &str = "the token does not grant this";
pub const ORIGIN: &str = "publishing with a cookie is not allowed from this origin";

/// The challenges (`src/error.rs`).
pub const BEARER: &str = "Bearer";
pub const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
pub const INVALID_REQUEST: &str = r#"Bearer error="invalid_request""#;
pub const INSUFFICIENT_SCOPE: &str = r#"Bearer error="insufficient_scope""#;

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Unix seconds now, with the fraction.
pub fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Base64url without padding (JWT's encoding), written out so tokens can be forged by hand.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// Legacy claims granting `publish` and `subscribe` on these selectors, expiring in an hour.
pub fn legacy(publish: &[&str], subscribe: &[&str]) -> Value {
    json!({"exp": now() + 3600, "mercure": {"publish": publish, "subscribe": subscribe}})
}

/// A token of `claims` under `header`, signed with `key`.
pub fn sign(header: &Header, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

/// An HS256 token of `claims` signed with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    sign(&Header::new(Algorithm::HS256), &key, claims)
}

/// An HS256 `at+jwt` (draft-08) token of `claims` signed with `secret`.
pub fn at_jwt(secret: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    sign(
        &header,
        &EncodingKey::from_secret(secret.as_bytes()),
        claims,
    )
}

/// A token with header `{"alg":"none","typ":"JWT"}`, these claims and an empty signature.
pub fn unsigned(claims: &Value) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", b64url(claims.to_string().as_bytes()))
}

/// A draft-08 Mercure authorization detail.
pub fn detail(actions: Value, topics: Value) -> Value {
    json!({"type": DETAIL, "actions": actions, "topics": topics})
}

/// Draft-08 claims: the default trusted issuer, `aud`, an hour of life, these details.
pub fn draft08(aud: &str, details: Value) -> Value {
    json!({
        "iss": "https://localhost", "aud": aud, "sub": "draft-08-client",
        "iat": now(), "exp": now() + 3600, "authorization_details": details,
    })
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "ssehub-{what}-{}-{}-{nanos}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A key pair made by `openssl`: PKCS#8 private key, SPKI public key, both as PEM files.
pub struct KeyPair {
    pub private_pem: Vec<u8>,
    pub public_pem: String,
    pub public_path: PathBuf,
    pub private_path: PathBuf,
    _dir: TempDir,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

impl KeyPair {
    /// `kind` is `rsa`, `ec` (P-256) or `ed25519`.
    pub fn generate(kind: &str) -> Self {
        let dir = TempDir::new(&format!("key-{kind}"));
        let private_path = dir.0.join("private.pem");
        let public_path = dir.0.join("public.pem");
        let mut args = vec!["genpkey", "-out", path_str(&private_path)];
        args.extend_from_slice(match kind {
            "rsa" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            "ec" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "ed25519" => &["-algorithm", "ed25519"][..],
            other => panic!("unknown key kind {other}"),
        });
        openssl(&args);
        let private = path_str(&private_path);
        openssl(&[
            "pkey",
            "-in",
            private,
            "-pubout",
            "-out",
            path_str(&public_path),
        ]);
        Self {
            private_pem: std::fs::read(&private_path).unwrap(),
            public_pem: std::fs::read_to_string(&public_path).unwrap(),
            public_path,
            private_path,
            _dir: dir,
        }
    }

    /// The private key for `jsonwebtoken`.
    pub fn encoding_key(&self, algorithm: Algorithm) -> EncodingKey {
        match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&self.private_pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&self.private_pem),
            _ => EncodingKey::from_rsa_pem(&self.private_pem),
        }
        .unwrap()
    }

    /// A token of `claims` signed with the private key (optionally with a `kid`).
    pub fn sign(&self, algorithm: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(algorithm);
        header.kid = kid.map(str::to_owned);
        sign(&header, &self.encoding_key(algorithm), claims)
    }

    /// The public key as a JWK (RSA or Ed25519), with `alg` and `kid`.
    pub fn jwk(&self, alg: &str, kid: &str) -> Value {
        let public = path_str(&self.public_path);
        if alg == "EdDSA" {
            // An Ed25519 SPKI in DER is a 12-byte prefix and the 32-byte key.
            let der = openssl(&["pkey", "-pubin", "-in", public, "-outform", "DER"]);
            let x = b64url(&der[der.len() - 32..]);
            return json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": alg, "kid": kid});
        }
        let text = openssl(&["rsa", "-pubin", "-in", public, "-noout", "-modulus"]);
        let hex = String::from_utf8(text).unwrap();
        let hex = hex.trim().trim_start_matches("Modulus=");
        let modulus: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        json!({"kty": "RSA", "n": b64url(&modulus), "e": "AQAB", "alg": alg, "kid": kid, "use": "sig"})
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(request: reqwest::RequestBuilder) -> Self {
        let response = tokio::time::timeout(super::PATIENCE, request.send())
            .await
            .expect("no answer in time")
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = tokio::time::timeout(super::PATIENCE, response.text())
            .await
            .expect("no body in time")
            .unwrap();
        Self {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts no header and no byte of the body holds `token` or its signature.
    pub fn assert_no_token(&self, token: &str) {
        let mut secrets = vec![token];
        secrets.extend(token.rsplit('.').next().filter(|s| s.len() >= 16));
        secrets.retain(|s| s.len() >= 16);
        for secret in secrets {
            assert!(
                !self.text.contains(secret),
                "body echoes the token: {self:?}"
            );
            for (name, value) in &self.headers {
                let value = String::from_utf8_lossy(value.as_bytes());
                assert!(!value.contains(secret), "header {name} echoes the token");
            }
        }
    }

    /// Asserts a refusal: the status, the exact `WWW-Authenticate` (or none), the JSON error
    /// text, and that nothing echoes `token`.
    #[track_caller]
    pub fn assert_refused(&self, status: u16, challenge: Option<&str>, error: &str, token: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("www-authenticate"), challenge, "{self:?}");
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{self:?}"
        );
        assert_eq!(self.json(), json!({ "error": error }), "{self:?}");
        self.assert_no_token(token);
    }
}

/// `http://ADDR` of a spawned app.
pub fn base(app: &TestApp) -> String {
    format!("http://{}", app.addr)
}

/// `POST {base}/api/messages` with `body`, with `Bearer token` when given.
pub async fn post_message(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    body: &Value,
) -> Reply {
    let mut request = client.post(format!("{base}/api/messages")).json(body);
    if let Some(token) = token {
        request = request.header("authorization", bearer(token));
    }
    Reply::read(request).await
}

/// `POST /api/messages` of message `m` on `topic` to `app`, as `token` (if any).
pub async fn publish_as(app: &TestApp, token: Option<&str>, topic: &str) -> Reply {
    let body = json!({"message": "m", "topic": topic});
    post_message(&app.client, &base(app), token, &body).await
}

/// `GET path` with these headers, read whole (for refused requests).
pub async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = app.client.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Reply::read(request).await
}

/// Sends `GET path` on a raw HTTP/1.1 socket (so a stream takes the direct path) with these
/// headers; returns the response head, lowercased, and the socket.
pub async fn raw_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let seen = super::read_until_contains(&mut socket, "\r\n\r\n").await;
    let head = seen.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    (head, socket)
}

/// `GET path` that must be refused: fails at once if it is admitted (a 200 stream would never
/// end), else reads the whole refusal.
pub async fn refused_stream(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = app.client.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(super::PATIENCE, request.send())
        .await
        .expect("no answer in time")
        .unwrap();
    let status = response.status().as_u16();
    assert_ne!(status, 200, "the stream {path} was admitted");
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply {
        status,
        headers,
        text,
    }
}
