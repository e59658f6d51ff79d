//! The SSE subscriber: one raw HTTP/1.1 `GET` over a tokio `TcpStream` from a chosen loopback
//! source address, its response head parsed by [`crate::http`], the body de-chunked (or read to
//! the close) and cut into events by `ssehub::sse::Parser`. What to do with each event is the
//! [`Handler`]'s business, so the same client serves every scenario.
//!
//! Memory per connection: one 8 KiB read buffer plus the parser's line buffer (and, over TLS,
//! rustls's state). HTTPS subscribers ([`Target::tls`]) speak HTTP/1.1 the same way over a
//! `tokio-rustls` stream; HTTP/2 subscribers are in [`crate::h2client`].
//!
//! Reads go through [`Socket`], which saves the generator one system call per wake-up: a read
//! that returns less than the buffer has drained the socket, so it marks the socket not
//! readable itself instead of reading again for `EWOULDBLOCK` (safe with tokio's
//! edge-triggered epoll: data arriving after the read raises a new edge).

#![allow(unsafe_code)] // system calls tokio does not wrap; each block says why it is sound

use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ssehub::sse::{Parser, SseEvent};
use std::io::{Read, Write};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;

use crate::bail;
use crate::error::{Context, Result};
use crate::http::{self, Body};
use crate::payload::Clock;

/// Read buffer per connection.
const READ_BUFFER: usize = 8 * 1024;
/// How many source addresses (127.0.0.1 ..= 127.0.0.N) the connections are spread over.
pub const SOURCE_ADDRESSES: u8 = 32;

/// Source address for connection number `index`.
pub fn source_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (index % usize::from(SOURCE_ADDRESSES)) as u8)
}

/// What a stream's events are for.
pub trait Handler {
    /// The response head arrived with this status.
    fn on_head(&mut self, status: u16);
    /// One event, read at `now_us` on the run's clock.
    fn on_event(&mut self, event: SseEvent, now_us: u64);
}

/// How a stream ended without error.
pub enum End {
    /// The body's own end (chunked terminator or `Content-Length`); the connection is still
    /// open, for the caller to close when it likes.
    Complete(Connection),
    /// The server closed a close-delimited body.
    Closed,
}

/// One stream request, shared by all the connections that send it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// The path requested (for HTTP/2, which does not send [`Target::request`]).
    pub path: String,
    /// The request bytes.
    pub request: Vec<u8>,
    /// Limit on connect plus response head.
    pub open_timeout: Duration,
    /// HTTPS: the client configuration (ALPN `http/1.1`); none for cleartext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// A `GET path` with `Accept: text/event-stream`.
    pub fn get(addr: SocketAddr, path: &str, open_timeout: Duration) -> Rc<Self> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        );
        Rc::new(Self {
            addr,
            path: path.to_owned(),
            request: request.into_bytes(),
            open_timeout,
            tls: None,
        })
    }

    /// The same `GET` over HTTPS with `tls` (which should offer ALPN `http/1.1`).
    pub fn get_tls(
        addr: SocketAddr,
        path: &str,
        open_timeout: Duration,
        tls: Arc<rustls::ClientConfig>,
    ) -> Rc<Self> {
        let mut target = Rc::unwrap_or_clone(Self::get(addr, path, open_timeout));
        target.tls = Some(tls);
        Rc::new(target)
    }

    /// Opens the connection (and the TLS session, for HTTPS) from `from`.
    pub async fn connect(&self, from: Ipv4Addr) -> Result<Connection> {
        open(from, self.addr, self.open_timeout, self.tls.as_ref()).await
    }
}

/// Opens a connection from `from` to `to`, with a TLS session over it when `tls` is given.
pub async fn open(
    from: Ipv4Addr,
    to: SocketAddr,
    limit: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Connection> {
    let stream = http::connect(from, to, limit).await?;
    match tls {
        None => Ok(Connection::Plain(Socket::new(stream)?)),
        Some(config) => {
            let name = rustls::pki_types::ServerName::from(to.ip());
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, stream)
                .await
                .context("TLS handshake")?;
            Ok(Connection::Tls(Box::new(tls)))
        }
    }
}

