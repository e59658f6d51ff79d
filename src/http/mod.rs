//! The HTTP API on hyper and axum: one module per resource, each exposing `router()`, merged
//! in [`router`], and the layers every response passes (JSON errors, CORS, the access log,
//! metrics, the ambiguous-header check).
//!
//! Handlers are thin: extractors (the request's [`RequestMeta`](crate::ops::meta::RequestMeta)
//! among them), one call into `ops` (or the hub, for the read-only resources), the response.
//! Errors are [`ApiError`]s.

mod assets;
pub(crate) mod body;
mod cors;
mod docs;
mod health;
mod mercure;
mod messages;
mod meta;
pub(crate) mod metrics;
mod stream;
mod subscriptions;
mod tickets;
mod topics;
mod topics_stream;

pub use crate::ops::AppState;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;

use crate::error::ApiError;

/// The whole API, as a table of contents. `/metrics` is here unless `--metrics-bind` serves
/// it on a listener of its own ([`metrics_router`]).
pub fn router(state: AppState) -> Router {
    let metrics = match state.config().metrics_bind {
        None => metrics::router(),
        Some(_) => Router::new(),
    };
    routes()
        .router
        // Not in the API documents: the Prometheus text format is its own contract.
        .merge(metrics)
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(meta::refuse_ambiguous))
        .layer(middleware::from_fn_with_state(state.clone(), cors::layer))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// What the `--metrics-bind` listener serves: `GET /metrics`, and 404 for anything else.
pub fn metrics_router(state: AppState) -> Router {
    metrics::router()
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Every route of the API, one router per resource.
fn routes() -> Routes {
    Routes::default()
        .merge(assets::router())
        .merge(docs::router())
        .merge(health::router())
        .merge(mercure::router())
        .merge(messages::router())
        .merge(stream::router())
        .merge(subscriptions::router())
        .merge(tickets::router())
        .merge(topics::router())
        .merge(topics_stream::router())
}

/// A router that remembers the paths it serves: the API document is tested against this list
/// (`docs::openapi` tests), so a route added without documentation fails a test.
#[derive(Default)]
pub(crate) struct Routes {
    router: Router<AppState>,
    paths: Vec<String>,
}

impl Routes {
    /// Serves `method_router` on `path` (axum's syntax: `{name}`, `{*rest}`).
    pub(crate) fn route(mut self, path: &str, method_router: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, method_router);
        self.paths.push(path.to_owned());
        self
    }

    /// Adds every route of `other`.
    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.extend(other.paths);
        self
    }
}

/// Gives every error response our JSON shape, `{"error": "..."}`: the router's own bodiless
/// 405 (keeping its `Allow` header) and the plain-text rejections of axum's extractors.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
        text => text.to_owned(),
    };
    let mut json = axum::Json(crate::error::ErrorBody::new(message)).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(json.headers_mut().drain());
    Response::from_parts(parts, json.into_body())
}

async fn access_log(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if !app.config().access_log && !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::ops::log::log_request(
        &app,
        method.as_str(),
        &path,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
