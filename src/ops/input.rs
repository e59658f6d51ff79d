//! A publish body, in hand, into a [`Draft`]: content types, size limits, validation.
//!
//! Everything a publisher sends is checked here, once, into the hub's types, whichever
//! transport read the body (the direct path reads it with its head; the hyper path collects it
//! in `http::body`).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::hub::{Draft, TopicName};
use crate::sse::EventName;

/// Which body forms an endpoint reads.
#[derive(Debug, Clone, Copy)]
pub enum Accept {
    /// `application/json` only (`POST /api/messages`).
    Json,
    /// JSON, `application/x-www-form-urlencoded` or `text/plain` (`POST /publish`).
    Any,
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body in bytes.
    pub body: usize,
    /// Largest message in bytes.
    pub message: usize,
    /// Longest time the body may take to arrive.
    pub timeout: std::time::Duration,
}

/// The form body of `POST /publish`: the same fields; `private` is present and not
/// `""`/`false`/`off`/`0` for a private event.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // named only in the API document
pub(crate) struct PublishForm {
    /// The text to deliver (not only white space).
    #[schema(pattern = r"[^\s\u0085]")]
    message: String,
    /// The topic (default `default`).
    #[schema(max_length = 128, pattern = r"^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*$")]
    topic: Option<String>,
    /// The SSE event type (default `message`).
    #[schema(max_length = 64, pattern = r"^[A-Za-z0-9_.:-]+$")]
    event: Option<String>,
    /// Private when present and not `""`, `false`, `off` or `0`.
    private: Option<String>,
}

/// The plain-text body of `POST /publish`: the message itself, UTF-8, not only white space.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, pattern = r"[^\s\u0085]")]
#[allow(dead_code)] // named only in the API document
pub(crate) struct PublishText(String);

/// Fields found in the body (or, for `/publish`, the query string).
#[derive(Debug, Default)]
struct Fields {
    message: Option<String>,
    topic: Option<String>,
    event: Option<String>,
    private: bool,
}

/// Validates a publish whose body has been read whole: both transports call it (through
/// `ops::publish`), so both say the same of the same request.
///
/// # Errors
/// 400 or 413 as the README lists them.
pub(crate) fn draft(
    kind: Kind,
    bytes: &[u8],
    query: Option<&str>,
    accept: Accept,
    limits: Limits,
) -> Result<Draft, ApiError> {
    let mut fields = match kind {
        Kind::Json => json_fields(bytes)?,
        Kind::Form => form_fields(bytes)?,
        Kind::Text => Fields {
            message: Some(
                std::str::from_utf8(bytes)
                    .map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))?
                    .to_owned(),
            ),
            ..Fields::default()
        },
    };
    if let (Accept::Any, Some(query)) = (accept, query) {
        let extra = form_fields(query.as_bytes())?;
        fields.topic = fields.topic.or(extra.topic);
        fields.event = fields.event.or(extra.event);
        fields.private |= extra.private;
    }
    let message = fields
        .message
        .filter(|m| !m.trim().is_empty())
        .ok_or(ApiError::MessageRequired)?;
    if message.len() > limits.message {
        return Err(ApiError::TooLarge(format!(
            "message is longer than {} bytes",
            limits.message
        )));
    }
    let topic = match fields.topic {
        Some(topic) => TopicName::new(&topic).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        None => TopicName::default_topic(),
    };
    let name = match fields.event {
        Some(event) => EventName::new(&event)
            .map_err(|e| ApiError::BadRequest(format!("invalid event: {e}")))?,
        None => EventName::message(),
    };
    Ok(Draft {
        topic,
        name,
        message,
        private: fields.private,
        alternates: Vec::new(),
        custom_id: None,
        retry: None,
    })
}

/// How a publish body is read, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Json,
    Form,
    Text,
}

/// The body form a `Content-Type` value names, if `accept` takes it.
///
/// # Errors
/// 415 for anything else.
pub(crate) fn content_kind(content_type: Option<&[u8]>, accept: Accept) -> Result<Kind, ApiError> {
    let expected = match accept {
        Accept::Json => "application/json",
        Accept::Any => "application/json, application/x-www-form-urlencoded or text/plain",
    };
    let mime = content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    let is = |m: &str, name: &str| m.eq_ignore_ascii_case(name);
    let kind = match mime {
        Some(m) if is(m, "application/json") => Kind::Json,
        Some(m)
            if m.len() >= 17
                && m.is_char_boundary(12)
                && m.is_char_boundary(m.len() - 5)
                && is(&m[..12], "application/")
                && is(&m[m.len() - 5..], "+json") =>
        {
            Kind::Json
        }
        Some(m) if is(m, "application/x-www-form-urlencoded") => Kind::Form,
        Some(m) if is(m, "text/plain") => Kind::Text,
        _ => return Err(ApiError::UnsupportedMediaType(expected)),
    };
    match (accept, kind) {
        (Accept::Json, Kind::Json) | (Accept::Any, _) => Ok(kind),
        _ => Err(ApiError::UnsupportedMediaType(expected)),
    }
}

/// The JSON body, read without building a tree: each field stays raw until it is checked.
#[derive(Deserialize)]
struct JsonBody<'a> {
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    private: Option<bool>,
}

