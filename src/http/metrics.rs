//! `GET /metrics` and the middleware that measures every request, labelled by route template.
//!
//! The series and their recorder are in [`crate::metrics`]; this module only reads what HTTP
//! knows (the matched route, the method, the status, a refused stream's reason) and, at scrape
//! time, the broker's gauges. A request that matches no route is labelled `unmatched`, never by
//! its path, and an unusual method `other`: no client can add series.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::auth::HUB_PATH;
use crate::error::Refusal;
use crate::metrics::Scrape;
use crate::ops::stream::STREAM_PATH;

/// Where metrics are served.
pub(crate) const METRICS_PATH: &str = "/metrics";
/// The route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";
/// The routes whose `POST` publishes (their templates are the `endpoint` label).
const PUBLISH_ROUTES: [&str; 3] = ["/api/messages", "/publish", HUB_PATH];
/// The routes whose `GET` opens a stream.
const STREAM_ROUTES: [&str; 2] = [STREAM_PATH, HUB_PATH];

/// `GET /metrics` alone.
pub fn router() -> Router<AppState> {
    Router::new().route(METRICS_PATH, get(scrape))
}

/// The Prometheus text exposition of this server's series.
async fn scrape(State(app): State<AppState>) -> Response {
    let broker = app.hub().broker();
    let scrape = Scrape {
        broker: broker.name(),
        broker_ready: broker.ready(),
        history_events: broker.held_events(),
        history_bytes: broker.held_bytes(),
        store_bytes: broker.store_bytes(),
    };
    let text = app.metrics().render(&scrape);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Measures one request: its duration by route template, method and status; a publish by
/// endpoint and status; a stream refused before it opened, by reason.
pub(super) async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    let metrics = app.metrics();
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    metrics.request(route, method, status, took);
    match method {
        "POST" => {
            if let Some(endpoint) = PUBLISH_ROUTES.iter().find(|r| **r == route) {
                metrics.publish(endpoint, status);
            }
        }
        "GET" if STREAM_ROUTES.contains(&route) => {
            if let Some(Refusal(reason)) = response.extensions().get::<Refusal>() {
                metrics.refused(reason);
            }
        }
        _ => {}
    }
    response
}

/// A method as a label: the standard ones by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
