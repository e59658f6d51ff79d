//! Topic selectors: what a grant (or, with the Mercure endpoint, a subscription) matches.
//!
//! One type for every kind of selector a token can carry, so the checks elsewhere never care
//! which kind they hold: `*`, an exact topic, ssehub's `prefix/*`, and a WHATWG URL Pattern
//! (draft-08 `match_type: "urlpattern"`), evaluated by the `urlpattern` crate, and an RFC 6570
//! URI template. Both compile to regular expressions under hard limits (`topic::compiled`),
//! matched in linear time, whose bytes are charged to the pattern budget (`topic::budget`) for
//! as long as the selector lives.

use std::fmt;
use std::sync::Arc;

use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions};

use super::budget::{Charge, Spend, SpendError};
use super::compiled::{self, Compiled, UrlRegex};

/// Longest selector accepted in a token.
pub const MAX_SELECTOR_LEN: usize = 2048;

/// See the module docs.
#[derive(Clone)]
pub enum Selector {
    /// `*`: every topic.
    Any,
    /// One topic, byte for byte.
    Exact(String),
    /// `prefix/*`: every topic that starts with `prefix/` (stored with the slash).
    Prefix(String),
    /// A URL pattern, and the hub URL that relative topics resolve against (draft-08, "URL
    /// Pattern"); without one, only absolute URL topics can match it.
    UrlPattern(Arc<UrlMatcher>, String),
    /// An RFC 6570 URI template (legacy selectors).
    Template(Arc<TemplateMatcher>, String),
}

/// A compiled URL pattern, the base relative topics resolve against, and its charge.
#[derive(Debug)]
pub struct UrlMatcher {
    pub(super) pattern: UrlPattern<UrlRegex>,
    pub(super) base: Option<url::Url>,
    bytes: usize,
    _charge: Option<Charge>,
}

