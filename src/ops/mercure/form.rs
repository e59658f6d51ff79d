//! Strict `application/x-www-form-urlencoded` parsing (names and values must be UTF-8 after
//! percent-decoding: a lossy decoder would let bad bytes through as U+FFFD) and the reserved
//! hub namespace check.

use std::borrow::Cow;

use crate::auth::HUB_PATH;
use crate::error::ApiError;

/// A decoded name and value.
pub(super) type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The name/value pairs of a query string or form body, percent-decoded (`+` is a space).
/// A name or value with nothing to decode is borrowed, not copied.
///
/// # Errors
/// 400 when a name or value is not UTF-8.
pub(super) fn pairs(input: &[u8]) -> Result<Vec<Pair<'_>>, ApiError> {
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

fn text(raw: &[u8]) -> Result<Cow<'_, str>, ApiError> {
    let not_utf8 =
        || ApiError::BadRequest("parameters must be UTF-8 after percent-decoding".into());
    let Some(first) = raw.iter().position(|b| matches!(b, b'%' | b'+')) else {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| not_utf8());
    };
    let mut bytes = Vec::with_capacity(raw.len());
    bytes.extend_from_slice(&raw[..first]);
    // Byte by byte from the first escape: in a form's JSON `data` escapes come every few bytes.
    let mut i = first;
    while let Some(&b) = raw.get(i) {
        i += 1;
        let byte = match b {
            b'+' => b' ',
            b'%' => match (raw.get(i).and_then(hex), raw.get(i + 1).and_then(hex)) {
                (Some(high), Some(low)) => {
                    i += 2;
                    high << 4 | low
                }
                _ => b'%',
            },
            other => other,
        };
        bytes.push(byte);
    }
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| not_utf8())
}

/// The value of a hexadecimal digit.
fn hex(digit: &u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Whether a topic, resolved against the hub's URL (made by `hub` when needed), addresses the
/// hub's own namespace.
pub(super) fn reserved(topic: &str, hub: impl FnOnce() -> String) -> bool {
    !surely_outside(topic) && resolves_into(topic, &hub())
}

/// Whether `topic` cannot resolve into the hub's namespace, told from its text alone: what
/// most topics (`https://example.com/books/1`) are answered by, without parsing two URLs.
///
/// The resolved path names the hub only if `mercure` is in it. It comes either from the topic
/// (as written, percent-escaped, or split by a tab or newline, which the URL parser drops) or
/// from the hub's own path, which a reference keeps only when its own path is empty: an empty
/// topic, one that starts with `?` or `#`, or `http:` followed by either (a relative URL when
/// the scheme is the hub's). A `/` before any `?` or `#` means a path or an authority of the
/// topic's own. So does a word with no `:` (no scheme) that starts with neither `?`, `#` nor
/// what the URL parser trims (a space or a control character): `bench` resolves to
/// `/.well-known/bench`. Anything this cannot tell is left to [`resolves_into`].
fn surely_outside(topic: &str) -> bool {
    let bytes = topic.as_bytes();
    let own_path = bytes
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .is_some_and(|at| bytes[at] == b'/');
    let relative_word = bytes
        .first()
        .is_some_and(|first| *first > b' ' && !matches!(first, b'?' | b'#'))
        && !bytes.contains(&b':');
    (own_path || relative_word)
        && !bytes
            .iter()
            .any(|b| matches!(b, b'%' | b'\t' | b'\n' | b'\r'))
        && !bytes.windows(7).any(|w| w.eq_ignore_ascii_case(b"mercure"))
}

/// [`reserved`], by resolving the topic against `hub` and normalising the path.
fn resolves_into(topic: &str, hub: &str) -> bool {
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
        assert_eq!(decoded[2], ("private".into(), "".into()));
        assert_eq!(decoded[3].1, "\u{20ac}");
        assert!(pairs(b"topic=%FF").is_err());
        assert!(pairs(b"a%C3=1").is_err());
    }

    #[test]
    fn the_hub_namespace_is_reserved_however_spelled() {
        let hub = || "http://hub.test/.well-known/mercure".to_owned();
        for topic in [
            "/.well-known/mercure",
            "/.well-known/mercure/subscriptions/x",
            "https://other.test/.well-known/mercure/x",
            "/.well-known/%6Dercure/x",
            "/.well-known/mercure/../mercure/x",
            "/a/../.well-known/mercure",
            // Relative to the hub's URL, or keeping its path.
            "mercure/x",
            "./mercure",
            "?x=1",
            " ?x=1",
            "#f",
            "http:",
            "http:?a/b",
            "/.well-known/merc\nure/x",
        ] {
            assert!(reserved(topic, hub), "{topic}");
        }
        for topic in [
            "/.well-known/mercurex",
            "https://example.com/books/1",
            "plain",
            "bench",
            "books?id=1",
        ] {
            assert!(!reserved(topic, hub), "{topic}");
        }
    }

    #[test]
    fn the_text_check_never_clears_a_reserved_topic() {
        let hubs = [
            "http://hub.test/.well-known/mercure",
            "https://hub.test:8443/.well-known/mercure",
        ];
        let parts = [
            "",
            "/",
            "//",
            "?",
            "#",
            ".",
            "..",
            "./",
            "../",
            "http:",
            "https:",
            "HTTP:",
            "mailto:",
            "a",
            "x/",
            "hub.test",
            ".well-known",
            "mercure",
            "Mercure",
            "%6D",
            "ercure",
            "merc",
            "\t",
            "\n",
            "ure",
            "\\",
            "subscriptions",
            "//hub.test",
            "?a/b",
            "#/",
            " ",
            "\u{1}",
            "\u{1f}",
            ":",
            "a:",
            "bench",
            "x?",
        ];
        let mut cleared = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    let topic = format!("{a}{b}{c}");
                    if surely_outside(&topic) {
                        cleared += 1;
                        for hub in hubs {
                            assert!(!resolves_into(&topic, hub), "{topic:?} {hub}");
                        }
                    }
                }
            }
        }
        assert!(cleared > 1000, "{cleared}");
    }

    #[test]
    fn percent_escapes_decode_in_either_case() {
        assert_eq!(pairs(b"a=%7b%7D%2").unwrap()[0].1, "{}%2");
        assert_eq!(pairs(b"a=%G1%").unwrap()[0].1, "%G1%");
    }
}
