//! RFC 6570 URI templates as topic selectors (draft-07 `topic=https://example.com/books/{id}`),
//! matched by turning the template into an anchored regular expression compiled under the
//! caps of `topic::compiled`, whose matching is linear in the topic's length whatever the
//! template.
//!
//! Each expression matches what its operator can expand to: `{var}` a value without `/`, `?`
//! or `#`; `{+var}` anything; `{#var}` a `#` then anything; `{.var}`, `{/var}`, `{;var}` zero or
//! more labels, segments or parameters; `{?var}`, `{&var}` an optional query part.

use super::compiled::{CompileError, Compiled};

/// Longest template accepted.
pub const MAX_TEMPLATE_LEN: usize = 2048;

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// An expression is not closed, or empty.
    #[error("malformed URI template expression")]
    Malformed,
    /// Longer than [`MAX_TEMPLATE_LEN`].
    #[error("URI template longer than {MAX_TEMPLATE_LEN} bytes")]
    TooLong,
    /// Its automaton would pass the per-expression cap.
    #[error("{}", CompileError::TooCostly)]
    TooComplex,
}

/// Whether `text` holds a template expression at all.
pub fn is_template(text: &str) -> bool {
    text.contains('{') && text.contains('}')
}

/// The regular expression matching every topic the template can expand to.
///
/// # Errors
/// [`TemplateError`] for a malformed or over-long template.
pub fn compile(template: &str) -> Result<Compiled, TemplateError> {
    if template.len() > MAX_TEMPLATE_LEN {
        return Err(TemplateError::TooLong);
    }
    let mut pattern = String::with_capacity(template.len() * 2 + 2);
    pattern.push('^');
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        pattern.push_str(&regex::escape(&rest[..open]));
        let close = rest[open..].find('}').ok_or(TemplateError::Malformed)? + open;
        let expression = &rest[open + 1..close];
        if expression.is_empty() || expression.contains('{') {
            return Err(TemplateError::Malformed);
        }
        let operator = expression.chars().next().filter(|c| "+#./;?&".contains(*c));
        pattern.push_str(match operator {
            None => "[^/?#]*",
            Some('+') => ".*",
            Some('#') => "(?:#.*)?",
            Some('.') => r"(?:\.[^/?#.]*)*",
            Some('/') => "(?:/[^/?#]*)*",
            Some(';') => "(?:;[^/?#;]*)*",
            _ => r"(?:[?&][^#]*)?",
        });
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(TemplateError::Malformed);
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    Compiled::new(&pattern).map_err(|e| match e {
        CompileError::TooCostly => TemplateError::TooComplex,
        CompileError::Invalid => TemplateError::Malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_their_expansions() {
        let cases: [(&str, &[&str], &[&str]); 5] = [
            (
                "https://example.com/books/{id}",
                &["https://example.com/books/1", "https://example.com/books/"],
                &[
                    "https://example.com/books/1/x",
                    "https://example.org/books/1",
                ],
            ),
            (
                "https://example.com/{+path}",
                &["https://example.com/a/b/c"],
                &["http://example.com/a"],
            ),
            (
                "https://example.com/books{/id,page}",
                &["https://example.com/books/1/2", "https://example.com/books"],
                &["https://example.com/booksx"],
            ),
            (
                "/search{?q,lang}",
                &["/search?q=a&lang=en", "/search"],
                &["/searching"],
            ),
            ("a.b{.ext}", &["a.b.json", "a.b"], &["aXb.json"]),
        ];
        for (template, good, bad) in cases {
            let regex = compile(template).unwrap();
            for topic in good {
                assert!(regex.is_match(topic), "{template} should match {topic}");
            }
            for topic in bad {
                assert!(
                    !regex.is_match(topic),
                    "{template} should not match {topic}"
                );
            }
        }
        assert!(compile("https://x/{id").is_err());
        assert!(compile("https://x/{}").is_err());
        assert!(compile("https://x/id}").is_err());
    }
}