/// A compiled URI template and its charge.
#[derive(Debug)]
pub struct TemplateMatcher {
    regex: Compiled,
    _charge: Option<Charge>,
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("Any"),
            Self::Exact(topic) => write!(f, "Exact({topic:?})"),
            Self::Prefix(prefix) => write!(f, "Prefix({prefix:?})"),
            Self::UrlPattern(_, source) => write!(f, "UrlPattern({source:?})"),
            Self::Template(_, source) => write!(f, "Template({source:?})"),
        }
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Any, Self::Any) => true,
            (Self::Exact(a), Self::Exact(b)) | (Self::Prefix(a), Self::Prefix(b)) => a == b,
            (Self::UrlPattern(_, a), Self::UrlPattern(_, b))
            | (Self::Template(_, a), Self::Template(_, b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Selector {}

impl std::hash::Hash for Selector {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        self.source().hash(state);
    }
}

/// A draft-08 `match_urlpattern` selector, relative patterns resolved against `base` (the hub
/// URL), with no budget but the per-expression caps.
///
/// # Errors
/// An invalid, over-long or too complex pattern.
pub fn url_pattern_with_base(text: &str, base: &str) -> Result<Selector, SelectorError> {
    url_pattern_in(text, Some(base), &mut Spend::unlimited())
}

/// A URL pattern compiled and charged to `spend`; relative ones resolve against `base`.
///
/// # Errors
/// An invalid, over-long or too complex pattern, or one over the budget.
pub fn url_pattern_in(
    text: &str,
    base: Option<&str>,
    spend: &mut Spend,
) -> Result<Selector, SelectorError> {
    if text.len() > MAX_SELECTOR_LEN {
        return Err(SelectorError::TooLong);
    }
    let base = base.and_then(|b| url::Url::parse(b).ok());
    compiled::take_cost();
    let parsed = UrlPatternInit::parse_constructor_string::<UrlRegex>(text, base.clone())
        .and_then(|init| UrlPattern::<UrlRegex>::parse(init, UrlPatternOptions::default()));
    let (bytes, too_costly) = compiled::take_cost();
    let pattern = match parsed {
        Ok(pattern) => pattern,
        Err(_) if too_costly => return Err(SelectorError::TooComplex),
        Err(err) => return Err(SelectorError::BadPattern(err.to_string())),
    };
    let bytes = bytes + text.len();
    let charge = spend.take(bytes)?;
    Ok(Selector::UrlPattern(
        Arc::new(UrlMatcher {
            pattern,
            base,
            bytes,
            _charge: charge,
        }),
        text.to_owned(),
    ))
}

#[cfg(test)]
thread_local! {
    /// Patterns run on this thread (tests count the fan-out's work with it).
    pub(crate) static RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Why a selector could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Longer than [`MAX_SELECTOR_LEN`].
    #[error("selector longer than {MAX_SELECTOR_LEN} bytes")]
    TooLong,
    /// A `match_type` this hub does not know.
    #[error("unsupported match_type {0:?}")]
    UnknownType(String),
    /// Not a valid URL pattern or URI template.
    #[error("invalid URL pattern: {0}")]
    BadPattern(String),
    /// Compiles to an automaton past the per-expression cap.
    #[error("{}", compiled::CompileError::TooCostly)]
    TooComplex,
    /// Over the request's allowance or the hub's pattern budget.
    #[error(transparent)]
    Budget(#[from] SpendError),
}

impl Selector {
    /// A selector of the legacy `mercure.publish` / `mercure.subscribe` claim and `topic`
    /// parameter (and of ssehub's own topics): `*`, `prefix/*`, an RFC 6570 URI template, or an
    /// exact topic.
    ///
    /// # Errors
    /// An over-long selector or a malformed template.
    pub fn legacy(text: &str) -> Result<Self, SelectorError> {
        Self::legacy_in(text, &mut Spend::unlimited())
    }

    /// [`Selector::legacy`], a template's automaton charged to `spend`.
    ///
    /// # Errors
    /// As [`Selector::legacy`], and a template over the budget.
    pub fn legacy_in(text: &str, spend: &mut Spend) -> Result<Self, SelectorError> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong);
        }
        if super::template::is_template(text) {
            let regex = super::template::compile(text).map_err(|e| match e {
                super::template::TemplateError::TooComplex => SelectorError::TooComplex,
                e => SelectorError::BadPattern(e.to_string()),
            })?;
            let charge = spend.take(regex.bytes() + text.len())?;
            let matcher = TemplateMatcher {
                regex,
                _charge: charge,
            };
            return Ok(Self::Template(Arc::new(matcher), text.to_owned()));
        }
        Ok(match text {
            "*" => Self::Any,
            _ => match text.strip_suffix('*').filter(|p| p.ends_with('/')) {
                Some(prefix) => Self::Prefix(prefix.to_owned()),
                None => Self::Exact(text.to_owned()),
            },
        })
    }

    /// The text the selector was read from (`prefix/` for a prefix).
    pub fn source(&self) -> &str {
        match self {
            Self::Any => "*",
            Self::Exact(text)
            | Self::Prefix(text)
            | Self::UrlPattern(_, text)
            | Self::Template(_, text) => text,
        }
    }

    /// A draft-08 topic matcher: `match` with an optional `match_type` (`exact` when absent).
    /// `*` matches everything whatever the type.
    ///
    /// # Errors
    /// An unknown type, an invalid pattern or an over-long selector.
    pub fn matcher(text: &str, match_type: Option<&str>) -> Result<Self, SelectorError> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong);
        }
        // The type is checked first: an unknown one refuses the token whatever `match` says.
        let kind = match match_type.unwrap_or("exact") {
            kind @ ("exact" | "urlpattern") => kind,
            other => return Err(SelectorError::UnknownType(other.to_owned())),
        };
        if text == "*" {
            return Ok(Self::Any);
        }
        match kind {
            "exact" => Ok(Self::Exact(text.to_owned())),
            _ => url_pattern_in(text, None, &mut Spend::unlimited()),
        }
    }

    /// Heap bytes of the compiled automata (0 for the selectors that compile nothing).
    pub fn compiled_bytes(&self) -> usize {
        match self {
            Self::UrlPattern(matcher, _) => matcher.bytes,
            Self::Template(matcher, _) => matcher.regex.bytes(),
            _ => 0,
        }
    }

    /// Whether `topic` is selected.
    pub fn matches(&self, topic: &str) -> bool {
        #[cfg(test)]
        if matches!(self, Self::UrlPattern(..) | Self::Template(..)) {
            RUNS.with(|runs| runs.set(runs.get() + 1));
        }
        match self {
            Self::Any => true,
            Self::Exact(exact) => exact == topic,
            Self::Prefix(prefix) => topic.starts_with(prefix.as_str()),
            Self::UrlPattern(matcher, _) => url::Url::parse(topic)
                .ok()
                .or_else(|| matcher.base.as_ref().and_then(|b| b.join(topic).ok()))
                .and_then(|url| matcher.pattern.test(UrlPatternMatchInput::Url(url)).ok())
                .unwrap_or(false),
            Self::Template(matcher, _) => matcher.regex.is_match(topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_selectors() {
        assert!(Selector::legacy("*").unwrap().matches("anything"));
        let prefix = Selector::legacy("chat/*").unwrap();
        assert!(prefix.matches("chat/a") && prefix.matches("chat/a/b"));
        assert!(!prefix.matches("chat") && !prefix.matches("chatter/a"));
        let template = Selector::legacy("https://example.com/books/{id}").unwrap();
        assert!(template.matches("https://example.com/books/1"));
        assert!(!template.matches("https://example.com/books/1/2"));
        let exact = Selector::legacy("https://example.com/books/1").unwrap();
        assert!(exact.matches("https://example.com/books/1"));
        assert!(!exact.matches("https://example.com/books/2"));
        assert!(Selector::legacy(&"a".repeat(MAX_SELECTOR_LEN + 1)).is_err());
    }

    #[test]
    fn draft_08_matchers() {
        assert_eq!(
            Selector::matcher("*", Some("urlpattern")),
            Ok(Selector::Any)
        );
        assert_eq!(
            Selector::matcher("a", None),
            Ok(Selector::Exact("a".into()))
        );
        assert!(matches!(
            Selector::matcher("a", Some("regex")),
            Err(SelectorError::UnknownType(_))
        ));
        let books = Selector::matcher("https://example.com/books/:id", Some("urlpattern")).unwrap();
        assert!(books.matches("https://example.com/books/1"));
        assert!(!books.matches("https://example.com/books/1/reviews"));
        assert!(!books.matches("https://example.org/books/1"));
        assert!(!books.matches("books/1"));
        assert!(Selector::matcher("https://example.com/(", Some("urlpattern")).is_err());
    }
}
