use super::*;
use crate::topic::selector::url_pattern_with_base;
use std::time::Instant;

/// ECMAScript's `\d`, `\w`, `\b` (under the `u` flag) are ASCII classes: so are ours.
#[test]
fn class_escapes_mean_what_ecmascript_means() {
    let re = |p: &str| Compiled::new(&ecmascript(p)).unwrap();
    assert!(re(r"^\w+$").is_match("abc_09"));
    assert!(!re(r"^\w+$").is_match("café"));
    assert!(!re(r"^\d$").is_match("٣")); // Arabic-Indic three: a Unicode digit, not ASCII
    assert!(re(r"^\D$").is_match("٣"));
    assert!(re(r"^\W$").is_match("é"));
    assert!(re(r"^[\w-]+$").is_match("a-b"));
    assert!(!re(r"^[\w-]+$").is_match("a.b"));
    assert!(re(r"^[^\d]+$").is_match("ab"));
    assert!(!re(r"^[^\d]+$").is_match("a1"));
    assert!(re(r"^[\W]$").is_match("é"));
    assert!(re(r"\bab\b").is_match("x ab y"));
    assert!(re(r"^\\w$").is_match("\\w"));
    assert_eq!(ecmascript(r"a\/b\.c"), r"a\/b\.c");
}

/// What costed hundreds of MiB and seconds is refused in milliseconds, or compiles small.
#[test]
fn costly_patterns_are_small_or_refused_fast() {
    let start = Instant::now();
    for pattern in [
        r"^(\w{200}0x0)$",
        r"^((?:\w{20}){20})$",
        r"^(x{1000}y{1000})$",
    ] {
        match Compiled::new(&ecmascript(pattern)) {
            Ok(compiled) => assert!(compiled.bytes() <= 2 * MAX_NFA_BYTES, "{pattern}"),
            Err(err) => assert_eq!(err, CompileError::TooCostly, "{pattern}"),
        }
    }
    // Rust's Unicode \w repeated: refused while being built, not after.
    assert_eq!(
        Compiled::new(r"^(\w{200}0x0)$").unwrap_err(),
        CompileError::TooCostly
    );
    // Generous for a loaded CI machine: this was ~3 s per pattern.
    assert!(start.elapsed().as_secs() < 2, "{:?}", start.elapsed());
    assert_eq!(Compiled::new("(").unwrap_err(), CompileError::Invalid);
}

/// A URL pattern's cost is counted, and a typical one is tens of KiB, not MiB.
#[test]
fn url_patterns_say_what_they_cost() {
    let base = "https://hub.test/.well-known/mercure";
    let typical = url_pattern_with_base("https://example.com/books/:id", base).unwrap();
    let bytes = typical.compiled_bytes();
    assert!((1_000..200_000).contains(&bytes), "{bytes}");
    let word = url_pattern_with_base(r"https://*/:a(\w{2})", base).unwrap();
    assert!(word.compiled_bytes() < 200_000, "{}", word.compiled_bytes());
    assert!(word.matches("https://x.test/ab"));
    assert!(!word.matches("https://x.test/é"));
    assert!(matches!(
        url_pattern_with_base(r"https://*/:a([^x]{1000}[^y]{1000}[^z]{1000})", base),
        Err(crate::topic::SelectorError::TooComplex)
    ));
}
