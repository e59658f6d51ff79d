//! The CORS layer of the hyper path: answers preflights and adds the policy's headers
//! (`ops::cors`) to every response.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ops::cors::Cors;
use crate::ops::AppState;

/// Request headers a browser may send.
const ALLOWED_HEADERS: &str = "authorization, content-type, last-event-id, cache-control";
/// Methods a browser may use.
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// How long a browser may cache a preflight, seconds.
const MAX_AGE: &str = "600";

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
