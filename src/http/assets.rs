//! The demo page and its hub console view, embedded at compile time (no build step, no CDN).

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::Routes;

const INDEX: &str = include_str!("../../web/index.html");
// Each script is assembled from the files of its concepts, in order (no build step): shared.js
// is what both views use.
const SCRIPT: &str = concat!(
    include_str!("../../web/shared.js"),
    include_str!("../../web/feed.js"),
    include_str!("../../web/stream.js"),
    include_str!("../../web/publish.js"),
    include_str!("../../web/hub.js"),
    include_str!("../../web/app.js")
);
const STYLE: &str = concat!(
    include_str!("../../web/style.css"),
    "\n",
    include_str!("../../web/feed.css")
);
const CONSOLE_SCRIPT: &str = concat!(
    include_str!("../../web/shared.js"),
    include_str!("../../web/inspector.js"),
    include_str!("../../web/console.js")
);
const CONSOLE_STYLE: &str = include_str!("../../web/console.css");

pub(crate) fn router() -> Routes {
    Routes::default()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/style.css", get(style))
        .route("/console.js", get(console_script))
        .route("/console.css", get(console_style))
}

/// The demo page.
#[utoipa::path(get, operation_id = "demo_page", path = "/", tag = "page",
    responses((status = 200, description = "The demo page", body = String, content_type = "text/html")))]
pub(super) async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// The demo page's script.
#[utoipa::path(get, operation_id = "demo_script", path = "/app.js", tag = "page",
    responses((status = 200, description = "The page's script", body = String, content_type = "text/javascript")))]
pub(super) async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The demo page's style sheet.
#[utoipa::path(get, operation_id = "demo_style", path = "/style.css", tag = "page",
    responses((status = 200, description = "The page's style sheet", body = String, content_type = "text/css")))]
pub(super) async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// The hub console's script.
#[utoipa::path(get, operation_id = "console_script", path = "/console.js", tag = "page",
    responses((status = 200, description = "The console's script", body = String, content_type = "text/javascript")))]
pub(super) async fn console_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", CONSOLE_SCRIPT)
}

/// The hub console's style sheet.
#[utoipa::path(get, operation_id = "console_style", path = "/console.css", tag = "page",
    responses((status = 200, description = "The console's style sheet", body = String, content_type = "text/css")))]
pub(super) async fn console_style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", CONSOLE_STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
