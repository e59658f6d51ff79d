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
