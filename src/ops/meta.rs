//! The parts of a request that the operations read beyond the body, owned, read once by one
//! function ([`RequestMeta::read`]) from either transport's headers: `Last-Event-ID`, the
//! credentials, the origin, the host, the client address, TLS and the HTTP version.

use std::net::{IpAddr, SocketAddr};

use crate::auth::Credentials;
use crate::metrics::HttpVersion;

/// The client's address, put on every hyper-path request by the connection (`transport`).
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
    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }

    /// Reads a request's headers, as names and raw values in the order they came: how both
    /// transports read them (the direct path from its parsed head, hyper's from its header
    /// map), so both see the same request the same way. `Cookie` headers are joined in order
    /// (HTTP/2 splits them); the others are refused when repeated ([`ambiguity`]) before this
    /// is read.
    pub fn read<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        peer: Option<IpAddr>,
    ) -> Self {
        let mut meta = Self {
            peer,
            ..Self::default()
        };
        let mut cookies = Vec::new();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("last-event-id") {
                meta.last_event_id = Some(value.to_vec());
            } else if name.eq_ignore_ascii_case("authorization") {
                meta.authorization = Some(value.to_vec());
            } else if name.eq_ignore_ascii_case("cookie") {
                cookies.extend(std::str::from_utf8(value).ok());
            } else if name.eq_ignore_ascii_case("origin") {
                meta.origin = Some(value.to_vec());
            } else if name.eq_ignore_ascii_case("host") {
                meta.host = std::str::from_utf8(value).ok().map(str::to_owned);
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
