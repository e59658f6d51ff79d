//! `POST /api/tickets`: a single-use subscribe ticket for the caller's subscriber token, for a
//! plain `EventSource` (`GET /stream?ticket=…`, `GET /.well-known/mercure?ticket=…`). The
//! operation is `ops::tickets`; this is its route and document.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::read_body;
use super::Routes;
use crate::error::{ApiError, ErrorBody};
use crate::ops::meta::RequestMeta;
use crate::ops::{tickets, AppState};

pub(crate) fn router() -> Routes {
    Routes::default().route("/api/tickets", post(create))
}

/// What a ticket may be narrowed to (the body is optional).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketRequest {
    /// Topics (or the token's own selectors) the ticket's stream may read private events of:
    /// each must be granted by the token. Left out: all the token grants.
    #[schema(min_items = 1, max_items = 64)]
    topics: Option<Vec<String>>,
}

/// A ticket: redeem it once, within `expires_in` seconds.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ticket {
    /// Opaque; pass it as `?ticket=` to `GET /stream` or `GET /.well-known/mercure`.
    ticket: String,
    /// Seconds it stays valid (30, or less when the token expires sooner).
    #[schema(example = 30)]
    expires_in: u64,
}

/// Makes a single-use ticket standing for the caller's subscriber token.
#[utoipa::path(post, operation_id = "create_ticket", path = "/api/tickets", tag = "subscribe",
    request_body(content = Option<TicketRequest>, content_type = "application/json"),
    responses(
        (status = 201, description = "The ticket (never logged; `Cache-Control: no-store`)", body = Ticket),
        (status = 400, description = "Invalid JSON, too many topics, or a malformed `Authorization` header", body = ErrorBody),
        (status = 401, description = "No valid subscriber token (a ticket stands for one)", body = ErrorBody),
        (status = 403, description = "A topic the token does not grant", body = ErrorBody),
        (status = 413, description = "A body over `--body-limit`", body = ErrorBody),
        (status = 503, description = "Too many tickets outstanding, or the broker is unreachable", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []), ("legacyCookie" = [])))]
pub(super) async fn create(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, app.input_limits()).await?;
    let topics = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        // `null` is the absent body the document allows.
        serde_json::from_slice::<Option<TicketRequest>>(&body)
            .map_err(|err| ApiError::BadRequest(format!("invalid JSON: {err}")))?
            .and_then(|request| request.topics)
    };
    let issued = tickets::issue(&app, &meta, topics).await?;
    let ticket = Ticket {
        ticket: issued.ticket,
        expires_in: issued.expires_in,
    };
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    Ok((StatusCode::CREATED, no_store, Json(ticket)).into_response())
}
