//! Reading a request body on the hyper path: bounded in size (`--body-limit`) and time
//! (`--body-timeout`), and drained before a refusal so a kept-alive connection stays usable.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;
use crate::ops::input::Limits;

/// The whole body, within the limits.
///
/// # Errors
/// 413 over `--body-limit` (declared or sent), 408 past `--body-timeout`, 400 when it cannot
/// be read.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: Limits,
) -> Result<bytes::Bytes, ApiError> {
    let limit = limits.body;
    let too_large = || ApiError::TooLarge(format!("body is larger than {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(limits.timeout, Limited::new(body, limit).collect());
    match read.await.map_err(|_| ApiError::BodyTimeout)? {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(too_large()),
        Err(err) => Err(ApiError::BadRequest(format!("could not read body: {err}"))),
    }
}

/// Answers a request refused before its body was read: the body is read (bounded by the body
/// limit and timeout) and dropped first, so the keep-alive connection stays usable. Without
/// this, hyper closes the connection after the answer and a client that sent the body in a
/// second packet sees its next request fail.
pub(crate) async fn refuse(error: ApiError, body: Body, limits: Limits) -> ApiError {
    let drain = Limited::new(body, limits.body).collect();
    let _ = tokio::time::timeout(limits.timeout, drain).await;
    error
}
