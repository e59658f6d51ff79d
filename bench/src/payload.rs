//! The published message text: `~seq:<n>:<µs>~` followed by `x` padding up to a chosen size.
//!
//! `<n>` is a sequence number unique in the run and `<µs>` the send time in microseconds since
//! the run's [`Clock`] epoch. The marker uses only characters that JSON never escapes, so a
//! subscriber finds it verbatim both in ssehub's JSON envelope and in nchan's raw data.

use std::time::Instant;

const PREFIX: &[u8] = b"~seq:";

/// The run's time base, shared by publishers and subscribers (one process, one epoch).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes the message for `seq`, sent at `sent_us`, padded to `size` bytes, into `out`.
pub fn write(out: &mut String, seq: u64, sent_us: u64, size: usize) {
    use std::fmt::Write;
    out.clear();
    let _ = write!(out, "~seq:{seq}:{sent_us}~");
    while out.len() < size {
        out.push('x');
    }
}

/// Finds the marker in an event's data: `(seq, sent_us)`.
pub fn find(data: &[u8]) -> Option<(u64, u64)> {
    let at = memchr::memmem::find(data, PREFIX)? + PREFIX.len();
    let (seq, rest) = number(&data[at..])?;
    let rest = rest.strip_prefix(b":")?;
    let (sent, rest) = number(rest)?;
    rest.starts_with(b"~").then_some((seq, sent))
}

fn number(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = text[..digits]
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some((value, &text[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_inside_json_and_raw() {
        let mut text = String::new();
        write(&mut text, 42, 123_456, 100);
        assert_eq!(text.len(), 100);
        assert_eq!(find(text.as_bytes()), Some((42, 123_456)));
        let json =
            serde_json::json!({"timestamp": 1.5, "data": {"message": text, "topic": "bench"}})
                .to_string();
        assert_eq!(find(json.as_bytes()), Some((42, 123_456)));
        assert_eq!(find(b"{\"status\":\"connected\"}"), None);
        assert_eq!(find(b"~seq:1:2"), None);
        write(&mut text, 7, 8, 4);
        assert_eq!(text, "~seq:7:8~");
    }
}
