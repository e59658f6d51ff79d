//! The hyper path's side of the request's meta: an extractor, so a handler takes a
//! [`RequestMeta`] read by the same function as the direct path's ([`RequestMeta::read`]), and
//! the middleware that refuses an ambiguous request before any handler reads it.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Version;

use crate::metrics::HttpVersion;
use crate::ops::meta::{ambiguity, ClientAddr, RequestMeta};
use crate::ops::AppState;

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()));
        let mut meta = RequestMeta::read(headers, peer);
        // HTTP/2 names the host in the `:authority` pseudo-header, which hyper puts in the URI.
        if meta.host.is_none() {
            meta.host = parts.uri.authority().map(|a| a.as_str().to_owned());
        }
        meta.secure = parts.uri.scheme_str() == Some("https") || app.config().tls_cert.is_some();
        meta.version = match parts.version {
            Version::HTTP_2 | Version::HTTP_3 => HttpVersion::Http2,
            Version::HTTP_10 | Version::HTTP_09 => HttpVersion::Http10,
            _ => HttpVersion::Http11,
        };
        Ok(meta)
    }
}

/// The hyper path's check: refuses with 400 what [`ambiguity`] finds.
pub(crate) async fn refuse_ambiguous(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    match ambiguity(headers) {
        Some(problem) => crate::error::ApiError::BadRequest(problem).into_response(),
        None => next.run(request).await,
    }
}
