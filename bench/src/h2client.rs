//! HTTP/2 subscribers over TLS (the `h2` crate): one connection carries many streams, as a
//! browser's `EventSource`s to one origin do. Each stream's `DATA` frames go through the same
//! `ssehub::sse::Parser` and [`Handler`] as the HTTP/1.1 client, and flow-control capacity is
//! given back as soon as a frame is read, so the server is never held back by the generator's
//! windows (1 MiB per stream, 16 MiB per connection).

use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use ssehub::sse::Parser;
use tokio::sync::Semaphore;

use crate::bail;
use crate::client::{Handler, Target};
use crate::error::{Context, Result};
use crate::http;
use crate::payload::Clock;

/// An open HTTP/2 connection: the handle that starts streams, and the future that drives the
/// connection (to be spawned; it ends when every handle and stream is gone).
pub type Opened = (
    SendRequest<Bytes>,
    h2::client::Connection<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Bytes>,
);

/// Opens a TLS connection from `from` to `target` with ALPN `h2` and does the HTTP/2
/// handshake; `gate` bounds the connections being opened at once.
pub async fn connect(from: Ipv4Addr, target: &Target, gate: &Semaphore) -> Result<Opened> {
    let _permit = gate.acquire().await.context("connection gate closed")?;
    let Some(config) = &target.tls else {
        bail!("HTTP/2 subscribers need TLS");
    };
    let opening = async {
        let tcp = http::connect(from, target.addr, target.open_timeout).await?;
        let name = rustls::pki_types::ServerName::from(target.addr.ip());
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            bail!("the server did not choose h2 with ALPN");
        }
        h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake::<_, Bytes>(tls)
            .await
            .context("HTTP/2 handshake")
    };
    tokio::time::timeout(target.open_timeout, opening)
        .await
        .with_context(|| format!("no HTTP/2 connection within {:?}", target.open_timeout))?
}

/// Runs one stream (`GET target.path`) on `send` to its end.
pub async fn stream<H: Handler>(
    send: SendRequest<Bytes>,
    target: &Target,
    clock: Clock,
    handler: &mut H,
) -> Result<()> {
    let request = ::http::Request::get(format!("https://{}{}", target.addr, target.path))
        .header("accept", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(())
        .context("building the request")?;
    let opening = async {
        let mut send = send.ready().await.context("HTTP/2 connection not ready")?;
        let (response, _) = send
            .send_request(request, true)
            .context("sending the request")?;
        response.await.context("reading the response head")
    };
    let response = tokio::time::timeout(target.open_timeout, opening)
        .await
        .with_context(|| format!("no response head within {:?}", target.open_timeout))??;
    let status = response.status().as_u16();
    handler.on_head(status);
    if status != 200 {
        bail!("status {status}");
    }
    let mut body = response.into_body();
    let mut parser = Parser::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.context("reading the stream")?;
        let _ = body.flow_control().release_capacity(chunk.len());
        let now = clock.now_us();
        parser.feed_with(&chunk, |event| handler.on_event(event, now));
    }
    Ok(())
}
