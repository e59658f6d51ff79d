//! `POST /publish`, `POST /api/messages` and `POST /.well-known/mercure` over HTTP/1.1 without
//! hyper: the publish hot path.
//!
//! Through hyper, axum and four middleware layers a publish cost about twice the CPU of the
//! work itself (`perf`: ~35k of ~58k instructions per publish were routing, header maps,
//! boxed bodies and the layers). Here a plain publish (one `Content-Length` body, nothing
//! unusual in its head) is read and handed to the same operations the hyper route calls
//! (`ops::publish`, `ops::mercure::publish`), answered with the same headers, CORS, metrics
//! and access log, so a request refused on one path is refused with the same error on the
//! other (`tests/it/paths.rs` sends the same requests both ways). The body is in hand before anything is checked, so a refusal leaves the connection
//! usable as hyper's does after draining it.

use std::io;

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::head::{PublishRequest, PublishRoute};
use crate::error::ApiError;
use crate::ops::mercure::link_text;
use crate::ops::mercure::publish::{self as mercure, TEXT_PLAIN};
use crate::ops::publish;
use crate::ops::AppState;
use crate::wire::{json_response, response};

/// The response to a publish: written, then the connection goes on unless `close` was asked.
pub(super) struct Answer(pub(super) Vec<u8>);

/// Publishes `request` with `body` (all of it) through the operations (`ops::publish`,
/// `ops::mercure::publish`): the hyper route's checks in its order. `close` adds
/// `connection: close` to the response (the server is shutting down).
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
    let content_type = request.content_type.as_deref();
    let answered = async {
        let publisher = publish::publisher(app, meta)?;
        let mut headers: Vec<(&str, &str)> = cors.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Ok::<_, ApiError>(match route {
            PublishRoute::Native(endpoint) => {
                let query = request.query.as_deref();
                let (status, json) =
                    publish::native(app, &publisher, endpoint, content_type, query, body).await?;
                (status, json_response(status, &json, &headers, close))
            }
            PublishRoute::Mercure => {
                let published = mercure::publish(app, &publisher, meta, content_type, body).await?;
                let link = link_text(meta);
                headers.extend(link.as_deref().map(|l| ("link", l)));
                let id = published.event.wire_id().as_bytes();
                let status = StatusCode::OK;
                (status, response(status, TEXT_PLAIN, id, &headers, close))
            }
        })
    };
    let (status, bytes) = match answered.await {
        Ok(answer) => answer,
        Err(err) => (err.status(), err.http1_response(&cors, close)),
    };
    let took = started.elapsed();
    let path = route.path();
    crate::ops::log::log_request(app, "POST", path, status.as_u16(), took);
    app.metrics().publish_request(path, status.as_u16(), took);
    Answer(bytes)
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
            crate::ops::log::log_request(app, "POST", request.route.path(), 408, limits.timeout);
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
