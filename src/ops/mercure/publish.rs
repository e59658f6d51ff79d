//! A Mercure publish (`POST /.well-known/mercure`, draft-08 section "Publication"), whatever
//! the transport: the publisher's token (`ops::publish::publisher`), then the content type, the
//! form and its fields, the grant for every topic, the hub. Both transports call it, so both
//! refuse the same request the same way.

use super::super::input::Limits;
use super::super::meta::RequestMeta;
use super::super::publish::Publisher;
use super::super::AppState;
use super::form::{pairs, reserved};
use super::{bad, hub_url, topic_name, MAX_UPDATE_TOPICS};
use crate::auth::{Auth, Grants};
use crate::error::ApiError;
use crate::event::Draft;
use crate::hub::Published;
use crate::sse::fields::MAX_LINE_TEXT;
use crate::sse::{EventName, LineText};
use crate::topic::MAX_MERCURE_TOPIC_LEN;

/// The content type of the answer: the update's id as text.
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Publishes the update `form` describes, for `publisher`.
///
/// # Errors
/// 415 when it is not a form; 400 or 413 for its fields; 403 when the token does not grant
/// every topic; 503 from the hub.
pub(crate) async fn publish(
    app: &AppState,
    publisher: &Publisher,
    meta: &RequestMeta,
    content_type: Option<&[u8]>,
    form: &[u8],
) -> Result<Published, ApiError> {
    if !is_form(content_type) {
        return Err(not_a_form());
    }
    let draft = update_draft(form, meta, publisher.grants(), app.input_limits())?;
    Ok(app.hub().publish(draft).await?)
}

/// The fields of a publish form.
#[derive(Default)]
struct Update {
    topics: Vec<String>,
    data: Option<String>,
    private: bool,
    id: Option<String>,
    kind: Option<String>,
    retry: Option<String>,
}

fn read_update(bytes: &[u8]) -> Result<Update, ApiError> {
    let mut update = Update::default();
    for (key, value) in pairs(bytes)? {
        let value = value.into_owned();
        match &*key {
            "topic" => update.topics.push(value),
            "data" => update.data = Some(value),
            // Present means private, whatever the value (draft-08, "Publication").
            "private" => update.private = true,
            "id" => update.id = Some(value),
            "type" => update.kind = Some(value),
            "retry" => update.retry = Some(value),
            _ => {}
        }
    }
    Ok(update)
}

/// Whether a `Content-Type` value names a form (parameters and case aside). Read as hyper's
/// `to_str` would: visible ASCII only.
pub(crate) fn is_form(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type else {
        return false;
    };
    let visible = value
        .iter()
        .all(|b| *b == b'\t' || (b' '..0x7f).contains(b));
    let mime = value.split(|b| *b == b';').next().unwrap_or_default();
    visible
        && mime
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

pub(crate) fn not_a_form() -> ApiError {
    ApiError::UnsupportedMediaType("application/x-www-form-urlencoded")
}

/// The update a form describes, checked field by field, and the publisher's grant for each of
/// its topics.
fn update_draft(
    form: &[u8],
    meta: &RequestMeta,
    grants: Option<&Grants>,
    limits: Limits,
) -> Result<Draft, ApiError> {
    let update = read_update(form)?;
    if update.topics.is_empty() {
        return Err(bad("topic is required"));
    }
    if update.topics.len() > MAX_UPDATE_TOPICS {
        return Err(ApiError::TooLarge(format!(
            "at most {MAX_UPDATE_TOPICS} topics per update"
        )));
    }
    let too_long =
        |what: &str, max: usize| ApiError::TooLarge(format!("{what} is longer than {max} bytes"));
    if update
        .topics
        .iter()
        .any(|t| t.len() > MAX_MERCURE_TOPIC_LEN)
    {
        return Err(too_long("a topic", MAX_MERCURE_TOPIC_LEN));
    }
    if update.id.as_ref().is_some_and(|i| i.len() > MAX_LINE_TEXT) {
        return Err(too_long("id", MAX_LINE_TEXT));
    }
    if update
        .kind
        .as_ref()
        .is_some_and(|k| k.len() > MAX_LINE_TEXT)
    {
        return Err(too_long("type", MAX_LINE_TEXT));
    }
    let mut topics = Vec::with_capacity(update.topics.len());
    for topic in &update.topics {
        if topic == "*" {
            return Err(bad("the topic * is reserved for the wildcard"));
        }
        if reserved(topic, || hub_url(meta)) {
            return Err(bad("topics under the hub's own URL are reserved"));
        }
        topics.push(topic_name(topic)?);
    }
    let message = update.data.unwrap_or_default();
    if message.len() > limits.message {
        return Err(ApiError::TooLarge(format!(
            "data is longer than {} bytes",
            limits.message
        )));
    }
    let custom_id = match update.id.as_deref() {
        None | Some("") => None,
        Some(id) if id.starts_with('#') || id == "earliest" => {
            return Err(bad("an id may not start with # or be earliest"));
        }
        // The hub's own ids always mean the hub's events as cursors.
        Some(id) if id.starts_with(crate::sse::fields::ID_PREFIX) => {
            return Err(bad(format!(
                "ids beginning with {} are the hub's own",
                crate::sse::fields::ID_PREFIX
            )));
        }
        Some(id) => Some(LineText::new(id, MAX_LINE_TEXT).map_err(|e| bad(format!("id {e}")))?),
    };
    let name = match update.kind.as_deref() {
        None | Some("") => EventName::message(),
        Some("mercure") => return Err(bad("the type mercure is reserved for the hub")),
        Some(kind) => EventName::any(kind).map_err(|e| bad(format!("type {e}")))?,
    };
    let retry = match update.retry.as_deref() {
        None => None,
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            Some(text.parse().map_err(|_| bad("retry is too large"))?)
        }
        Some(_) => return Err(bad("retry must be digits")),
    };
    for topic in &topics {
        Auth::may_publish(grants, topic.as_str())?;
    }
    let mut topics = topics.into_iter();
    let canonical = topics.next().ok_or_else(|| bad("topic is required"))?;
    Ok(Draft {
        topic: canonical,
        name,
        message,
        private: update.private,
        alternates: topics.collect(),
        custom_id,
        retry,
    })
}
