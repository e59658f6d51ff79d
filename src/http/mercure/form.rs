//! Strict `application/x-www-form-urlencoded` parsing (names and values must be UTF-8 after
//! percent-decoding: a lossy decoder would let bad bytes through as U+FFFD) and the reserved
//! hub namespace check.

use crate::auth::HUB_PATH;
use crate::error::ApiError;

/// The name/value pairs of a query string or form body, percent-decoded (`+` is a space).
///
/// # Errors
/// 400 when a name or value is not UTF-8.
pub(super) fn pairs(input: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for pair in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        out.push((text(name)?, text(value)?));
    }
    Ok(out)
}

fn text(raw: &[u8]) -> Result<String, ApiError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        bytes.push(byte);
                        i += 3;
                        continue;
                    }
                    None => bytes.push(b'%'),
                }
            }
            other => bytes.push(other),
        }
        i += 1;
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("parameters must be UTF-8 after percent-decoding".into()))
}

/// Whether a topic, resolved against the hub's URL, addresses the hub's own namespace.
pub(super) fn reserved(topic: &str, hub: &str) -> bool {
    let Ok(base) = url::Url::parse(hub) else {
        return false;
    };
    let Ok(resolved) = base.join(topic) else {
        return false;
    };
    let path = normalize(&decode_unreserved(resolved.path()));
    path == HUB_PATH || path.starts_with(&format!("{HUB_PATH}/"))
}

/// Decodes percent-escapes of unreserved characters (RFC 3986 section 2.3).
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(byte));
                    i += 3;
                    continue;
                }
            }
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

/// Removes dot segments (RFC 3986 section 5.2.4).
fn normalize(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_strictly() {
        let decoded = pairs(b"topic=a%20b&data=x+y&private&e=%E2%82%AC").unwrap();
        assert_eq!(decoded[0], ("topic".into(), "a b".into()));
        assert_eq!(decoded[1], ("data".into(), "x y".into()));
        assert_eq!(decoded[2], ("private".into(), String::new()));
        assert_eq!(decoded[3].1, "\u{20ac}");
        assert!(pairs(b"topic=%FF").is_err());
        assert!(pairs(b"a%C3=1").is_err());
    }

    #[test]
    fn the_hub_namespace_is_reserved_however_spelled() {
        let hub = "http://hub.test/.well-known/mercure";
        for topic in [
            "/.well-known/mercure",
            "/.well-known/mercure/subscriptions/x",
            "https://other.test/.well-known/mercure/x",
            "/.well-known/%6Dercure/x",
            "/.well-known/mercure/../mercure/x",
            "/a/../.well-known/mercure",
        ] {
            assert!(reserved(topic, hub), "{topic}");
        }
        for topic in [
            "/.well-known/mercurex",
            "https://example.com/books/1",
            "plain",
        ] {
            assert!(!reserved(topic, hub), "{topic}");
        }
    }
}
