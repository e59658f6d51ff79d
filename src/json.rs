//! JSON strings written by hand for the publish hot path (the live frame every publish encodes,
//! the answer every publish gets): the same bytes `serde_json` writes, faster.
//!
//! `serde_json` escapes a string byte by byte; a callgrind profile of a publish put that at
//! ~3,200 of ~32,000 instructions (two copies of a 100-byte message). Most messages need no
//! escaping at all, which one branch-free pass over the bytes tells; those that do (a Mercure
//! update's JSON `data` has quotes in it) are copied a plain run at a time between escapes. The
//! structs the API documents describe stay the reference: tests compare these writers with
//! `serde_json` on the same values, every ASCII character among them.

use bytes::BufMut;

/// Appends `text` as a JSON string, quoted and escaped exactly as `serde_json` does (only
/// control characters, `"` and `\\` are escaped, with `serde_json`'s short forms; everything
/// else is written as is).
pub(crate) fn string(out: &mut impl BufMut, text: &str) {
    let bytes = text.as_bytes();
    out.put_u8(b'"');
    if needs_escape(bytes) {
        escaped(out, bytes);
    } else {
        out.put_slice(bytes);
    }
    out.put_u8(b'"');
}

/// Whether any byte needs escaping (a control character, `"` or `\\`, the bytes [`ESCAPE`]
/// names), eight bytes a step: most messages need none, and a table lookup per byte took ~500
/// of a publish's ~13,600 instructions (callgrind, a 90-byte message written twice).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    /// High bit set in each byte of the result iff that byte of `word` is below `n` (exact as
    /// "any", for `n` up to 128: a borrow only ever starts at a byte that is below `n`).
    const fn below(word: u64, n: u8) -> u64 {
        word.wrapping_sub(ONES * n as u64) & !word
    }
    let mut chunks = bytes.chunks_exact(8);
    let mut found = 0u64;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        found |= below(word, 0x20)
            | below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1);
    }
    found & HIGH != 0
        || chunks
            .remainder()
            .iter()
            .any(|&b| ESCAPE[usize::from(b)] != 0)
}

/// What follows the backslash for each byte that `serde_json` escapes (`u`: `\u00XX`); 0 for
/// the bytes written as they are.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes `bytes` escaped: plain runs copied whole, each escape as `serde_json` writes it.
fn escaped(out: &mut impl BufMut, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = ESCAPE[usize::from(b)];
        if short == 0 {
            continue;
        }
        out.put_slice(&bytes[start..i]);
        start = i + 1;
        if short == b'u' {
            out.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.put_slice(&[b'\\', short]);
        }
    }
    out.put_slice(&bytes[start..]);
}

/// Appends a JSON number as `serde_json` writes it (`f64`: shortest round-trip form).
pub(crate) fn number(out: &mut impl BufMut, value: impl Number) {
    // The longest number serde_json writes (an f64 such as -1.7976931348623157e308) is 24 bytes.
    let mut buf = [0u8; 32];
    let mut rest = &mut buf[..];
    let _ = serde_json::to_writer(&mut rest, &value);
    let written = 32 - rest.len();
    out.put_slice(&buf[..written]);
}

/// The numbers [`number`] writes (all fit its buffer).
pub(crate) trait Number: serde::Serialize {}
impl Number for f64 {}
impl Number for u64 {}
impl Number for usize {}

/// Appends `text` (JSON syntax, not user input) as is.
pub(crate) fn raw(out: &mut impl BufMut, text: &str) {
    out.put_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time check against the table: every pair of bytes, at every pair of places
    /// in a 16-byte text (two words, so borrows between bytes and words are covered).
    #[test]
    fn the_escape_check_agrees_with_the_table_on_every_byte_pair() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let by_table = ESCAPE[usize::from(a)] != 0 || ESCAPE[usize::from(b)] != 0;
                for (i, j) in [(0, 1), (7, 8), (3, 12), (15, 14), (6, 7)] {
                    let mut text = [b'y'; 16];
                    text[i] = a;
                    text[j] = b;
                    assert_eq!(needs_escape(&text), by_table, "{a:#x} {b:#x} at {i}, {j}");
                }
            }
        }
    }

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
            "{\"message\":\"a \\\"quoted\\\" word\"}",
            "\u{8}\u{c}\u{b}\u{1b}\u{10}x",
            "\"",
            "\\",
        ]
        .map(str::to_owned);
        let every_ascii = (0..=0x7fu8).map(|b| format!("a{}b\"", char::from(b)));
        for text in cases.into_iter().chain(every_ascii) {
            let by_table = text.bytes().any(|b| ESCAPE[usize::from(b)] != 0);
            assert_eq!(needs_escape(text.as_bytes()), by_table, "{text:?}");
            // Every position in an 8-byte word, and the tail.
            for pad in 0..9 {
                let padded = format!("{}{text}", "y".repeat(pad));
                assert_eq!(needs_escape(padded.as_bytes()), by_table, "{padded:?}");
            }
            let mut ours = Vec::new();
            string(&mut ours, &text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }
        for value in [
            0.0,
            1.5,
            1_796_113_538.024,
            -2.0,
            1e21,
            -f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let mut ours = Vec::new();
            number(&mut ours, value);
            assert_eq!(ours, serde_json::to_vec(&value).unwrap());
        }
    }
}
