//! The AsyncAPI 3.0 document of the event streams: native burst and live streams on `/stream`,
//! the hub console's topic table on `/api/topics/stream`, and Mercure subscriptions on
//! `/.well-known/mercure`. No maintained crate generates AsyncAPI,
//! so it is built here with `serde_json` from the constants the streams use (paths, modes,
//! event types, `close` statuses) and the very structs their events serialize (`event.rs`),
//! so it cannot drift from them. `tests/api-fuzz/` validates it against the AsyncAPI 3.0 JSON
//! schema.

use std::sync::OnceLock;

use serde_json::{json, Value};
use utoipa::PartialSchema;

use crate::auth::{COOKIE, HUB_PATH, LEGACY_COOKIE};
use crate::event::{control, Burst, Live, Status};
use crate::http::topics_stream::{Topics, TOPICS_EVENT, TOPICS_STREAM_PATH, UNAVAILABLE_EVENT};
use crate::ops::stream::{MODE_BURST, MODE_LIVE, STREAM_PATH};
use crate::sse::fields::DEFAULT_EVENT;

/// The document as JSON, made once.
pub(super) fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| build().to_string())
}

/// A Rust type's schema, as the OpenAPI document has it (plain JSON Schema for these structs).
fn schema_of<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or(Value::Null)
}

/// `{"timestamp": ..., "data": <data>}`: the envelope of every native event's `data:` line.
fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["timestamp", "data"],
        "properties": {
            "timestamp": {"type": "number", "description": "Seconds since the Unix epoch (a burst copy: when it is due)"},
            "data": data,
        },
    })
}

/// The SSE fields of a message, as AsyncAPI message headers.
fn sse_fields(event: Value, with_id: bool) -> Value {
    let mut properties = json!({ "event": event });
    if with_id {
        properties["id"] = json!({"type": "string", "description": "The event's id (`urn:ssehub:MS-SEQ`, or the Mercure publisher's); resume with `Last-Event-ID`"});
    }
    json!({
        "type": "object",
        "description": "The SSE fields of the frame (`event:`, `id:`), not HTTP headers",
        "properties": properties,
    })
}

fn named(name: &str) -> Value {
    json!({"type": "string", "const": name})
}

/// The `mode` query of a native channel's HTTP binding.
fn native_query(mode: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "mode": {"type": "string", "const": mode},
            "topic": {"type": "array", "items": {"type": "string"}, "description": "Topics (repeatable; `prefix/*`, `*`); default `default`"},
            "lastEventId": {"type": "string", "description": "Resume after this id (the `Last-Event-ID` header wins)"},
        },
    })
}

