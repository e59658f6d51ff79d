//! ssehub's Mercure endpoint, `/.well-known/mercure`, as the Mercure scenarios use it: the
//! publish form, the subscription query of each selector kind, and the topics.
//!
//! - Publish: `POST /.well-known/mercure`, `application/x-www-form-urlencoded`
//!   `topic=<topic>&data=<data>` (no token: the servers run without keys); `200 text/plain`.
//!   The data is a JSON object `{"message": "<payload text>"}` whose text is the run's usual
//!   marked payload (`~seq:<n>:<send µs>~` plus padding, see [`crate::payload`]), so every
//!   delivery gives a sequence number and a latency exactly as on the native endpoint.
//! - Subscribe: `GET /.well-known/mercure?topic=<selector>` (an exact topic or an RFC 6570 URI
//!   template) or `?match_urlpattern=<URL pattern>`. A Mercure frame is `id: …` then one
//!   `data:` line per line of the data as published (no JSON envelope).

use std::fmt::Write;
use std::net::SocketAddr;

use serde::Serialize;

/// The hub's path.
pub const HUB: &str = "/.well-known/mercure";
/// The topic the fan-out publishes to (an IRI, as Mercure topics usually are).
pub const TOPIC: &str = "https://bench.test/t/1";

/// How a Mercure subscriber selects its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    /// `topic=https://bench.test/t/1`: the topic itself.
    Exact,
    /// `topic=https://bench.test/t/{id}`: a URI template (the legacy selector).
    Template,
    /// `match_urlpattern=https://bench.test/t/:id`: a WHATWG URL pattern (draft-08).
    UrlPattern,
}

impl Selector {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Template => "template",
            Self::UrlPattern => "urlpattern",
        }
    }

    /// What the table calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Exact => "Mercure topic= exact",
            Self::Template => "Mercure topic= URI template",
            Self::UrlPattern => "Mercure match_urlpattern",
        }
    }

    /// The subscription path selecting [`TOPIC`] and every topic `TOPIC-<n>` (the fresh topics
    /// of the patterns scenario; not for [`Selector::Exact`]).
    pub fn matching_path(self) -> String {
        match self {
            Self::Exact => path("topic", TOPIC),
            Self::Template => path("topic", "https://bench.test/t/{id}"),
            Self::UrlPattern => path("match_urlpattern", "https://bench.test/t/:id"),
        }
    }

    /// Subscription path number `index` of a set of distinct selectors of this kind, none of
    /// which matches [`TOPIC`] or `TOPIC-<n>`. They share the matching selector's prefix and
    /// differ only at the end (`…/t/{id}/n<index>`), so each one really has to be run against
    /// a topic, not rejected on its first byte.
    pub fn decoy_path(self, index: usize) -> String {
        match self {
            Self::Exact => path("topic", &format!("https://bench.test/t/1/n{index}")),
            Self::Template => path("topic", &format!("https://bench.test/t/{{id}}/n{index}")),
            Self::UrlPattern => path(
                "match_urlpattern",
                &format!("https://bench.test/t/:id/n{index}"),
            ),
        }
    }
}

/// `/.well-known/mercure?<name>=<value, percent-encoded>`.
fn path(name: &str, value: &str) -> String {
    format!("{HUB}?{name}={}", encode(value))
}

/// The request publishing `text` (wrapped in a JSON object) to `topic`.
pub fn publish_request(addr: SocketAddr, topic: &str, text: &str) -> Vec<u8> {
    let data = serde_json::json!({ "message": text }).to_string();
    let body = format!("topic={}&data={}", encode(topic), encode(&data));
    format!(
        "POST {HUB} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Percent-encodes everything but the unreserved characters (RFC 3986): safe in a query and
/// in a form body.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_paths() {
        assert_eq!(
            encode("https://a.b/t/{id}"),
            "https%3A%2F%2Fa.b%2Ft%2F%7Bid%7D"
        );
        assert_eq!(
            Selector::UrlPattern.matching_path(),
            "/.well-known/mercure?match_urlpattern=https%3A%2F%2Fbench.test%2Ft%2F%3Aid"
        );
        assert_eq!(
            Selector::Template.decoy_path(7),
            "/.well-known/mercure?topic=https%3A%2F%2Fbench.test%2Ft%2F%7Bid%7D%2Fn7"
        );
        let mut text = String::new();
        crate::payload::write(&mut text, 42, 1234, 60);
        let request = String::from_utf8(publish_request(
            "127.0.0.1:1".parse().unwrap(),
            TOPIC,
            &text,
        ))
        .unwrap();
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.starts_with("topic=https%3A%2F%2Fbench.test%2Ft%2F1&data=%7B%22message%22"));
        // The marker survives the form encoding untouched (`~`, digits are unreserved; `:`
        // is encoded, and the server decodes it back).
        assert!(body.contains("~seq%3A42%3A1234~"));
    }
}
