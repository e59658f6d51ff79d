//! `POST /publish`, `POST /api/messages` and `POST /.well-known/mercure` over HTTP/1.1 without
//! hyper: the publish hot path.
//!
//! Through hyper, axum and four middleware layers a publish cost about twice the CPU of the
//! work itself (`perf`: ~35k of ~58k instructions per publish were routing, header maps,
//! boxed bodies and the layers). Here a plain publish (one `Content-Length` body, nothing
//! unusual in its head) is read, validated and answered by the same functions the hyper route
//! calls (`input::draft`, `Auth`, `Hub::publish`, `messages::accepted_json`, and for Mercure
//! `mercure::publish::checked`), with the same
//! headers, CORS, metrics and access log, and in the same order, so a request refused on one path
//! is refused with the same error on the other (`tests/it/paths.rs` sends the same requests both
//! ways). The body is in hand before anything is checked, so a refusal leaves the connection
//! usable as hyper's does after draining it.

use std::io;

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::head::{NativeRoute, PublishRequest, PublishRoute};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::http::input::{self, Accept};
use crate::http::messages::accepted_json;
use crate::http::{mercure, AppState};
use crate::wire::{json_response, response};

/// The response to a publish: written, then the connection goes on unless `close` was asked.
pub(super) struct Answer(pub(super) Vec<u8>);

impl NativeRoute {
    fn accept(self) -> Accept {
        match self {
            Self::Messages => Accept::Json,
            Self::Publish => Accept::Any,
        }
    }

    fn status(self) -> (StatusCode, &'static str) {
        match self {
            Self::Messages => (StatusCode::CREATED, "accepted"),
            Self::Publish => (StatusCode::ACCEPTED, "queued"),
        }
    }
}

/// Publishes `request` with `body` (all of it). `close` adds `connection: close` to the
/// response (the server is shutting down).
pub(super) async fn answer(
    app: &AppState,
    request: &PublishRequest,
    body: &[u8],
    close: bool,
) -> Answer {
    let started = std::time::Instant::now();
    let route = request.route;
    let meta = &request.meta;
    let cors = app.cors().headers(meta.origin.as_deref());
    let draft = match route {
        PublishRoute::Native(native) => checked(app, native, request, body),
        PublishRoute::Mercure => {
            mercure::publish::checked(app, meta, request.content_type.as_deref(), body)
        }
    };
    let published = match draft {
        Ok(draft) => app.hub().publish(draft).await.map_err(ApiError::from),
        Err(err) => Err(err),
    };
    let (status, bytes) = match published {
        Ok(published) => {
            let mut headers: Vec<(&str, &str)> =
                cors.iter().map(|(n, v)| (*n, v.as_str())).collect();
            match route {
                PublishRoute::Native(native) => {
                    let (status, word) = native.status();
                    let json = accepted_json(word, &published);
                    (status, json_response(status, &json, &headers, close))
                }
                PublishRoute::Mercure => {
                    let link = mercure::link_text(meta);
                    headers.extend(link.as_deref().map(|l| ("link", l)));
                    let id = published.event.wire_id().as_bytes();
                    let status = StatusCode::OK;
                    let text = mercure::publish::TEXT_PLAIN;
                    (status, response(status, text, id, &headers, close))
                }
            }
        }
        Err(err) => (err.status(), err.http1_response(&cors, close)),
    };
    let took = started.elapsed();
    let path = route.path();
    crate::http::log_request(app, "POST", path, status.as_u16(), took);
    app.metrics().publish_request(path, status.as_u16(), took);
    Answer(bytes)
}

/// The checks of the hyper route (`messages::accept`, `input::read_draft`), in its order: the
/// publisher's token, the content type, the body, the grant for the topic.
fn checked(
    app: &AppState,
    route: NativeRoute,
    request: &PublishRequest,
    body: &[u8],
) -> Result<crate::hub::Draft, ApiError> {
    let grants = app.auth().publisher(&request.meta.credentials(None))?;
    let accept = route.accept();
    let kind = input::content_kind(request.content_type.as_deref(), accept)?;
    let query = match accept {
        Accept::Any => request.query.as_deref(),
        Accept::Json => None,
    };
    let draft = input::draft(kind, body, query, accept, app.input_limits())?;
    Auth::may_publish(grants.as_ref(), draft.topic.as_str())?;
    Ok(draft)
}

/// What the connection does after a publish.
pub(super) enum Step {
    /// Read the next request.
    Next,
    /// Done: the connection was answered and closed, or the peer left.
    Closed,
    /// Hyper answers this request (its body is over the limit), from `buf`'s first byte.
    Fallback,
}

/// A buffer kept between requests is shrunk back to this when a large body made it grow.
const KEEP: usize = 4096;

/// Reads the body of the publish at the start of `buf`, answers it and drops it from `buf`
/// (what follows, a pipelined request, stays).
pub(super) async fn serve_one(
    socket: &mut TcpStream,
    app: &AppState,
    buf: &mut Vec<u8>,
    request: PublishRequest,
) -> io::Result<Step> {
    let limits = app.input_limits();
    if request.body_len > limits.body {
        return Ok(Step::Fallback);
    }
    let total = request.head_len + request.body_len;
    // A body that came with its head (the usual case) is not waited for, nor timed.
    let arrived = if buf.len() >= total {
        Ok(Ok(true))
    } else {
        let body = async {
            while buf.len() < total {
                buf.reserve(total - buf.len());
                if socket.read_buf(buf).await? == 0 {
                    return Ok(false);
                }
            }
            Ok::<_, io::Error>(true)
        };
        tokio::time::timeout(limits.timeout, body).await
    };
    match arrived {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Ok(Step::Closed),
        Ok(Err(err)) => return Err(err),
        Err(_) => {
            let cors = app.cors().headers(request.meta.origin.as_deref());
            let response = ApiError::BodyTimeout.http1_response(&cors, true);
            crate::http::log_request(app, "POST", request.route.path(), 408, limits.timeout);
            crate::io::answer_and_close(socket, &response, super::LINGER).await;
            return Ok(Step::Closed);
        }
    }
    let closing = app.shutting_down();
    let Answer(response) = answer(app, &request, &buf[request.head_len..total], closing).await;
    buf.drain(..total);
    if buf.capacity() > KEEP && buf.len() <= KEEP {
        buf.shrink_to(KEEP);
    }
    if closing {
        crate::io::answer_and_close(socket, &response, super::LINGER).await;
        return Ok(Step::Closed);
    }
    // A healthy client's socket takes the answer at once: no timer unless it does not.
    let sent = match socket.try_write(&response) {
        Ok(n) => n,
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
        Err(err) => return Err(err),
    };
    if sent == response.len() {
        return Ok(Step::Next);
    }
    let write_timeout = app.config().write_timeout;
    match tokio::time::timeout(write_timeout, socket.write_all(&response[sent..])).await {
        Ok(written) => written.map(|()| Step::Next),
        Err(_) => Ok(Step::Closed),
    }
}
