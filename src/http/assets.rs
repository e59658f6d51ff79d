//! The demo page and its hub console view: the files of `web/`, embedded at compile time (one
//! binary, no build step, no CDN), each served once at its own path: `web/NAME` at `/NAME`,
//! `web/index.html` at `/`; and the browser client library, `clients/js/ssehub.js`, at
//! `/ssehub.js`. The scripts are native ES modules: the page loads the two views'
//! entries (`app.js`, `console.js`) with `<script type="module">` and they `import` the rest,
//! so a module both views use (`shared.js`) is fetched and run once.
//!
//! Caching: a file changes only with the binary, so each carries a strong `ETag` (a hash of its
//! content, computed once when the router is built) and `Cache-Control: no-cache`: a browser
//! revalidates on every load and gets `304 Not Modified`, without a body, until the file changes.
//! The library is also served under its version (`/ssehub@VERSION.js`, `immutable`), for apps
//! that pin it: its `VERSION` changes with its content (`clients/js/test/version.test.mjs`).
//!
//! [`FILES`] is the one table: the routes and their OpenAPI entries ([`WebFiles`]) are both
//! made from it, so the document cannot miss a file.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Object, ResponseBuilder, Type};
use utoipa::Modify;

use super::Routes;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One served file: where it is served, where it lives in the repository, its content and type.
struct File {
    path: &'static str,
    source: &'static str,
    body: &'static str,
    kind: &'static str,
}

/// `web!("name", type)`: the file `web/name`, served at `/name`.
macro_rules! web {
    ($name:literal, $kind:expr) => {
        File {
            path: concat!("/", $name),
            source: concat!("web/", $name),
            body: include_str!(concat!("../../web/", $name)),
            kind: $kind,
        }
    };
}

/// Every file served: the page's, and the browser client library (`clients/js/ssehub.js`, at
/// `/ssehub.js`) that the page uses and that apps may load from the hub.
const FILES: [File; 13] = [
    File {
        path: "/",
        source: "web/index.html",
        body: include_str!("../../web/index.html"),
        kind: HTML,
    },
    File {
        path: "/ssehub.js",
        source: "clients/js/ssehub.js",
        body: LIBRARY,
        kind: JS,
    },
    web!("style.css", CSS),
    web!("feed.css", CSS),
    web!("console.css", CSS),
    web!("app.js", JS),
    web!("feed.js", JS),
    web!("stream.js", JS),
    web!("publish.js", JS),
    web!("hub.js", JS),
    web!("shared.js", JS),
    web!("console.js", JS),
    web!("inspector.js", JS),
];

/// The client library (the second entry of [`FILES`]).
const LIBRARY: &str = include_str!("../../clients/js/ssehub.js");

/// How long a versioned copy of the library may be cached: a year, and never revalidated.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The library's version, as its `export const VERSION = "…"` line says.
fn library_version() -> &'static str {
    LIBRARY
        .lines()
        .find_map(|line| line.strip_prefix("export const VERSION = \""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("0.0.0")
}

/// Where the library is served under its version, e.g. `/ssehub@0.1.0.js`: an app that names
/// it there may cache it for good (`immutable`); `/ssehub.js` is always the current one.
pub(crate) fn versioned_library_path() -> String {
    format!("/ssehub@{}.js", library_version())
}

pub(crate) fn router() -> Routes {
    let routes = FILES.iter().fold(Routes::default(), |routes, file| {
        let (path, body, kind) = (file.path, file.body, file.kind);
        let etag = etag(body);
        routes.route(
            path,
            get(move |request: HeaderMap| async move {
                serve(&request, &etag, kind, body, "no-cache")
            }),
        )
    });
    let etag = etag(LIBRARY);
    routes.route(
        &versioned_library_path(),
        get(
            move |request: HeaderMap| async move { serve(&request, &etag, JS, LIBRARY, IMMUTABLE) },
        ),
    )
}

/// The file, or `304 Not Modified` when the request's `If-None-Match` names its ETag.
fn serve(
    request: &HeaderMap,
    etag: &HeaderValue,
    kind: &'static str,
    body: &'static str,
    cache_control: &'static str,
) -> Response {
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        ),
    ];
    let current = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .map(|tag| tag.trim())
        // Weak comparison, as RFC 9110 asks for If-None-Match.
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag.as_bytes());
    if current {
        (StatusCode::NOT_MODIFIED, cache).into_response()
    } else {
        (cache, [(header::CONTENT_TYPE, kind)], body).into_response()
    }
}

/// A strong ETag for `body`: its 64-bit FNV-1a hash, quoted (the same for the same bytes in any
/// build, so an upgrade that leaves a file alone leaves browsers' copies valid).
fn etag(body: &str) -> HeaderValue {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("hex digits are a header value")
}

/// The OpenAPI entries of [`FILES`]: `GET` on each path, operation id `web_` and the file's
/// name (`web_app_js`, `web_index_html`), unique as the names are.
pub(super) struct WebFiles;

impl Modify for WebFiles {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let string = || Object::with_type(Type::String);
        for file in &FILES {
            let (path, kind, source) = (file.path, file.kind, file.source);
            let name = path
                .strip_prefix('/')
                .filter(|n| !n.is_empty())
                .unwrap_or("index.html");
            let media = kind.split(';').next().unwrap_or(kind);
            let file = ResponseBuilder::new()
                .description(format!("`{source}`"))
                .header(
                    "ETag",
                    HeaderBuilder::new()
                        .schema(string())
                        .description(Some("A hash of the content"))
                        .build(),
                )
                .content(media, ContentBuilder::new().schema(Some(string())).build());
            let not_modified = ResponseBuilder::new()
                .description("Not modified: `If-None-Match` names the current ETag");
            let if_none_match = ParameterBuilder::new()
                .name("If-None-Match")
                .parameter_in(ParameterIn::Header)
                .schema(Some(string()));
            let operation = OperationBuilder::new()
                .operation_id(Some(format!("web_{}", name.replace(['.', '-'], "_"))))
                .tag("page")
                .summary(Some(format!("The file `{source}`")))
                .parameter(if_none_match)
                .response("200", file)
                .response("304", not_modified)
                .build();
            if source == "clients/js/ssehub.js" {
                // The versioned copy too (same content, cached for good).
                let mut versioned = operation.clone();
                versioned.operation_id = Some("web_ssehub_js_versioned".to_owned());
                versioned.summary =
                    Some(format!("The file `{source}`, at its version (immutable)"));
                openapi.paths.add_path_operation(
                    versioned_library_path(),
                    vec![HttpMethod::Get],
                    versioned,
                );
            }
            openapi
                .paths
                .add_path_operation(path, vec![HttpMethod::Get], operation);
        }
    }
}
