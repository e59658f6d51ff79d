//! The fixed text a URI template or URL pattern requires of every topic it matches, so that a
//! hub with thousands of distinct patterns can skip, by a hash look-up, the ones that cannot
//! match a topic instead of running each one (see `hub::fanout::index`).
//!
//! Each is a *necessary* condition only, read conservatively: a topic that passes is still
//! tested with the full selector, and whenever the syntax leaves any doubt the literal is cut
//! short (an empty literal excludes nothing).
//!
//! - A URI template compiles to `^prefix(...)...(...)suffix$` over the raw topic
//!   (`topic::template`), so the topic starts with the text before the first `{` and ends with
//!   the text after the last `}`.
//! - A URL pattern matches a URL's components separately: a literal hostname must equal the
//!   topic URL's host, and the pathname's leading and trailing literal text must start and end
//!   the topic URL's path (both in the canonical, percent-encoded form of the WHATWG URL parser,
//!   which the `urlpattern` crate also gives its component patterns).

use super::selector::Selector;

/// Characters with a meaning in URL pattern syntax: a literal ends at any of them.
const SPECIAL: &[char] = &[':', '*', '(', ')', '{', '}', '\\', '?', '+'];

/// What a selector requires of a topic's probe text (the raw topic for a template, the URL's
/// path for a URL pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literals<'a> {
    /// For URL patterns: the hostname, when the pattern's is literal (`None`: any host).
    pub host: Option<&'a str>,
    /// The probe starts with this.
    pub prefix: &'a str,
    /// The probe ends with this (after the prefix: they never overlap).
    pub suffix: &'a str,
}

/// What a topic offers to compare with [`Literals`]: a template's probe is the topic itself; a
/// URL pattern's is its URL's host and path, resolved against the pattern's base if relative.
pub fn url_probe(topic: &str, base: Option<&url::Url>) -> Option<(Option<String>, String)> {
    let url = url::Url::parse(topic)
        .ok()
        .or_else(|| base.and_then(|b| b.join(topic).ok()))?;
    Some((url.host_str().map(str::to_owned), url.path().to_owned()))
}

impl Selector {
    /// The literal text this selector requires; `None` for selectors that are not evaluated per
    /// topic (exact, prefix, any).
    pub fn literals(&self) -> Option<Literals<'_>> {
        match self {
            Self::Template(_, source) => Some(template_literals(source)),
            Self::UrlPattern(pattern, _) => {
                let pattern = &pattern.pattern;
                let host = pattern.hostname();
                let path = pattern.pathname();
                let (prefix, suffix) = pathname_literals(path);
                Some(Literals {
                    host: (!host.contains(SPECIAL)).then_some(host),
                    prefix,
                    suffix,
                })
            }
            Self::Any | Self::Exact(_) | Self::Prefix(_) => None,
        }
    }

    /// The base URL relative topics resolve against, for a URL pattern.
    pub fn base(&self) -> Option<&url::Url> {
        match self {
            Self::UrlPattern(pattern, _) => pattern.base.as_ref(),
            _ => None,
        }
    }
}

fn template_literals(source: &str) -> Literals<'_> {
    let prefix = source.find('{').map_or(source, |at| &source[..at]);
    let suffix = source.rfind('}').map_or("", |at| &source[at + 1..]);
    Literals {
        host: None,
        prefix,
        suffix,
    }
}

/// The leading and trailing literal text of a canonical pathname pattern.
fn pathname_literals(path: &str) -> (&str, &str) {
    let Some(first) = path.find(SPECIAL) else {
        // No part at all: the whole path is literal (kept as prefix only).
        return (path, "");
    };
    let mut prefix = &path[..first];
    // A part right after a `/` takes that `/` as its own optional prefix (`/books/:id?` also
    // matches `/books`), and dot segments may be normalised differently: stay short.
    prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    if prefix.contains("/.") {
        prefix = "";
    }
    (prefix, pathname_suffix(path))
}