fn build() -> Value {
    let event_type = json!({"type": "string", "description": format!("The publisher's event type; `{DEFAULT_EVENT}` by default")});
    let message = |name: &str, title: &str, summary: &str, headers: Value, payload: Value| {
        json!({
            "name": name,
            "title": title,
            "summary": summary,
            "contentType": "application/json",
            "headers": headers,
            "payload": payload,
        })
    };
    let keepalive = message(
        control::KEEPALIVE,
        "Handshake",
        "Sent at once when a native stream opens (after `retry:` on live streams)",
        sse_fields(named(control::KEEPALIVE), false),
        envelope(json!({
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "const": "connected"}},
        })),
    );
    let gap = message(
        control::GAP,
        "Gap",
        "The requested id is older than history, unknown or malformed: the stream continues from the oldest event held",
        sse_fields(named(control::GAP), false),
        envelope(json!({
            "type": "object",
            "required": ["status", "requested", "message"],
            "properties": {
                "status": {"type": "string", "const": control::GAP},
                "requested": {"type": "string", "description": "The id the client asked to resume after"},
                "message": {"type": "string"},
            },
        })),
    );
    let mut close_data = json!({"$ref": "#/components/schemas/CloseData"});
    close_data = json!({"allOf": [close_data, {"properties": {"status": {"enum": control::CLOSE_STATUSES}}}]});
    let close = message(
        control::CLOSE,
        "Close",
        "The stream's last event; the response ends after it (`EventSource` then reconnects with `Last-Event-ID`)",
        sse_fields(named(control::CLOSE), false),
        envelope(close_data),
    );
    let topics = message(
        TOPICS_EVENT,
        "Topic table",
        "The topics the caller may know of, with subscribers, newest id, history and events per second",
        sse_fields(named(TOPICS_EVENT), false),
        envelope(json!({"$ref": "#/components/schemas/TopicTable"})),
    );
    let unavailable = message(
        UNAVAILABLE_EVENT,
        "Broker unavailable",
        "The topic table could not be read this second; the stream goes on and tries again",
        sse_fields(named(UNAVAILABLE_EVENT), false),
        envelope(json!({"$ref": "#/components/schemas/CloseData"})),
    );
    let burst = message(
        "burst",
        "Burst copy",
        "One of `--repeats` copies of the first matching event, `--interval` apart, all with the event's id",
        sse_fields(event_type.clone(), true),
        envelope(json!({"$ref": "#/components/schemas/BurstData"})),
    );
    let live = message(
        "live",
        "Live event",
        "A matching event, once, in publish order (`replayed` when sent from history on resume)",
        sse_fields(event_type.clone(), true),
        envelope(json!({"$ref": "#/components/schemas/LiveData"})),
    );
    let update = json!({
        "name": "update",
        "title": "Mercure update",
        "summary": "An update as published: `id`, `event` (only when not `message`), `retry` if given, and its data, one `data:` line per line",
        "contentType": "text/plain",
        "headers": {
            "type": "object",
            "description": "The SSE fields of the frame, not HTTP headers",
            "properties": {
                "id": {"type": "string"},
                "event": event_type,
                "retry": {"type": "integer", "minimum": 0},
            },
        },
        "payload": {"type": "string", "description": "The update's `data`, as published"},
    });
    let response_headers = |extra: Value| {
        let mut properties = json!({
            "Content-Type": {"type": "string", "const": "text/event-stream"},
            "Cache-Control": {"type": "string", "const": "no-cache"},
        });
        if let (Some(properties), Some(extra)) = (properties.as_object_mut(), extra.as_object()) {
            properties.extend(extra.clone());
        }
        json!({"http": {"headers": {"type": "object", "properties": properties}, "bindingVersion": "0.3.0"}})
    };
    let native_bindings = response_headers(json!({}));
    let mercure_bindings = response_headers(json!({
        "Link": {"type": "string", "description": "`<hub URL>; rel=\"mercure\"`"},
        "Mercure-Last-Event-ID": {"type": "string", "description": "The event preceding the first one sent: with a cursor, the cursor, or `earliest` when it is unknown or gone; without one, the newest event issued before the stream began (`earliest` if none), a cursor to resume from without missing anything"},
    }));
    let with_bindings = |mut message: Value, bindings: &Value| {
        message["bindings"] = bindings.clone();
        message
    };
    let channel_messages = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| {
                (
                    (*n).to_owned(),
                    json!({"$ref": format!("#/components/messages/{n}")}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let operation = |channel: &str, names: &[&str], summary: &str, query: Value| {
        json!({
            "action": "send",
            "summary": summary,
            "channel": {"$ref": format!("#/channels/{channel}")},
            "messages": names.iter().map(|n| json!({"$ref": format!("#/channels/{channel}/messages/{n}")})).collect::<Vec<_>>(),
            "bindings": {"http": {"method": "GET", "query": query, "bindingVersion": "0.3.0"}},
            "security": [
                {"$ref": "#/components/securitySchemes/bearer"},
                {"$ref": "#/components/securitySchemes/cookie"},
                {"$ref": "#/components/securitySchemes/legacyCookie"},
                {"$ref": "#/components/securitySchemes/queryToken"},
            ],
        })
    };
    let burst_names = [control::KEEPALIVE, control::GAP, "burst", control::CLOSE];
    let console_names = [TOPICS_EVENT, UNAVAILABLE_EVENT, control::CLOSE];
    let live_names = [control::KEEPALIVE, control::GAP, "live", control::CLOSE];
    let native_comments = "Comments (`: heartbeat` after `--heartbeat` of silence, `: lagged ...` before a slow stream ends) carry no event.";
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "ssehub event streams",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Server-Sent Events (`text/event-stream`) served by ssehub: native burst and live streams, and Mercure subscriptions. Requests and errors are in the OpenAPI document at `/api/openapi.json`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "hub": {
                "host": "localhost:8000",
                "protocol": "http",
                "description": "The hub (HTTP/1.1, or HTTP/2 with TLS or prior knowledge); the host is the one you run",
            },
        },
        "channels": {
            "nativeBurst": {
                "address": STREAM_PATH,
                "title": "Native stream, burst mode",
                "description": format!("`GET {STREAM_PATH}?mode={MODE_BURST}` (the default): `{}`, then the next matching event published after the stream opened (or the first after `Last-Event-ID`) `--repeats` times, then `{}` with status `{}`. {native_comments}", control::KEEPALIVE, control::CLOSE, control::COMPLETE),
                "servers": [{"$ref": "#/servers/hub"}],
                "messages": channel_messages(&burst_names),
            },
            "nativeLive": {
                "address": STREAM_PATH,
                "title": "Native stream, live mode",
                "description": format!("`GET {STREAM_PATH}?mode={MODE_LIVE}`: `retry:` and `{}`, then every matching event once (first those after `Last-Event-ID`, marked `replayed`); it ends only with `{}` (shutdown, token expiry, `--max-stream-lifetime`). {native_comments}", control::KEEPALIVE, control::CLOSE),
                "servers": [{"$ref": "#/servers/hub"}],
                "messages": channel_messages(&live_names),
            },
            "topicTable": {
                "address": TOPICS_STREAM_PATH,
                "title": "Topic table (the hub console's feed)",
                "description": format!("`GET {TOPICS_STREAM_PATH}?limit=N`: `retry:`, then `{TOPICS_EVENT}` at once and once a second (at most `limit` topics, the busiest when there are more), `{UNAVAILABLE_EVENT}` while the broker cannot be read; ends with `{}` (shutdown, token expiry, `--max-stream-lifetime`).", control::CLOSE),
                "servers": [{"$ref": "#/servers/hub"}],
                "messages": channel_messages(&console_names),
            },
            "mercure": {
                "address": HUB_PATH,
                "title": "Mercure subscription",
                "description": format!("`GET {HUB_PATH}?topic=...` (draft-07) or `?match=...` / `?match_urlpattern=...` (draft-08): a `:` comment at once, then each matching update as published. The hub's own endings are comments, never events."),
                "servers": [{"$ref": "#/servers/hub"}],
                "messages": channel_messages(&["update"]),
            },
        },
        "operations": {
            "sendBurst": operation("nativeBurst", &burst_names, "The hub sends a burst", native_query(MODE_BURST)),
            "sendLive": operation("nativeLive", &live_names, "The hub sends live events", native_query(MODE_LIVE)),
            "sendTopicTable": operation("topicTable", &console_names, "The hub sends the topic table", json!({
                "type": "object",
                "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 1000}},
            })),
            "sendMercureUpdates": operation("mercure", &["update"], "The hub sends Mercure updates", json!({
                "type": "object",
                "properties": {
                    "topic": {"type": "array", "items": {"type": "string"}, "description": "draft-07 selectors: topic, `*`, URI template"},
                    "match": {"type": "array", "items": {"type": "string"}},
                    "match_urlpattern": {"type": "array", "items": {"type": "string"}},
                    "last_event_id": {"type": "string"},
                    "lastEventID": {"type": "string"},
                },
            })),
        },
        "components": {
            "schemas": {
                "BurstData": schema_of::<Burst<'static>>(),
                "LiveData": schema_of::<Live<'static>>(),
                "CloseData": schema_of::<Status<'static>>(),
                "TopicTable": schema_of::<Topics<'static>>(),
                "TopicInfo": schema_of::<crate::hub::TopicInfo>(),
            },
            "messages": {
                control::KEEPALIVE: with_bindings(keepalive, &native_bindings),
                control::GAP: with_bindings(gap, &native_bindings),
                control::CLOSE: with_bindings(close, &native_bindings),
                "burst": with_bindings(burst, &native_bindings),
                "live": with_bindings(live, &native_bindings),
                TOPICS_EVENT: with_bindings(topics, &native_bindings),
                UNAVAILABLE_EVENT: with_bindings(unavailable, &native_bindings),
                "update": with_bindings(update, &mercure_bindings),
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "`Authorization: Bearer <JWT>`"},
                "cookie": {"type": "httpApiKey", "name": COOKIE, "in": "cookie", "description": "The draft-08 cookie (or `--cookie-name`)"},
                "legacyCookie": {"type": "httpApiKey", "name": LEGACY_COOKIE, "in": "cookie", "description": "The draft-07 cookie"},
                "queryToken": {"type": "httpApiKey", "name": "authorization", "in": "query", "description": "With `--allow-query-token` only"},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_message_and_operation_reference_resolves() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        assert_eq!(doc["asyncapi"], "3.0.0");
        let text = document();
        let mut refs = 0;
        for piece in text.split("\"$ref\":\"#/").skip(1) {
            let pointer = format!("/{}", &piece[..piece.find('"').unwrap()]);
            assert!(doc.pointer(&pointer).is_some(), "dangling $ref #{pointer}");
            refs += 1;
        }
        assert!(refs > 20, "{refs}");
    }

    #[test]
    fn it_names_the_events_and_paths_the_streams_use() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        assert_eq!(doc["channels"]["nativeBurst"]["address"], STREAM_PATH);
        assert_eq!(doc["channels"]["mercure"]["address"], HUB_PATH);
        let messages = &doc["components"]["messages"];
        for name in [control::KEEPALIVE, control::GAP, control::CLOSE] {
            assert_eq!(
                messages[name]["headers"]["properties"]["event"]["const"],
                name
            );
        }
        let statuses = &messages[control::CLOSE]["payload"]["properties"]["data"]["allOf"][1];
        assert_eq!(
            statuses["properties"]["status"]["enum"],
            json!(control::CLOSE_STATUSES)
        );
        let burst = &doc["components"]["schemas"]["BurstData"];
        for field in ["message", "topic", "sequence", "total", "remaining"] {
            assert!(burst["properties"][field].is_object(), "{field}: {burst}");
        }
    }
}
