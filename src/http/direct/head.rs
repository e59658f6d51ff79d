//! Reading and classifying the first request head of a connection: a plain `GET /stream` is
//! served by the direct path, anything else (other requests, HTTP/2, garbage) goes to hyper,
//! and every case must be decided within the header deadline.

use std::io;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::http::request::RequestMeta;

/// Largest request head accepted; a longer one gets 431 and the connection is closed.
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// What an HTTP/2 client sends first (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which stream endpoint a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `GET /stream`.
    Native,
    /// `GET /.well-known/mercure`.
    Mercure,
}

impl Route {
    /// The path, for the access log.
    pub(super) fn path(self) -> &'static str {
        match self {
            Self::Native => "/stream",
            Self::Mercure => crate::auth::HUB_PATH,
        }
    }
}

/// A `GET /stream` or `GET /.well-known/mercure` request this path serves.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StreamRequest {
    pub(super) route: Route,
    pub(super) query: Option<String>,
    /// `Last-Event-ID`, credentials, origin, host (the peer is added by the caller).
    pub(super) meta: RequestMeta,
    pub(super) http10: bool,
}

/// What the bytes read so far are.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// Not complete yet.
    Partial,
    /// A plain stream request with nothing after its head: served here.
    Stream(StreamRequest),
    /// A complete head (or HTTP/2 preface, or bytes that are not HTTP) for hyper.
    Other,
    /// Longer than [`MAX_HEAD`] without ending.
    TooLarge,
}

/// Classifies the bytes a connection sent first.
pub(super) fn parse_head(buf: &[u8]) -> Head {
    let preface = buf.len().min(H2_PREFACE.len());
    if buf[..preface] == H2_PREFACE[..preface] {
        return if preface == H2_PREFACE.len() {
            Head::Other
        } else {
            Head::Partial
        };
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        Ok(httparse::Status::Partial) => return Head::TooLarge,
        // hyper answers malformed requests (and heads with more headers than we look at).
        Err(_) => return Head::Other,
    };
    if len > MAX_HEAD {
        return Head::TooLarge;
    }
    let (path, query) = match request.path.unwrap_or("").split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (request.path.unwrap_or(""), None),
    };
    let route = match path {
        "/stream" => Route::Native,
        crate::auth::HUB_PATH => Route::Mercure,
        _ => return Head::Other,
    };
    let plain = len == buf.len()
        && request.method == Some("GET")
        && request.headers.iter().all(|h| {
            !h.name.eq_ignore_ascii_case("content-length")
                && !h.name.eq_ignore_ascii_case("transfer-encoding")
                && !h.name.eq_ignore_ascii_case("upgrade")
        });
    if !plain {
        return Head::Other;
    }
    Head::Stream(StreamRequest {
        route,
        query,
        meta: RequestMeta::from_raw(request.headers, None),
        http10: request.version == Some(0),
    })
}

