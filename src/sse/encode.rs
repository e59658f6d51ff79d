//! Builds event-stream frames.
//!
//! A frame is built once and its bytes shared by every subscriber. Multi-line text is split on
//! every line terminator the parser recognises (CRLF, LF, CR), one `data:` line per line, so a
//! browser reassembles exactly the text that was sent.

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{EventId, EventName, LineText};

/// Builder of one event-stream frame (one event, or comments, or a `retry:`).
///
/// # Examples
/// ```
/// use ssehub::sse::{EventId, EventName, FrameBuilder};
/// let frame = FrameBuilder::new()
///     .event(&EventName::message())
///     .id(EventId::new(1700000000000, 7))
///     .data("two\nlines")
///     .finish();
/// assert_eq!(&frame[..], b"event: message\nid: urn:ssehub:1700000000000-7\ndata: two\ndata: lines\n\n");
/// ```
#[derive(Debug, Default)]
pub struct FrameBuilder {
    buf: BytesMut,
}

impl FrameBuilder {
    /// An empty frame.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(128),
        }
    }

    /// An empty frame with room for `bytes` (one allocation for a frame of that size).
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(bytes),
        }
    }

    /// Adds `event: NAME`.
    pub fn event(mut self, name: &EventName) -> Self {
        self.line(b"event: ", name.as_str().as_bytes());
        self
    }

    /// Adds `id: MS-SEQ`. Ids are numbers, so they cannot hold a line break or NUL.
    pub fn id(mut self, id: EventId) -> Self {
        self.line(b"id: ", id.to_string().as_bytes());
        self
    }

    /// Adds `id: TEXT` for a publisher-chosen id (validated single-line text).
    pub fn id_text(mut self, id: &LineText) -> Self {
        self.line(b"id: ", id.as_str().as_bytes());
        self
    }

    /// Adds `retry: MS`.
    pub fn retry(mut self, millis: u64) -> Self {
        self.line(b"retry: ", millis.to_string().as_bytes());
        self
    }

    /// Adds the text as `data:` lines, one per line of the text.
    pub fn data(mut self, text: &str) -> Self {
        for line in split_lines(text) {
            self.line(b"data: ", line.as_bytes());
        }
        self
    }

    /// Adds one `data:` line that `write` fills in place, with no text of its own to copy: for
    /// JSON, whose writers escape every line break, so the line is always one. (A line break
    /// written anyway would be cut from the frame: see the debug assertion.)
    pub fn json_data(mut self, write: impl FnOnce(&mut BytesMut)) -> Self {
        self.buf.put_slice(b"data: ");
        let start = self.buf.len();
        write(&mut self.buf);
        debug_assert!(memchr::memchr2(b'\r', b'\n', &self.buf[start..]).is_none());
        self.buf.put_u8(b'\n');
        self
    }

    /// Adds the text as comment lines (`: ...`), one per line of the text.
    pub fn comment(mut self, text: &str) -> Self {
        for line in split_lines(text) {
            self.line(b": ", line.as_bytes());
        }
        self
    }

    /// Ends the frame with the blank line that dispatches it.
    pub fn finish(mut self) -> Bytes {
        self.buf.put_u8(b'\n');
        self.buf.freeze()
    }

    fn line(&mut self, field: &[u8], value: &[u8]) {
        self.buf.reserve(field.len() + value.len() + 1);
        self.buf.put_slice(field);
        self.buf.put_slice(value);
        self.buf.put_u8(b'\n');
    }
}

/// Splits on CRLF, LF and CR, as the event-stream parser does. Empty text is one empty line.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        // memchr, not `str::find` with a char set: this runs over every published message.
        match memchr::memchr2(b'\r', b'\n', current.as_bytes()) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::parse::Parser;

    fn roundtrip(frame: &Bytes) -> Vec<crate::sse::SseEvent> {
        let mut parser = Parser::new();
        parser.feed(frame)
    }

    #[test]
    fn encodes_byte_exact() {
        let frame = FrameBuilder::new()
            .event(&EventName::new("close").unwrap())
            .id(EventId::new(5, 42))
            .data("{\"a\":1}")
            .finish();
        assert_eq!(
            &frame[..],
            b"event: close\nid: urn:ssehub:5-42\ndata: {\"a\":1}\n\n"
        );
        let retry = FrameBuilder::new().retry(2000).comment("hi").finish();
        assert_eq!(&retry[..], b"retry: 2000\n: hi\n\n");
    }

    #[test]
    fn every_line_terminator_becomes_a_data_line() {
        for (text, lines) in [
            ("a\nb", vec!["a", "b"]),
            ("a\r\nb", vec!["a", "b"]),
            ("a\rb", vec!["a", "b"]),
            ("a\n\nb", vec!["a", "", "b"]),
            ("a\n", vec!["a", ""]),
            ("", vec![""]),
            ("\r\n\r", vec!["", "", ""]),
        ] {
            let got: Vec<&str> = split_lines(text).collect();
            assert_eq!(got, lines, "{text:?}");
        }
    }

    #[test]
    fn browser_reassembles_the_exact_text() {
        // LF, CR and CRLF are all normalised to LF by the parser (WHATWG joins data lines with
        // LF), so a text round-trips exactly when its line breaks are LF.
        for text in [
            "plain",
            "two\nlines",
            "trailing\n",
            "\nleading",
            "",
            " leading space",
            "data: fake",
            "x\n\nevent: close\ndata: forged\n\n",
            "id: 99\nretry: 1\n",
            "colon: : :",
            "unicode ✓ 🎉",
        ] {
            let frame = FrameBuilder::new()
                .event(&EventName::message())
                .id(EventId::new(0, 1))
                .data(text)
                .finish();
            let events = roundtrip(&frame);
            assert_eq!(events.len(), 1, "{text:?} produced {events:?}");
            assert_eq!(events[0].event, "message");
            assert_eq!(events[0].data, text);
            assert_eq!(events[0].id.as_deref(), Some("urn:ssehub:0-1"));
            assert_eq!(events[0].retry, None);
        }
    }

    #[test]
    fn cr_and_crlf_cannot_forge_fields() {
        for text in [
            "a\revent: close",
            "a\r\nid: 5\r\n\r\ndata: x",
            "a\r\rretry: 9",
        ] {
            let frame = FrameBuilder::new()
                .id(EventId::new(0, 1))
                .data(text)
                .finish();
            let events = roundtrip(&frame);
            assert_eq!(events.len(), 1, "{text:?}");
            assert_eq!(events[0].event, "message");
            assert_eq!(events[0].id.as_deref(), Some("urn:ssehub:0-1"));
            assert_eq!(events[0].retry, None);
            assert_eq!(
                events[0].data,
                text.replace("\r\n", "\n").replace('\r', "\n")
            );
        }
    }

    #[test]
    fn comments_cannot_forge_events() {
        let frame = FrameBuilder::new()
            .comment("x\ndata: forged\n\nevent: close")
            .finish();
        assert!(roundtrip(&frame).is_empty());
    }

    #[test]
    fn event_names_refuse_line_breaks() {
        for bad in ["", "a\nb", "a\rb", "a b", "x:\u{0}", &"a".repeat(65)] {
            assert!(EventName::new(bad).is_err(), "{bad:?}");
        }
        assert!(EventName::new("chat.message:v2-x_y").is_ok());
    }
}