/// The literal text after the last part of a pathname pattern, or "" when unsure.
fn pathname_suffix(path: &str) -> &str {
    if path.contains('\\') || path.contains('(') {
        return "";
    }
    let Some(last) = path.rfind(SPECIAL) else {
        return "";
    };
    let after = &path[last + 1..];
    let tail = if path[last..].starts_with(':') {
        // `:name` then literal text; a name may hold letters, digits, `_` and `$` (and other
        // Unicode identifier characters: give up on those).
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(after.len());
        if after[end..].chars().next().is_some_and(|c| !c.is_ascii()) {
            return "";
        }
        &after[end..]
    } else {
        after
    };
    if tail.contains("/.") {
        return "";
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::selector::url_pattern_with_base;

    fn literals(selector: &Selector) -> (Option<&str>, &str, &str) {
        let l = selector.literals().unwrap();
        (l.host, l.prefix, l.suffix)
    }

    #[test]
    fn templates_require_their_leading_and_trailing_text() {
        let t = Selector::legacy("https://example.com/books/{id}/reviews").unwrap();
        assert_eq!(
            literals(&t),
            (None, "https://example.com/books/", "/reviews")
        );
        let t = Selector::legacy("{+all}").unwrap();
        assert_eq!(literals(&t), (None, "", ""));
        assert_eq!(Selector::legacy("a/*").unwrap().literals(), None);
    }

    #[test]
    fn url_patterns_require_host_and_path_literals() {
        let cases = [
            (
                "https://example.com/books/:id",
                (Some("example.com"), "/books", ""),
            ),
            (
                "https://example.com/books/:id/n5",
                (Some("example.com"), "/books", "/n5"),
            ),
            (
                "https://example.com/books/:id?",
                (Some("example.com"), "/books", ""),
            ),
            (
                "https://example.com/a/:x-b",
                (Some("example.com"), "/a", "-b"),
            ),
            ("https://:sub.example.com/a", (None, "/a", "")),
            (
                "https://example.com/*.json",
                (Some("example.com"), "", ".json"),
            ),
            (
                "https://example.com/a/(\\d+)/b",
                (Some("example.com"), "/a", ""),
            ),
            (
                "https://example.com/a{/b}?/c",
                (Some("example.com"), "/a", "/c"),
            ),
        ];
        for (text, expected) in cases {
            let s = Selector::matcher(text, Some("urlpattern")).unwrap();
            assert_eq!(literals(&s), expected, "{text}");
        }
    }

    /// Every topic a selector matches passes its literals: checked over a table of selectors and
    /// topics, matching or not.
    #[test]
    fn literals_never_exclude_a_match() {
        let selectors = [
            Selector::legacy("https://example.com/books/{id}").unwrap(),
            Selector::legacy("https://example.com/{+p}/end").unwrap(),
            Selector::legacy("/search{?q}").unwrap(),
            url_pattern_with_base("/books/:id?", "https://example.com/.well-known/mercure")
                .unwrap(),
            url_pattern_with_base("https://example.com/books/:id/n5", "https://h/").unwrap(),
            url_pattern_with_base("https://example.com/a{/b}?/c", "https://h/").unwrap(),
            url_pattern_with_base("https://example.com/café/:x", "https://h/").unwrap(),
            url_pattern_with_base("https://*.example.com/*", "https://h/").unwrap(),
        ];
        let topics = [
            "https://example.com/books/1",
            "https://example.com/books/",
            "https://example.com/books",
            "https://example.com/books/1/n5",
            "https://EXAMPLE.com/books/1",
            "https://example.com/x/y/end",
            "/search?q=1",
            "/search",
            "/books/1",
            "/books",
            "https://example.com/a/b/c",
            "https://example.com/a/c",
            "https://example.com/caf%C3%A9/1",
            "https://example.com/café/1",
            "https://www.example.com/anything",
        ];
        let mut matched = 0;
        for selector in &selectors {
            let literals = selector.literals().unwrap();
            for topic in topics {
                if !selector.matches(topic) {
                    continue;
                }
                matched += 1;
                let (host, probe) = match selector {
                    Selector::Template(..) => (None, topic.to_owned()),
                    _ => url_probe(topic, selector.base()).unwrap(),
                };
                if let Some(required) = literals.host {
                    assert_eq!(host.as_deref(), Some(required), "{selector:?} {topic}");
                }
                assert!(
                    probe.len() >= literals.prefix.len() + literals.suffix.len()
                        && probe.starts_with(literals.prefix)
                        && probe.ends_with(literals.suffix),
                    "{selector:?} matches {topic} but {literals:?} excludes {probe}"
                );
            }
        }
        assert!(
            matched >= 12,
            "only {matched} matches: the table tests little"
        );
    }
}
