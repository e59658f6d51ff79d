//! Raw HTTP/1.1 responses with a JSON (or, for a Mercure publish, text) body, with the headers
//! hyper would give them: for what the direct path answers itself (publishes, streams' heads)
//! and for errors answered before hyper is involved. A leaf: it knows bytes and status codes,
//! nothing of the hub, so `error` and every HTTP path can use it.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;

/// `HTTP/1.1 <status>`, `content-type: application/json`, `content-length`, `extra`, `date`,
/// then `connection: close` when `close`, and `body`.
pub(crate) fn json_response(
    status: StatusCode,
    body: &[u8],
    extra: &[(&str, &str)],
    close: bool,
) -> Vec<u8> {
    response(status, "application/json", body, extra, close)
}

/// [`json_response`] with another `content_type`.
pub(crate) fn response(
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    close: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"date: ");
    with_date(|date| out.extend_from_slice(date.as_bytes()));
    out.extend_from_slice(if close {
        &b"\r\nconnection: close\r\n\r\n"[..]
    } else {
        b"\r\n\r\n"
    });
    out.extend_from_slice(body);
    out
}

/// The `Date` value of this second, formatted once a second per thread (as hyper does).
pub(crate) fn with_date<R>(f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != second {
            *cache = (second, httpdate::fmt_http_date(now));
        }
        f(&cache.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_has_hypers_headers() {
        let bytes = json_response(StatusCode::ACCEPTED, b"{}", &[("vary", "origin")], false);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(
            "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\nvary: origin\r\ndate: "
        ));
        assert!(text.ends_with(" GMT\r\n\r\n{}"), "{text}");
        let closing = json_response(StatusCode::SERVICE_UNAVAILABLE, b"{}", &[], true);
        assert!(String::from_utf8(closing)
            .unwrap()
            .ends_with("\r\nconnection: close\r\n\r\n{}"));
    }
}
