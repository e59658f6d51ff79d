//! `GET /api/ping` (liveness, cheap) and `GET /api/ready` (readiness: the broker's state).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ping", get(ping))
        .route("/api/ready", get(ready))
}

async fn ping(State(app): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "message": "pong",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": app.uptime().as_secs_f64(),
        "auth": {
            "publish": app.auth().guards_publishing(),
            "subscribe": app.auth().reads_subscriber_tokens(),
            "subscriber_token_required": app.config().auth.require_subscriber_token,
        },
    }))
}

async fn ready(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let broker = app.hub().broker();
    let ready = broker.ready() && !app.shutting_down();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "unavailable" },
            "broker": broker.name(),
            "broker_ready": broker.ready(),
            "streams": app.open_streams(),
            "max_streams": app.stream_cap(),
            "subscribed_topics": app.hub().subscribed_topic_count(),
            "history_bytes": broker.held_bytes(),
            "store_bytes": broker.store_bytes(),
        })),
    )
}