/// Reads until the head is complete. `None` when the peer left, or was too slow, before.
pub(super) async fn read_head(
    socket: &mut TcpStream,
    header_timeout: Duration,
) -> io::Result<Option<(Vec<u8>, Head)>> {
    let mut buf = Vec::with_capacity(512);
    let deadline = tokio::time::Instant::now() + header_timeout;
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().min(MAX_HEAD));
        }
        let read = tokio::time::timeout_at(deadline, socket.read_buf(&mut buf)).await;
        match read {
            Err(_) | Ok(Ok(0)) => return Ok(None),
            Ok(Err(err)) => return Err(err),
            Ok(Ok(_)) => {}
        }
        match parse_head(&buf) {
            Head::Partial => {}
            head => return Ok(Some((buf, head))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(query: Option<&str>, last: Option<&[u8]>, http10: bool) -> Head {
        Head::Stream(StreamRequest {
            route: Route::Native,
            query: query.map(str::to_owned),
            meta: RequestMeta {
                last_event_id: last.map(<[u8]>::to_vec),
                host: Some("x".into()),
                ..RequestMeta::default()
            },
            http10,
        })
    }

    #[test]
    fn heads_are_classified() {
        let big = format!(
            "GET /stream HTTP/1.1\r\nx: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        let cases: Vec<(&[u8], Head)> =
            vec![
            (
                b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
                stream(None, None, false),
            ),
            (
                b"GET /stream?topic=a&mode=live HTTP/1.0\r\nHost: x\r\nLast-Event-ID: 1-2\r\n\r\n",
                stream(Some("topic=a&mode=live"), Some(b"1-2"), true),
            ),
            // Split reads: any prefix of a head is partial.
            (b"G", Head::Partial),
            (b"GET /str", Head::Partial),
            (b"GET /stream HTTP/1.1\r\nHost: x\r\n", Head::Partial),
            // HTTP/2: partial preface waits, a whole one goes to hyper.
            (b"PRI * HTT", Head::Partial),
            (H2_PREFACE, Head::Other),
            // Other requests and anything with a body or pipelined bytes go to hyper.
            (b"GET /api/ping HTTP/1.1\r\n\r\n", Head::Other),
            (b"GET /streams HTTP/1.1\r\n\r\n", Head::Other),
            (b"GET /.well-known/mercure/subscriptions HTTP/1.1\r\n\r\n", Head::Other),
            (b"POST /.well-known/mercure HTTP/1.1\r\n\r\n", Head::Other),
            (b"POST /stream HTTP/1.1\r\n\r\n", Head::Other),
            (
                b"GET /stream HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
                Head::Other,
            ),
            (
                b"GET /stream HTTP/1.1\r\n\r\nGET /stream HTTP/1.1\r\n\r\n",
                Head::Other,
            ),
            (
                b"GET /stream HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
                Head::Other,
            ),
            // Garbage: hyper answers 400.
            (b"\x16\x03\x01 hello", Head::Other),
            (b"P\r\n\r\n", Head::Other),
            // Oversized, complete or not.
            (big.as_bytes(), Head::TooLarge),
            (&big.as_bytes()[..MAX_HEAD + 10], Head::TooLarge),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                parse_head(bytes),
                expected,
                "{:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
            );
        }
    }

    #[test]
    fn mercure_subscriptions_are_streams_too() {
        let head = parse_head(b"GET /.well-known/mercure?topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
        let Head::Stream(request) = head else {
            panic!("{head:?}")
        };
        assert_eq!(request.route, Route::Mercure);
        assert_eq!(request.route.path(), "/.well-known/mercure");
        assert_eq!(request.query.as_deref(), Some("topic=a"));
    }

    #[tokio::test]
    async fn a_head_in_pieces_is_read_whole_within_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let reader =
            tokio::spawn(async move { read_head(&mut server, Duration::from_secs(5)).await });
        for piece in [
            &b"GET /stream?topic=a HT"[..],
            b"TP/1.1\r\nHost: x\r",
            b"\n\r\n",
        ] {
            tokio::io::AsyncWriteExt::write_all(&mut client, piece)
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        let (buf, head) = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(buf.len(), 41);
        let Head::Stream(request) = &head else {
            panic!("{head:?}")
        };
        assert_eq!(request.meta.host.as_deref(), Some("x"));
        assert_eq!(head, stream(Some("topic=a"), None, false));
    }

    #[test]
    fn credentials_and_origin_are_read_from_the_head() {
        let head = parse_head(
            b"GET /stream HTTP/1.1\r\nAuthorization: Bearer t\r\nCookie: a=1\r\nCookie: b=2\r\nOrigin: https://o\r\n\r\n",
        );
        let Head::Stream(request) = head else {
            panic!("{head:?}")
        };
        assert_eq!(
            request.meta.authorization.as_deref(),
            Some(&b"Bearer t"[..])
        );
        assert_eq!(request.meta.cookie.as_deref(), Some("a=1; b=2"));
        assert_eq!(request.meta.origin.as_deref(), Some(&b"https://o"[..]));
    }

    #[tokio::test]
    async fn a_slow_head_is_dropped_at_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, b"P")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let read = read_head(&mut server, Duration::from_millis(200)).await;
        assert!(read.unwrap().is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