/// A subscriber's (or publisher's) connection: a raw socket, or a TLS session over one.
pub enum Connection {
    /// Cleartext.
    Plain(Socket),
    /// HTTPS.
    Tls(Box<TlsStream<tokio::net::TcpStream>>),
}

impl Connection {
    /// Reads what is there (at least one byte, or 0 at the end of the stream).
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(socket) => socket.read(buf).await,
            Self::Tls(tls) => match tls.read(buf).await {
                // A peer closing without close_notify ends the body as a close would.
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(socket) => socket.write_all(data).await,
            Self::Tls(tls) => {
                tls.write_all(data).await?;
                tls.flush().await
            }
        }
    }
}

/// Runs one stream to its end. `gate` bounds how many connections are being opened at once
/// (its permit is held until the response head is in).
pub async fn stream<H: Handler>(
    from: Ipv4Addr,
    target: &Target,
    clock: Clock,
    gate: &Semaphore,
    handler: &mut H,
) -> Result<End> {
    let permit = gate.acquire().await.context("connection gate closed")?;
    let opening = async {
        let mut stream = target.connect(from).await?;
        stream
            .write_all(&target.request)
            .await
            .context("sending request")?;
        let mut buf = vec![0u8; READ_BUFFER];
        let mut filled = 0;
        loop {
            let n = stream
                .read(&mut buf[filled..])
                .await
                .context("reading response head")?;
            if n == 0 {
                bail!("connection closed before the response head");
            }
            filled += n;
            if let Some(head) = http::parse_head(&buf[..filled])? {
                return Ok((stream, buf, filled, head));
            }
            if filled == buf.len() {
                bail!("response head does not fit {READ_BUFFER} bytes");
            }
        }
    };
    let (mut stream, mut buf, filled, head) = tokio::time::timeout(target.open_timeout, opening)
        .await
        .with_context(|| format!("no response head within {:?}", target.open_timeout))??;
    drop(permit);
    handler.on_head(head.status);
    if head.status != 200 {
        bail!("status {}", head.status);
    }
    let mut body = Body::new(head.framing);
    let mut parser = Parser::new();
    feed(
        &mut body,
        &mut parser,
        &buf[head.len..filled],
        clock.now_us(),
        handler,
    )?;
    loop {
        if body.is_done() {
            return Ok(End::Complete(stream));
        }
        let n = stream.read(&mut buf).await.context("reading stream")?;
        if n == 0 {
            if body.until_close() {
                return Ok(End::Closed);
            }
            bail!("connection closed inside the body");
        }
        feed(&mut body, &mut parser, &buf[..n], clock.now_us(), handler)?;
    }
}

fn feed<H: Handler>(
    body: &mut Body,
    parser: &mut Parser,
    bytes: &[u8],
    now_us: u64,
    handler: &mut H,
) -> Result<()> {
    let used = body.feed(bytes, |chunk| {
        parser.feed_with(chunk, |event| handler.on_event(event, now_us));
    })?;
    if used < bytes.len() {
        bail!("{} bytes after the end of the body", bytes.len() - used);
    }
    Ok(())
}

/// A connected TCP socket read through [`AsyncFd`] (see the module docs).
pub struct Socket(AsyncFd<std::net::TcpStream>);

impl Socket {
    /// Takes over a connected tokio stream.
    pub fn new(stream: tokio::net::TcpStream) -> Result<Self> {
        let stream = stream.into_std().context("detaching the socket")?;
        // SAFETY: the std stream owns its descriptor, which stays open until the `AsyncFd`
        // (its owner from here on) is dropped.
        let fd = unsafe { AsyncFd::register(stream) }.context("registering the socket")?;
        Ok(Self(fd))
    }

    /// Reads what is there (at least one byte, or 0 at the end of the stream).
    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|inner| inner.get_ref().read(buf)) {
                Ok(Ok(n)) => {
                    if n > 0 && n < buf.len() {
                        guard.clear_ready();
                    }
                    return Ok(n);
                }
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|inner| inner.get_ref().write(data)) {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}
