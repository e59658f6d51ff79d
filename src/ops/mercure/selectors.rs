//! A subscription's selectors, read from its query and compiled under the pattern budget.
//!
//! Exact topics cost nothing to read. URI templates and URL patterns compile to automata
//! (`topic::compiled`): each is charged to the request's allowance and the hub's budget
//! (`topic::budget`), and the compiling runs on tokio's blocking pool, one request at a time,
//! so that a client sending costly patterns never holds an async worker that other clients'
//! streams and publishes need.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{bad, clean, hub_url, topic_name};
use crate::error::ApiError;
use crate::ops::meta::RequestMeta;
use crate::ops::subscriptions::Matcher;
use crate::ops::AppState;
use crate::topic::budget::{Spend, SpendError};
use crate::topic::{selector, Pattern, Selector, SelectorError};

/// Requests whose patterns compile at once.
const COMPILING_AT_ONCE: usize = 1;

/// Where compiles wait their turn (one per hub).
#[derive(Debug)]
pub(crate) struct Compiler(Arc<Semaphore>);

impl Default for Compiler {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(COMPILING_AT_ONCE)))
    }
}

/// One selector parameter as sent: its key and value.
pub(super) type Raw = (String, String);

/// The patterns and the subscriptions API's view of them, in the order sent, deduplicated.
pub(super) struct Selectors {
    pub(super) patterns: Vec<Pattern>,
    pub(super) matchers: Vec<Matcher>,
}

/// Reads and compiles `raw` (`topic`, `match`, `match_exact`, `match_urlpattern` pairs).
///
/// # Errors
/// 400 for an invalid selector, one too complex or more than the request's allowance; 503 when
/// the hub's pattern budget is used up.
pub(super) async fn read(
    app: &AppState,
    meta: &RequestMeta,
    raw: Vec<Raw>,
) -> Result<Selectors, ApiError> {
    let costly = raw.iter().any(|(key, value)| {
        key == "match_urlpattern" || (key == "topic" && crate::topic::template::is_template(value))
    });
    let mut spend = app.pattern_spend();
    let base = hub_url(meta);
    if !costly {
        return parse(raw, &base, &mut spend);
    }
    let permit = Arc::clone(&app.compiler().0)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::ShuttingDown)?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        parse(raw, &base, &mut spend)
    })
    .await
    .map_err(|_| ApiError::BadRequest("the selectors could not be compiled".into()))?
}

fn parse(raw: Vec<Raw>, base: &str, spend: &mut Spend) -> Result<Selectors, ApiError> {
    let mut out = Selectors {
        patterns: Vec::with_capacity(raw.len()),
        matchers: Vec::with_capacity(raw.len()),
    };
    for (key, value) in raw {
        let pattern = match key.as_str() {
            "topic" => legacy_pattern(&value, spend)?,
            "match_urlpattern" => {
                clean(&value, &key)?;
                match value.as_str() {
                    "*" => Pattern::Prefix("".into()),
                    _ => Pattern::Matcher(
                        selector::url_pattern_in(&value, Some(base), spend).map_err(refused)?,
                    ),
                }
            }
            _ => {
                clean(&value, &key)?;
                match value.as_str() {
                    "*" => Pattern::Prefix("".into()),
                    _ => Pattern::Exact(topic_name(&value)?),
                }
            }
        };
        let matcher = match key.as_str() {
            "topic" => Matcher::Legacy(value),
            "match_urlpattern" => Matcher::Typed("urlpattern", value),
            _ => Matcher::Typed("exact", value),
        };
        if !out.patterns.contains(&pattern) {
            out.patterns.push(pattern);
            out.matchers.push(matcher);
        }
    }
    Ok(out)
}

/// A legacy `topic` selector as a subscription pattern.
fn legacy_pattern(value: &str, spend: &mut Spend) -> Result<Pattern, ApiError> {
    clean(value, "topic")?;
    if value.is_empty() {
        return Err(bad("topic is empty"));
    }
    Ok(match Selector::legacy_in(value, spend).map_err(refused)? {
        Selector::Any => Pattern::Prefix("".into()),
        Selector::Prefix(prefix) => Pattern::Prefix(prefix.into()),
        Selector::Exact(topic) => Pattern::Exact(topic_name(&topic)?),
        matcher => Pattern::Matcher(matcher),
    })
}

/// The response to a selector that could not be had.
fn refused(err: SelectorError) -> ApiError {
    match err {
        SelectorError::Budget(SpendError::Hub) => ApiError::PatternsFull(err.to_string()),
        err => bad(err.to_string()),
    }
}
