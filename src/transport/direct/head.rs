//! Classifying request heads (`read.rs` reads them): a plain `GET /stream` (or Mercure
//! subscription) and a plain publish (`POST /publish`, `POST /api/messages` or
//! `POST /.well-known/mercure` with a `Content-Length` body) are served by the direct path; anything else (other requests, HTTP/2,
//! garbage) goes to hyper.

use crate::ops::meta::RequestMeta;
use crate::ops::publish::Endpoint;

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

/// Which publish endpoint a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PublishRoute {
    /// `POST /api/messages` or `POST /publish`.
    Native(Endpoint),
    /// `POST /.well-known/mercure`: a form, 200 with the update's id as text.
    Mercure,
}

impl PublishRoute {
    /// The path, for the access log and the metrics.
    pub(super) fn path(self) -> &'static str {
        match self {
            Self::Native(endpoint) => endpoint.path(),
            Self::Mercure => crate::auth::HUB_PATH,
        }
    }
}

/// A publish this path serves: HTTP/1.1, one `Content-Length`, no `Transfer-Encoding`,
/// `Expect`, `Upgrade` or `Connection` other than `keep-alive`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PublishRequest {
    pub(super) route: PublishRoute,
    pub(super) query: Option<String>,
    /// Credentials, origin, host (the peer is added by the caller).
    pub(super) meta: RequestMeta,
    /// The `Content-Type` value, if any.
    pub(super) content_type: Option<Vec<u8>>,
    /// Bytes of the head; the body follows.
    pub(super) head_len: usize,
    /// Bytes of the body (`Content-Length`).
    pub(super) body_len: usize,
}

/// What the bytes read so far are.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// Not complete yet.
    Partial,
    /// A plain stream request with nothing after its head: served here.
    Stream(StreamRequest),
    /// A plain publish (its body may still be on its way): served here.
    Publish(PublishRequest),
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
    // A head that could be read two ways is hyper's to refuse, as it refuses it on its own.
    let headers = request.headers.iter().map(|h| (h.name, h.value));
    if crate::ops::meta::ambiguity(headers).is_some() {
        return Head::Other;
    }
    let (path, query) = match request.path.unwrap_or("").split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (request.path.unwrap_or(""), None),
    };
    if request.method == Some("POST") {
        return publish(path, query, &request, len);
    }
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
        meta: RequestMeta::read(request.headers.iter().map(|h| (h.name, h.value)), None),
        http10: request.version == Some(0),
    })
}

/// A `POST` head: a plain publish, or hyper's.
fn publish(
    path: &str,
    query: Option<String>,
    request: &httparse::Request<'_, '_>,
    head_len: usize,
) -> Head {
    let route = match path {
        "/api/messages" => PublishRoute::Native(Endpoint::Messages),
        "/publish" => PublishRoute::Native(Endpoint::Publish),
        crate::auth::HUB_PATH => PublishRoute::Mercure,
        _ => return Head::Other,
    };
    if request.version != Some(1) {
        return Head::Other;
    }
    let mut body_len = None;
    let mut content_type = None;
    for h in request.headers.iter() {
        let name = h.name;
        let once = if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value).ok();
            let digits = value.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
            body_len
                .replace(digits.and_then(|v| v.parse::<usize>().ok()))
                .is_none()
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type.replace(h.value.to_vec()).is_none()
        } else if name.eq_ignore_ascii_case("connection") {
            h.value.eq_ignore_ascii_case(b"keep-alive")
        } else {
            !(name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("expect")
                || name.eq_ignore_ascii_case("upgrade"))
        };
        if !once {
            return Head::Other;
        }
    }
    let Some(Some(body_len)) = body_len else {
        return Head::Other;
    };
    Head::Publish(PublishRequest {
        route,
        query,
        meta: RequestMeta::read(request.headers.iter().map(|h| (h.name, h.value)), None),
        content_type,
        head_len,
        body_len,
    })
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
    fn plain_publishes_are_served_here_and_unusual_ones_by_hyper() {
        let publish = |raw: &[u8]| match parse_head(raw) {
            Head::Publish(request) => Some((request.route, request.body_len, request.head_len)),
            _ => None,
        };
        let head = b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n";
        let mut with_body = head.to_vec();
        with_body.extend_from_slice(b"{\"a\":");
        // The body (even part of it, or more than it) may follow the head.
        let messages = PublishRoute::Native(Endpoint::Messages);
        assert_eq!(publish(head), Some((messages, 5, head.len())));
        assert_eq!(publish(&with_body), Some((messages, 5, head.len())));
        assert_eq!(
            publish(b"POST /publish?topic=a HTTP/1.1\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n"),
            Some((PublishRoute::Native(Endpoint::Publish), 0, 77))
        );
        assert_eq!(
            publish(b"POST /.well-known/mercure HTTP/1.1\r\nContent-Length: 7\r\n\r\ntopic=a"),
            Some((PublishRoute::Mercure, 7, 57))
        );
        let Head::Publish(request) = parse_head(
            b"POST /publish?topic=a HTTP/1.1\r\nContent-Type: text/plain\r\nOrigin: o\r\nContent-Length: 1\r\n\r\n",
        ) else {
            panic!()
        };
        assert_eq!(request.query.as_deref(), Some("topic=a"));
        assert_eq!(request.content_type.as_deref(), Some(&b"text/plain"[..]));
        assert_eq!(request.meta.origin.as_deref(), Some(&b"o"[..]));
        for other in [
            &b"POST /api/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST /api/messages HTTP/1.1\r\n\r\n",
            b"POST /api/messages HTTP/1.0\r\nContent-Length: 1\r\n\r\n",
            b"POST /api/messages HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST /api/messages HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST /api/messages HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST /api/messages HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
            b"POST /api/messages HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
            b"POST /api/messages HTTP/1.1\r\nContent-Length: 1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
            b"POST /api/messages/x HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
            b"POST /.well-known/mercure/subscriptions HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
            b"PUT /api/messages HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
        ] {
            assert_eq!(parse_head(other), Head::Other, "{}", String::from_utf8_lossy(other));
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
}
