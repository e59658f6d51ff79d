//! JSON strings written by hand for the publish hot path (the live frame every publish encodes,
//! the answer every publish gets): the same bytes `serde_json` writes, faster.
//!
//! `serde_json` escapes a string byte by byte; a callgrind profile of a publish put that at
//! ~3,200 of ~32,000 instructions (two copies of a 100-byte message). Most messages need no
//! escaping at all, which one branch-free pass over the bytes tells; only those that do go
//! through `serde_json`. The structs the API documents describe stay the reference: tests
//! compare these writers with `serde_json` on the same values.

/// Appends `text` as a JSON string, quoted and escaped exactly as `serde_json` does (only
/// control characters, `"` and `\` are escaped; everything else is written as is).
pub(crate) fn string(out: &mut Vec<u8>, text: &str) {
    let plain = !text.bytes().fold(false, |escape, b| {
        escape | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Appends a JSON number as `serde_json` writes it (`f64`: shortest round-trip form).
pub(crate) fn number(out: &mut Vec<u8>, value: impl serde::Serialize) {
    let _ = serde_json::to_writer(&mut *out, &value);
}

/// Appends `text` (JSON syntax, not user input) as is.
pub(crate) fn raw(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let cases = [
            "",
            "plain text",
            "x".repeat(1000).as_str(),
            "quote \" backslash \\ slash /",
            "line\nbreak\r\ttab \u{0} \u{1f} \u{7f}",
            "unicode é ✓ 🎉 \u{2028} \u{2029} \u{85}",
            "</script><!--",
            "\"",
            "\\",
        ]
        .map(str::to_owned);
        for text in cases {
            let mut ours = Vec::new();
            string(&mut ours, &text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }
        for value in [0.0, 1.5, 1_796_113_538.024, -2.0, 1e21] {
            let mut ours = Vec::new();
            number(&mut ours, value);
            assert_eq!(ours, serde_json::to_vec(&value).unwrap());
        }
    }
}
