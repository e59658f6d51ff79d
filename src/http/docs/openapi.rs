//! The OpenAPI 3.1 document: every operation is a handler's `#[utoipa::path]`, listed here once,
//! but the page's files, added from their table (`assets::WebFiles`); the security schemes are
//! the ways a token may be presented (`crate::auth`).

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::auth::{COOKIE, LEGACY_COOKIE};
use crate::http::assets::WebFiles;
use crate::http::{
    health, mercure, messages, stream, subscriptions, tickets, topics, topics_stream,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ssehub",
        description = "A Server-Sent Events hub: native publish and stream endpoints and the Mercure protocol. \
            Every error is `{\"error\": \"...\"}` (`ErrorBody`). The event streams themselves are described by \
            the AsyncAPI document at `/api/asyncapi.json`.",
    ),
    paths(
        super::openapi_json, super::asyncapi_json,
        health::ping, health::ready,
        messages::api_messages, messages::publish,
        stream::open_stream,
        topics::list, topics::events, topics_stream::open,
        mercure::subscribe, mercure::publish::publish, mercure::metadata,
        subscriptions::list, subscriptions::doc_selector, subscriptions::doc_pair,
        subscriptions::doc_single,
        tickets::create,
    ),
    components(schemas(
        crate::error::ErrorBody,
        stream::StreamMode,
        stream::TopicPattern,
        topics::AnyTopic,
    )),
    modifiers(&SecuritySchemes, &WebFiles),
    tags(
        (name = "publish", description = "Native publishing"),
        (name = "stream", description = "Native event streams"),
        (name = "subscribe", description = "Single-use subscribe tickets, for a plain EventSource"),
        (name = "topics", description = "Topics and their history"),
        (name = "mercure", description = "The Mercure protocol"),
        (name = "health", description = "Liveness and readiness"),
        (name = "documents", description = "This document and the AsyncAPI one"),
        (name = "page", description = "The demo page"),
    ),
)]
struct ApiDoc;

/// The ways to present a token (README, "Presenting a token").
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "`Authorization: Bearer <JWT>`: legacy `mercure` claims or draft-08 access tokens",
            ))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let cookie = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(name, what)))
        };
        components.add_security_scheme(
            "cookie",
            cookie(
                COOKIE,
                "The draft-08 cookie (or the name of `--cookie-name`)",
            ),
        );
        components
            .add_security_scheme("legacyCookie", cookie(LEGACY_COOKIE, "The draft-07 cookie"));
        components.add_security_scheme(
            "queryToken",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "authorization",
                "The legacy query parameter, on streams only, with `--allow-query-token`",
            ))),
        );
    }
}

/// The document as JSON, made once.
pub(super) fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default())
}

#[cfg(test)]
mod tests;
