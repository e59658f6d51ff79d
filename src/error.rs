//! The one error type of the HTTP API and its JSON response.
//!
//! Every failure a client can cause or see is a variant here; each variant's doc names its
//! status. The body is always `{"error": "..."}`. Infrastructure failures are logged in full and
//! shown to clients only as a generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::broker::BrokerError;

/// The body of every error response: `{"error": "..."}` (the API document's `ErrorBody`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    #[schema(example = "message is required")]
    pub error: String,
}

impl ErrorBody {
    /// An error body saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
        }
    }
}

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or a parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 400: the message is missing, empty or not a string.
    #[error("message is required")]
    MessageRequired,
    /// 404: no such route or resource.
    #[error("not found")]
    NotFound,
    /// 408: the request body did not arrive within `--body-timeout`.
    #[error("request body not received in time")]
    BodyTimeout,
    /// 431: the request head is larger than allowed.
    #[error("request head too large")]
    HeadTooLarge,
    /// 413: the body or message is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a content type this endpoint does not read.
    #[error("unsupported content type: send {0}")]
    UnsupportedMediaType(&'static str),
    /// 401, 400 or 403 with a `WWW-Authenticate: Bearer` challenge (RFC 6750): see
    /// [`AuthError`].
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// 429 with `Retry-After`: this client address or token subject holds as many streams as
    /// it may.
    #[error("too many streams for this client, retry later")]
    TooManyClientStreams,
    /// 429 with `Retry-After`: this client address holds as many connections as it may.
    #[error("too many connections from this address, retry later")]
    TooManyConnections,
    /// 503 with `Retry-After`: too many open streams.
    #[error("too many open streams, retry later")]
    TooManyStreams,
    /// 503: the hub holds as many topics as it may.
    #[error("too many topics, retry later")]
    TooManyTopics,
    /// 503 with `Retry-After`: this node holds as many unredeemed subscribe tickets as it may.
    #[error("too many subscribe tickets outstanding, retry later")]
    TooManyTickets,
    /// 503 with `Retry-After`: the hub's pattern budget (bytes, or patterns it cannot index)
    /// is used up.
    #[error("{0}")]
    PatternsFull(String),
    /// 503: the broker cannot be reached; nothing was accepted.
    #[error("broker unavailable, retry later")]
    Unavailable(String),
    /// 503: the server is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

impl ApiError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::MessageRequired => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyConnections | Self::TooManyClientStreams => StatusCode::TOO_MANY_REQUESTS,
            Self::Auth(AuthError::Missing | AuthError::Invalid) => StatusCode::UNAUTHORIZED,
            Self::Auth(AuthError::Malformed) => StatusCode::BAD_REQUEST,
            Self::Auth(AuthError::Forbidden | AuthError::Origin) => StatusCode::FORBIDDEN,
            Self::TooManyStreams
            | Self::PatternsFull(_)
            | Self::TooManyTopics
            | Self::TooManyTickets
            | Self::Unavailable(_)
            | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(err: BrokerError) -> Self {
        match err {
            BrokerError::TooManyTopics => Self::TooManyTopics,
            BrokerError::TooManyPatterns => Self::PatternsFull(
                "the hub holds as many subscription patterns that match every topic alike as it may (--max-broad-patterns): use patterns with a fixed beginning or end, or retry later".into(),
            ),
            BrokerError::Unavailable(detail) | BrokerError::Setup(detail) => {
                Self::Unavailable(detail)
            }
        }
    }
}

impl ApiError {
    /// The headers this error's response carries beyond its JSON body: the auth challenge, a
    /// `Retry-After` on 503 and 429, `Connection: close` after a late body. Both the hyper
    /// response and the raw HTTP/1 bytes are made from this list.
    fn extra_headers(&self) -> impl Iterator<Item = (header::HeaderName, &'static str)> {
        let challenge = match self {
            Self::Auth(AuthError::Missing) => Some("Bearer"),
            Self::Auth(AuthError::Invalid) => Some(r#"Bearer error="invalid_token""#),
            Self::Auth(AuthError::Malformed) => Some(r#"Bearer error="invalid_request""#),
            Self::Auth(AuthError::Forbidden) => Some(r#"Bearer error="insufficient_scope""#),
            _ => None,
        };
        // The rest of a late body would be read as the next request: close instead.
        let close = matches!(self, Self::BodyTimeout).then_some("close");
        let retry = matches!(
            self.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        )
        .then_some(RETRY_AFTER_SECS);
        [
            (header::WWW_AUTHENTICATE, challenge),
            (header::CONNECTION, close),
            (header::RETRY_AFTER, retry),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    }

    /// Logs what only the operator should see (a broker's failure in full).
    fn log(&self) {
        if let Self::Unavailable(detail) = self {
            tracing::warn!(%detail, "broker unavailable");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let mut response = (status, Json(ErrorBody::new(self.to_string()))).into_response();
        for (name, value) in self.extra_headers() {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        if let Some(reason) = self.refusal() {
            response.extensions_mut().insert(Refusal(reason));
        }
        response
    }
}

/// Put on the response of an error that refuses a stream before it opens: why, as a metrics
/// label (`http::metrics` counts it on the stream routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal(pub &'static str);

impl ApiError {
    /// Why this error would refuse a stream, from a fixed set of labels.
    fn refusal(&self) -> Option<&'static str> {
        Some(match self {
            Self::TooManyStreams => "stream_cap",
            Self::TooManyClientStreams => "client_cap",
            Self::TooManyTopics => "topic_cap",
            Self::ShuttingDown => "shutdown",
            Self::Unavailable(_) => "broker",
            Self::Auth(_) => "auth",
            _ => return None,
        })
    }
}

impl ApiError {
    /// The same response as raw HTTP/1.1 bytes, closing the connection: for the paths that
    /// answer before hyper is involved (an oversized head, a client over its connection cap).
    pub(crate) fn http1_bytes(&self) -> Vec<u8> {
        self.http1_response(&[], true)
    }

    /// The same response as raw HTTP/1.1 bytes, with `extra` headers (CORS), and closing the
    /// connection when `close`: for the direct path (`transport::direct`).
    pub(crate) fn http1_response(&self, extra: &[(&str, String)], close: bool) -> Vec<u8> {
        self.log();
        let body = serde_json::to_vec(&ErrorBody::new(self.to_string())).unwrap_or_default();
        let mut headers: Vec<(&str, &str)> = extra
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let own: Vec<_> = self.extra_headers().collect();
        headers.extend(
            own.iter()
                .filter(|(name, _)| *name != header::CONNECTION)
                .map(|(name, value)| (name.as_str(), *value)),
        );
        let close = close || own.iter().any(|(name, _)| *name == header::CONNECTION);
        crate::wire::json_response(self.status(), &body, &headers, close)
    }
}
