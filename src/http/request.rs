//! The parts of a request that the stream and publish paths read beyond the body, owned, from
//! either the direct path's raw head or hyper's `HeaderMap`: one code path for `Last-Event-ID`,
//! credentials, the origin and the client address.

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, Uri};

use crate::auth::Credentials;
use crate::metrics::HttpVersion;

/// The client's address, put on every request by the connection (`connection.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Headers a request may carry once: what decides who may do what, and where a stream
/// starts. Two of one could be read two ways (the first or the last): both HTTP paths refuse
/// such a request with 400 instead. `Cookie` may come several times (HTTP/2 splits it); both
/// paths join them in order.
const SINGLE: [&str; 5] = [
    "authorization",
    "origin",
    "host",
    "last-event-id",
    "content-type",
];

/// Why a request head must be refused before anything reads it: a header of [`SINGLE`] twice,
/// or a `Host` that is not a host (it is written into the `Link` header and the hub's URL).
pub(crate) fn ambiguity<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Option<String> {
    let mut seen = [false; SINGLE.len()];
    for (name, value) in headers {
        let Some(at) = SINGLE.iter().position(|s| name.eq_ignore_ascii_case(s)) else {
            continue;
        };
        if std::mem::replace(&mut seen[at], true) {
            return Some(format!("the {} header may appear only once", SINGLE[at]));
        }
        if at == 2 && !valid_host(value) {
            return Some("the host header is not a host name, address and port".into());
        }
    }
    None
}

/// A `Host` value: a name, an IPv4 or bracketed IPv6 address, an optional port; nothing that
/// could end a URL or a header parameter.
fn valid_host(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~:[]%".contains(&b))
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

/// See the module docs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RequestMeta {
    pub last_event_id: Option<Vec<u8>>,
    pub authorization: Option<Vec<u8>>,
    pub cookie: Option<String>,
    pub origin: Option<Vec<u8>>,
    pub host: Option<String>,
    pub peer: Option<IpAddr>,
    /// The request came over TLS (the hub's own URL is then `https://`).
    pub secure: bool,
    /// The HTTP version it came with (a stream's metrics label).
    pub version: HttpVersion,
}

impl RequestMeta {
    /// From hyper's view of a request.
    pub fn from_headers(headers: &HeaderMap, uri: &Uri, peer: Option<IpAddr>) -> Self {
        let bytes = |name: header::HeaderName| headers.get(name).map(|v| v.as_bytes().to_vec());
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .map(str::to_owned);
        Self {
            last_event_id: bytes(header::HeaderName::from_static("last-event-id")),
            authorization: bytes(header::AUTHORIZATION),
            cookie: (!cookie.is_empty()).then_some(cookie),
            origin: bytes(header::ORIGIN),
            host,
            peer,
            secure: uri.scheme_str() == Some("https"),
            version: HttpVersion::Http11,
        }
    }

    /// Records the HTTP version hyper read the request with.
    #[must_use]
    pub fn version(mut self, version: axum::http::Version) -> Self {
        self.version = match version {
            axum::http::Version::HTTP_2 | axum::http::Version::HTTP_3 => HttpVersion::Http2,
            axum::http::Version::HTTP_10 | axum::http::Version::HTTP_09 => HttpVersion::Http10,
            _ => HttpVersion::Http11,
        };
        self
    }

    /// Marks the request as received over TLS when `tls` is true.
    #[must_use]
    pub fn secure(mut self, tls: bool) -> Self {
        self.secure |= tls;
        self
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }

    /// From the direct path's parsed head.
    pub fn from_raw(headers: &[httparse::Header<'_>], peer: Option<IpAddr>) -> Self {
        let mut meta = Self {
            peer,
            ..Self::default()
        };
        let mut cookies = Vec::new();
        for h in headers {
            let name = h.name;
            if name.eq_ignore_ascii_case("last-event-id") {
                meta.last_event_id = Some(h.value.to_vec());
            } else if name.eq_ignore_ascii_case("authorization") {
                meta.authorization = Some(h.value.to_vec());
            } else if name.eq_ignore_ascii_case("cookie") {
                cookies.extend(std::str::from_utf8(h.value).ok());
            } else if name.eq_ignore_ascii_case("origin") {
                meta.origin = Some(h.value.to_vec());
            } else if name.eq_ignore_ascii_case("host") {
                meta.host = std::str::from_utf8(h.value).ok().map(str::to_owned);
            }
        }
        if !cookies.is_empty() {
            meta.cookie = Some(cookies.join("; "));
        }
        meta
    }

    /// The credentials, with the `authorization` query parameter if the request had one.
    pub fn credentials<'a>(&'a self, query_token: Option<&'a str>) -> Credentials<'a> {
        Credentials {
            authorization: self.authorization.as_deref(),
            cookie: self.cookie.as_deref(),
            origin: self.origin.as_deref(),
            host: self.host.as_deref(),
            query_token,
            scheme: self.scheme(),
        }
    }
}
