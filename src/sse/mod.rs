//! The `text/event-stream` wire format, and nothing else.
//!
//! [`encode`] turns validated values into bytes: field values that could carry a line break are
//! split into several lines, and the single-line fields (`event:`, `id:`) only accept the
//! newtypes of [`fields`], which cannot hold one. So no payload can forge a field or an event.
//! [`parse`] is a WHATWG-conformant parser, used by the tests, the CLI client and the benchmark.

pub mod encode;
pub mod fields;
pub mod parse;

pub use encode::FrameBuilder;
pub use fields::{
    forbidden_char, has_forbidden_char, BadEventId, EventId, EventName, FieldError, LineText,
};
pub use parse::{Parser, SseEvent};
