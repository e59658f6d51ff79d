//! Regular expressions compiled under hard limits, with their cost in bytes: what every URI
//! template and URL pattern a client sends becomes.
//!
//! Why not `regex::Regex`: its defaults let one 60-byte pattern such as `\w{200}` compile to
//! hundreds of MiB (a Unicode `\w` is ~700 ranges, repeated 200 times) and take seconds of CPU
//! before any size check, and it cannot say how much memory a compiled pattern holds. Here:
//!
//! - the automaton is capped at [`MAX_NFA_BYTES`] while it is built (the compiler stops as soon
//!   as it passes the cap, so a refused pattern costs microseconds, not the full build);
//! - only the engines whose memory is fixed when the pattern is compiled run: a full DFA where
//!   one fits in [`MAX_DFA_BYTES`] (a template then matches a topic in ~25 ns instead of the
//!   PikeVM's ~700 ns: patterns run under the fan-out lock for every new topic), the PikeVM
//!   otherwise, and for captures the one-pass DFA (capped like the automaton). No lazy DFA,
//!   whose cache would grow per searching thread after the charge, and no backtracker (its
//!   visited set grows with the text);
//! - [`Compiled::bytes`] is the heap the automata and their search cache hold, which the
//!   pattern budget charges (`topic::budget`).
//!
//! URL Pattern regular expressions are ECMAScript's with the `u` flag, where `\d`, `\w` and
//! `\b` are ASCII classes; [`ecmascript`] rewrites them into ASCII classes before compiling (in
//! Rust's syntax they are Unicode classes: another meaning, and ~1.6 MiB each).

use std::cell::Cell;

use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_automata::Input;

/// Largest automaton one expression may compile to.
pub const MAX_NFA_BYTES: usize = 256 * 1024;
/// Largest full DFA built for one expression (a bigger one is not built: the PikeVM runs).
pub const MAX_DFA_BYTES: usize = 64 * 1024;
/// Automata with more states than this get no full DFA (building one would likely pass
/// [`MAX_DFA_BYTES`] anyway).
const DFA_STATE_LIMIT: usize = 400;
/// Deepest nesting of groups and repetitions accepted.
const NEST_LIMIT: u32 = 32;

/// A compiled expression and what it costs.
#[derive(Debug)]
pub struct Compiled {
    regex: Regex,
    source: String,
    bytes: usize,
}

/// Why an expression was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Not a valid expression.
    #[error("invalid regular expression")]
    Invalid,
    /// Its automaton would pass [`MAX_NFA_BYTES`].
    #[error("pattern too complex (its automaton would exceed {} KiB)", MAX_NFA_BYTES / 1024)]
    TooCostly,
}

impl Compiled {
    /// Compiles `pattern` (Rust syntax) under the limits above.
    ///
    /// # Errors
    /// [`CompileError`].
    pub fn new(pattern: &str) -> Result<Self, CompileError> {
        let config = Regex::config()
            .nfa_size_limit(Some(MAX_NFA_BYTES))
            .onepass_size_limit(Some(MAX_NFA_BYTES))
            .dfa_size_limit(Some(MAX_DFA_BYTES))
            .dfa_state_limit(Some(DFA_STATE_LIMIT))
            .hybrid(false)
            .backtrack(false);
        let regex = Regex::builder()
            .syntax(syntax::Config::new().nest_limit(NEST_LIMIT))
            .configure(config)
            .build(pattern)
            .map_err(|err| {
                if err.size_limit().is_some() {
                    CompileError::TooCostly
                } else {
                    CompileError::Invalid
                }
            })?;
        let bytes = regex.memory_usage() + regex.create_cache().memory_usage() + pattern.len();
        Ok(Self {
            regex,
            source: pattern.to_owned(),
            bytes,
        })
    }

    /// Heap bytes held: the automata, one search cache as created, the source.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `text` matches (anywhere, unless the pattern is anchored).
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The pattern's source.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

thread_local! {
    /// Bytes compiled by [`UrlRegex::parse`] on this thread since the last [`take_cost`], and
    /// whether a compile was refused as too costly: how the URL Pattern parser, which calls
    /// `parse` with no context, reports what it compiled.
    static COST: Cell<(usize, bool)> = const { Cell::new((0, false)) };
}

/// Bytes compiled and whether one expression was too costly, since the last call (this thread).
pub(crate) fn take_cost() -> (usize, bool) {
    COST.with(|cost| cost.replace((0, false)))
}

/// A URL Pattern component's regular expression, for the `urlpattern` crate.
#[derive(Debug)]
pub struct UrlRegex(Compiled);

impl urlpattern::regexp::RegExp for UrlRegex {
    fn syntax() -> urlpattern::RegexSyntax {
        urlpattern::RegexSyntax::Rust
    }

    fn parse(pattern: &str, _flags: &str, _force_eval: bool) -> Result<Self, ()> {
        match Compiled::new(&ecmascript(pattern)) {
            Ok(compiled) => {
                COST.with(|cost| {
                    let (bytes, refused) = cost.get();
                    cost.set((bytes + compiled.bytes(), refused));
                });
                Ok(Self(compiled))
            }
            Err(err) => {
                if err == CompileError::TooCostly {
                    COST.with(|cost| cost.set((cost.get().0, true)));
                }
                Err(())
            }
        }
    }

    fn matches<'a>(&self, text: &'a str) -> Option<Vec<Option<&'a str>>> {
        let regex = &self.0.regex;
        let mut caps = regex.create_captures();
        regex.search_captures(&Input::new(text), &mut caps);
        if !caps.is_match() {
            return None;
        }
        Some(
            (1..caps.group_len())
                .map(|group| caps.get_group(group).map(|span| &text[span]))
                .collect(),
        )
    }

    fn pattern_string(&self) -> &str {
        self.0.as_str()
    }
}

/// Rewrites ECMAScript's ASCII class escapes (`\d \D \w \W \b \B`, as under the `u` flag) into
/// Rust classes that mean the same; every other escape and character is kept.
pub fn ecmascript(pattern: &str) -> String {
    const DIGIT: &str = "0-9";
    const WORD: &str = "0-9A-Za-z_";
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let class = match next {
                    'd' => Some((DIGIT, false)),
                    'D' => Some((DIGIT, true)),
                    'w' => Some((WORD, false)),
                    'W' => Some((WORD, true)),
                    _ => None,
                };
                match (class, next) {
                    (Some((set, false)), _) if in_class => out.push_str(set),
                    (Some((set, negated)), _) => {
                        out.push_str(if negated { "[^" } else { "[" });
                        out.push_str(set);
                        out.push(']');
                    }
                    (None, 'b' | 'B') if !in_class => {
                        out.push_str("(?-u:\\");
                        out.push(next);
                        out.push(')');
                    }
                    _ => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A leading `^` or `]` is part of the class's syntax, not its end.
                let mut rest = chars.clone();
                if rest.next() == Some('^') {
                    out.push('^');
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
