//! CORS for browsers on other origins: preflights answered, and the allow headers on every
//! response to an allowed origin, including streams served by the direct path (which is why
//! this is a small policy object rather than a tower layer: both paths call it).
//!
//! `--cors-origins` is a list of exact origins (answered with credentials allowed, so cookies
//! work) or `*` (any origin, never with credentials). Unset: no CORS headers at all.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Request headers a browser may send.
const ALLOWED_HEADERS: &str = "authorization, content-type, last-event-id, cache-control";
/// Methods a browser may use.
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// How long a browser may cache a preflight, seconds.
const MAX_AGE: &str = "600";

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
    any: bool,
}

impl Cors {
    /// The policy of `--cors-origins`.
    pub fn new(origins: &[String]) -> Self {
        Self {
            any: origins.iter().any(|o| o == "*"),
            origins: origins.iter().filter(|o| *o != "*").cloned().collect(),
        }
    }

    /// The headers for a response to a request from `origin`: the allow headers when it is
    /// allowed, and `Vary: Origin` on every response whenever an exact-origin list makes the
    /// answer depend on it (allowed or not, with an `Origin` or without: a shared cache must
    /// not hand one origin's answer to another).
    pub fn headers(&self, origin: Option<&[u8]>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        let origin = origin.and_then(|o| std::str::from_utf8(o).ok());
        match origin {
            Some(origin) if self.origins.iter().any(|o| o == origin) => {
                headers.push(("access-control-allow-origin", origin.to_owned()));
                headers.push(("access-control-allow-credentials", "true".to_owned()));
            }
            Some(_) if self.any => headers.push(("access-control-allow-origin", "*".to_owned())),
            _ => {}
        }
        if !self.origins.is_empty() {
            headers.push(("vary", "origin".to_owned()));
        }
        headers
    }

    /// Whether `headers` (from [`Cors::headers`]) allow the origin.
    fn allows(headers: &[(&'static str, String)]) -> bool {
        headers
            .iter()
            .any(|(name, _)| *name == "access-control-allow-origin")
    }
}

/// The middleware: answers preflights, decorates responses.
pub(crate) async fn layer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.as_bytes().to_vec());
    let allow = app.cors().headers(origin.as_deref());
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight && Cors::allows(&allow) {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        response
    } else {
        next.run(request).await
    };
    for (name, value) in allow {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
