//! An incremental event-stream parser following the WHATWG HTML rules
//! ("Interpreting an event stream"): lines end at CRLF, LF or CR; a leading BOM is dropped;
//! `:` lines are comments; one optional space after the colon is removed; `data` lines are joined
//! with LF; `id` values holding NUL are ignored; `retry` takes only ASCII digits; a blank line
//! dispatches the event unless its data buffer is empty; an unfinished event at the end of the
//! stream is discarded.

/// One dispatched event, as a browser's `EventSource` would see it (and, as a schema, what the
/// API document says each event of a `text/event-stream` response is).
#[derive(Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct SseEvent {
    /// The event type (`message` when the stream named none).
    pub event: String,
    /// The data lines joined with LF.
    pub data: String,
    /// The last event id in force when it was dispatched (the `lastEventId`), if any was set.
    pub id: Option<String>,
    /// The reconnection time most recently set, if any.
    pub retry: Option<u64>,
}

/// Feeds bytes in, takes dispatched events out. Chunk boundaries may fall anywhere, even inside
/// a CRLF or a UTF-8 sequence.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry: Option<u64>,
    /// Comment lines seen so far (heartbeats are comments).
    pub comments: u64,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.feed_with(chunk, |event| out.push(event));
        out
    }

    /// Parses a chunk, handing each completed event to `sink` (no allocation of a `Vec`).
    pub fn feed_with(&mut self, mut chunk: &[u8], mut sink: impl FnMut(SseEvent)) {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(at) = memchr::memchr2(b'\n', b'\r', chunk) {
            self.line.extend_from_slice(&chunk[..at]);
            self.end_line(&mut sink);
            let cr = chunk[at] == b'\r';
            chunk = &chunk[at + 1..];
            if cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(chunk);
    }

    /// The reconnection time most recently set by the stream.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The last event id the stream set (what `EventSource` would send as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    fn end_line(&mut self, sink: &mut impl FnMut(SseEvent)) {
        let mut line = std::mem::take(&mut self.line);
        if !self.started {
            self.started = true;
            if line.starts_with("\u{feff}".as_bytes()) {
                line.drain(..3);
            }
        }
        if line.is_empty() {
            self.dispatch(sink);
        } else {
            self.process(&line);
        }
        line.clear();
        self.line = line;
    }

    fn process(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.find(':') {
            Some(0) => {
                self.comments += 1;
                return;
            }
            Some(at) => {
                let value = &text[at + 1..];
                (&text[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&text[..], ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, sink: &mut impl FnMut(SseEvent)) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        sink(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
            retry: self.retry,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_whatwg_examples() {
        let mut p = Parser::new();
        let events = p.feed(b"data: YHOO\ndata: +2\ndata: 10\n\n");
        assert_eq!(events[0].data, "YHOO\n+2\n10");

        let mut p = Parser::new();
        let events = p.feed(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n");
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].id.as_deref(), Some("1"));
        assert_eq!(events[1].data, "second event");
        assert_eq!(events[1].id.as_deref(), Some(""));
        assert_eq!(events[2].data, " third event");

        let mut p = Parser::new();
        let events = p.feed(b"data\n\ndata\ndata\n\ndata:");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "");
        assert_eq!(events[1].data, "\n");
    }

    #[test]
    fn any_line_terminator_and_any_chunking() {
        let stream = b"\xEF\xBB\xBFevent: a\r\ndata: 1\r\rdata: x\rdata: y\r\n\r\nretry: 50\nretry: x\nid: a\0b\ndata: z\n\n";
        for split in 0..stream.len() {
            let mut p = Parser::new();
            let mut events = p.feed(&stream[..split]);
            events.extend(p.feed(&stream[split..]));
            assert_eq!(events.len(), 3, "split at {split}");
            assert_eq!(events[0].event, "a");
            assert_eq!(events[0].data, "1");
            assert_eq!(events[1].data, "x\ny");
            assert_eq!(events[1].event, "message");
            assert_eq!(events[2].retry, Some(50));
            assert_eq!(events[2].id, None);
        }
    }
}