/// The JSON body of a native publish, as most publishers send it: every field of the right
/// type. Read in one pass; a body that does not fit is read again by [`JsonBody`], which tells
/// what is wrong with it. Its schema is the API document's.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct PublishJson<'a> {
    /// The text to deliver (not only white space, at most `--max-message` bytes).
    #[serde(borrow, default)]
    #[schema(value_type = String, required = true, example = "Hello from curl", pattern = r"[^\s\u0085]")]
    message: Option<std::borrow::Cow<'a, str>>,
    /// The topic: 1 to 128 of `A-Z a-z 0-9 _ . : -` in `/`-separated segments.
    #[serde(borrow, default)]
    #[schema(
        value_type = Option<String>,
        example = "default",
        max_length = 128,
        pattern = r"^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*$"
    )]
    topic: Option<std::borrow::Cow<'a, str>>,
    /// The SSE event type: 1 to 64 of `A-Z a-z 0-9 _ . : -`.
    #[serde(borrow, default)]
    #[schema(value_type = Option<String>, example = "message", max_length = 64, pattern = r"^[A-Za-z0-9_.:-]+$")]
    event: Option<std::borrow::Cow<'a, str>>,
    /// Deliver only to streams whose token grants `subscribe` on the topic.
    #[serde(default)]
    private: Option<bool>,
}

fn json_fields(bytes: &[u8]) -> Result<Fields, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::BadRequest("expected a JSON object".into()));
    }
    if let Ok(body) = serde_json::from_slice::<PublishJson<'_>>(bytes) {
        return Ok(Fields {
            message: body.message.map(std::borrow::Cow::into_owned),
            topic: body.topic.map(std::borrow::Cow::into_owned),
            event: body.event.map(std::borrow::Cow::into_owned),
            private: body.private.unwrap_or(false),
        });
    }
    let body: JsonBody<'_> = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::BadRequest(format!("invalid JSON: {err}")))?;
    let text = |raw: Option<&RawValue>, key: &str| -> Result<Option<String>, ApiError> {
        match raw.map(RawValue::get) {
            None | Some("null") => Ok(None),
            Some(json) => serde_json::from_str::<String>(json).map(Some).map_err(|_| {
                if key == "message" {
                    ApiError::MessageRequired
                } else {
                    ApiError::BadRequest(format!("{key} must be a string"))
                }
            }),
        }
    };
    Ok(Fields {
        message: text(body.message, "message")?,
        topic: text(body.topic, "topic")?,
        event: text(body.event, "event")?,
        private: body.private.unwrap_or(false),
    })
}

fn form_fields(bytes: &[u8]) -> Result<Fields, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|err| ApiError::BadRequest(format!("invalid form body: {err}")))?;
    let mut fields = Fields::default();
    for (key, value) in pairs {
        if key == "private" {
            // Mercure's form: present means private (`private=on`), unless plainly off.
            fields.private = !matches!(value.as_str(), "" | "false" | "off" | "0");
            continue;
        }
        let slot = match key.as_str() {
            "message" => &mut fields.message,
            "topic" => &mut fields.topic,
            "event" => &mut fields.event,
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_read_case_insensitively_with_parameters() {
        let kind = |value: &str, accept| content_kind(Some(value.as_bytes()), accept).ok();
        for (value, expected) in [
            ("application/json", Some(Kind::Json)),
            ("Application/JSON; charset=utf-8", Some(Kind::Json)),
            ("application/ld+json", Some(Kind::Json)),
            ("APPLICATION/MERGE-PATCH+JSON", Some(Kind::Json)),
            ("application/+json", Some(Kind::Json)),
            ("application/json5", None),
            ("application/x-www-form-urlencoded", Some(Kind::Form)),
            ("Text/Plain ; charset=utf-8", Some(Kind::Text)),
            ("text/html", None),
            ("é+json", None),
            ("applicationé/+json", None),
            ("", None),
        ] {
            assert_eq!(kind(value, Accept::Any), expected, "{value}");
        }
        assert_eq!(kind("text/plain", Accept::Json), None);
        assert_eq!(kind("application/ld+json", Accept::Json), Some(Kind::Json));
        assert!(content_kind(None, Accept::Any).is_err());
        assert!(content_kind(Some(b"\xff"), Accept::Any).is_err());
    }

    #[test]
    fn json_bodies_read_in_one_pass_or_two_say_the_same() {
        let read = |body: &str| match json_fields(body.as_bytes()) {
            Ok(f) => format!("{:?} {:?} {:?} {}", f.message, f.topic, f.event, f.private),
            Err(err) => format!("error {}: {err}", err.status()),
        };
        for (body, expected) in [
            (r#"{"message": "hi"}"#, r#"Some("hi") None None false"#),
            (r#"{"message": "a\"b\u00e9", "topic": "t", "event": "e", "private": true}"#, r#"Some("a\"bé") Some("t") Some("e") true"#),
            (r#"{"message": null, "topic": null}"#, "None None None false"),
            (r#"{"message": "x", "extra": [1, {"a": 2}]}"#, r#"Some("x") None None false"#),
            (r#"{"message": 5}"#, "error 400 Bad Request: message is required"),
            (r#"{"message": "x", "topic": 5}"#, "error 400 Bad Request: topic must be a string"),
            (r#"{"message": "x", "event": {}}"#, "error 400 Bad Request: event must be a string"),
            (r#"{"message": "x", "message": "y"}"#, "error 400 Bad Request: invalid JSON: duplicate field `message` at line 1 column 26"),
            (r#"{"message": "x", "private": "yes"}"#, "error 400 Bad Request: invalid JSON: invalid type: string \"yes\", expected a boolean at line 1 column 33"),
            (r#"{"message": "x""#, "error 400 Bad Request: invalid JSON: EOF while parsing an object at line 1 column 15"),
            ("[1]", "error 400 Bad Request: expected a JSON object"),
        ] {
            assert_eq!(read(body), expected, "{body}");
        }
    }
}
