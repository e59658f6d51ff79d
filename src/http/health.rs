//! `GET /api/ping` (liveness, cheap) and `GET /api/ready` (readiness: the broker's state).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::Routes;

pub(crate) fn router() -> Routes {
    Routes::default()
        .route("/api/ping", get(ping))
        .route("/api/ready", get(ready))
}

/// The answer of `GET /api/ping`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ping {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
    /// Always `pong`.
    #[schema(example = "pong")]
    message: &'static str,
    /// The server's version.
    version: &'static str,
    /// Seconds since the server started.
    uptime: f64,
    /// Which tokens the server reads.
    auth: PingAuth,
}

/// What a client needs to present (the page reads this to say so).
#[derive(Serialize, ToSchema)]
pub(crate) struct PingAuth {
    /// Publishing needs a token.
    publish: bool,
    /// Subscriber tokens are read (private events need one).
    subscribe: bool,
    /// Streams without a token are refused.
    subscriber_token_required: bool,
}

/// Liveness: the process answers.
#[utoipa::path(get, operation_id = "ping", path = "/api/ping", tag = "health",
    responses((status = 200, description = "Alive", body = Ping)))]
pub(super) async fn ping(State(app): State<AppState>) -> Json<Ping> {
    Json(Ping {
        status: "ok",
        message: "pong",
        version: env!("CARGO_PKG_VERSION"),
        uptime: app.uptime().as_secs_f64(),
        auth: PingAuth {
            publish: app.auth().guards_publishing(),
            subscribe: app.auth().reads_subscriber_tokens(),
            subscriber_token_required: app.config().auth.require_subscriber_token,
        },
    })
}

/// The answer of `GET /api/ready`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready` or `unavailable`.
    #[schema(example = "ready")]
    status: &'static str,
    /// `memory` or `redis`.
    #[schema(example = "memory")]
    broker: &'static str,
    /// The broker can take publishes.
    broker_ready: bool,
    /// Open streams on this node.
    streams: usize,
    /// The stream cap.
    max_streams: usize,
    /// Topics (and prefixes) streams subscribe to.
    subscribed_topics: usize,
    /// Bytes of history held (`null` on Redis).
    history_bytes: Option<usize>,
    /// Bytes of the history file (`null` without `--data-dir`).
    store_bytes: Option<u64>,
}

/// Readiness: `200` when the broker can take publishes, else `503`.
#[utoipa::path(get, operation_id = "ready", path = "/api/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "The broker is unreachable or the server is shutting down", body = Ready),
    ))]
pub(super) async fn ready(State(app): State<AppState>) -> (StatusCode, Json<Ready>) {
    let broker = app.hub().broker();
    let ready = broker.ready() && !app.shutting_down();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Ready {
            status: if ready { "ready" } else { "unavailable" },
            broker: broker.name(),
            broker_ready: broker.ready(),
            streams: app.open_streams(),
            max_streams: app.stream_cap(),
            subscribed_topics: app.hub().subscribed_topic_count(),
            history_bytes: broker.held_bytes(),
            store_bytes: broker.store_bytes(),
        }),
    )
}
