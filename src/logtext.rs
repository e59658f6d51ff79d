//! Client-controlled text in log lines, escaped so that it can never start a line or forge a
//! field: control and format characters (CR, LF, ESC, bidi controls, ...) and the Unicode line
//! and paragraph separators are written as `\u{..}` escapes, a backslash as `\\`. Everything a
//! client sends that reaches a log line (a path, a token's header or issuer, a refusal's
//! reason, a topic) goes through [`Untrusted`]; the JSON log format escapes on its own, the
//! text format does not.

use std::fmt;

/// See the module docs: `%Untrusted(text)` in a `tracing` field.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(needs_escape) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            if c == '\\' {
                f.write_str("\\\\")?;
            } else {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c == '\u{2028}' || c == '\u{2029}' || crate::sse::fields::forbidden_char(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_break_or_control_survives() {
        let forged =
            "x\n2026-12-07T03:00:00Z ERROR ssehub::app: FORGED\r\n\u{1b}[31m\u{2028}\u{202e}é\\";
        let shown = Untrusted(forged).to_string();
        assert!(!shown
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{202e}'));
        assert_eq!(
            shown,
            "x\\u{a}2026-12-07T03:00:00Z ERROR ssehub::app: FORGED\\u{d}\\u{a}\\u{1b}[31m\\u{2028}\\u{202e}é\\\\"
        );
        assert_eq!(Untrusted("/stream").to_string(), "/stream");
    }
}
