//! The page's files as a browser loads them: `/`, the style sheets and `<script type="module">`
//! entries it names, then every static `import … from "…"` of each module, followed to the end.
//! Each resolves (200, its content type), no content is served under two paths in one page
//! load, and each answers `If-None-Match` with its ETag with `304 Not Modified`.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::Url;

use crate::common::{spawn_app, TestApp};

/// The value of `name="…"` in each `<tag …>` of `html` that contains `marker`.
fn attributes(html: &str, tag: &str, marker: &str, name: &str) -> Vec<String> {
    let open = format!("<{tag} ");
    let key = format!("{name}=\"");
    html.split(open.as_str())
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap()])
        .filter(|attrs| attrs.contains(marker))
        .map(|attrs| {
            let value = &attrs[attrs.find(&key).unwrap() + key.len()..];
            value[..value.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The specifiers of a module's static imports and re-exports (`import … from '…'`,
/// `import '…'`, `export … from '…'`), each statement read to its `;`.
fn imports(module: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut statement: Option<String> = None;
    for line in module.lines() {
        let line = line.trim();
        let starts = (line.starts_with("import") && !line.starts_with("import("))
            || (line.starts_with("export") && line.contains(" from "));
        if statement.is_none() && starts {
            statement = Some(String::new());
        }
        let Some(text) = statement.as_mut() else {
            continue;
        };
        text.push_str(line);
        if line.contains(';') {
            let quote = text
                .trim_end_matches(';')
                .trim_end()
                .chars()
                .last()
                .unwrap();
            let end = text.rfind(quote).unwrap();
            let start = text[..end].rfind(quote).unwrap() + 1;
            found.push(text[start..end].to_owned());
            statement = None;
        }
    }
    found
}

struct Fetched {
    status: u16,
    kind: String,
    etag: String,
    cache: String,
    body: String,
}

async fn fetch(app: &TestApp, url: &Url) -> Fetched {
    let response = app.client.get(url.clone()).send().await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    Fetched {
        status: response.status().as_u16(),
        kind: header(CONTENT_TYPE),
        etag: header(ETAG),
        cache: header(CACHE_CONTROL),
        body: response.text().await.unwrap(),
    }
}

/// The client library at its version: the same bytes as `/ssehub.js`, cached for good; another
/// version is not served (404), so a pinned URL never silently gets other content.
#[tokio::test]
async fn the_library_is_served_at_its_version_as_immutable() {
    let app = spawn_app(|_| {}).await;
    let base = Url::parse(&app.url("/")).unwrap();
    let current = fetch(&app, &base.join("/ssehub.js").unwrap()).await;
    let version = current
        .body
        .lines()
        .find_map(|l| l.strip_prefix("export const VERSION = \""))
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let pinned = fetch(&app, &base.join(&format!("/ssehub@{version}.js")).unwrap()).await;
    assert_eq!(pinned.status, 200);
    assert_eq!(pinned.body, current.body);
    assert_eq!(pinned.etag, current.etag);
    assert_eq!(pinned.kind, "text/javascript; charset=utf-8");
    assert_eq!(pinned.cache, "public, max-age=31536000, immutable");
    assert_eq!(current.cache, "no-cache");
    let other = fetch(&app, &base.join("/ssehub@0.0.0-other.js").unwrap()).await;
    assert_eq!(other.status, 404);
}

#[tokio::test]
async fn the_page_loads_each_module_once_and_revalidates_with_etags() {
    let app = spawn_app(|_| {}).await;
    let base = Url::parse(&app.url("/")).unwrap();
    let page = fetch(&app, &base).await;
    assert_eq!(page.status, 200);
    assert!(page.kind.starts_with("text/html"), "{}", page.kind);

    let entries = attributes(&page.body, "script", "type=\"module\"", "src");
    assert_eq!(
        entries.len(),
        page.body.matches("<script").count(),
        "classic scripts left"
    );
    assert!(!entries.is_empty());
    let sheets = attributes(&page.body, "link", "rel=\"stylesheet\"", "href");
    assert!(!sheets.is_empty());

    // Every file of one page load, by URL: the page, its style sheets, its module graph.
    let mut loaded = BTreeMap::from([(base.clone(), page)]);
    for href in sheets {
        let url = base.join(&href).unwrap();
        let sheet = fetch(&app, &url).await;
        assert_eq!(sheet.status, 200, "{url}");
        assert!(sheet.kind.starts_with("text/css"), "{url}: {}", sheet.kind);
        loaded.insert(url, sheet);
    }
    let mut pending: Vec<Url> = entries.iter().map(|src| base.join(src).unwrap()).collect();
    let mut modules = BTreeSet::new();
    while let Some(url) = pending.pop() {
        if !modules.insert(url.clone()) {
            continue; // a module imported twice is fetched once, like a browser does
        }
        let module = fetch(&app, &url).await;
        assert_eq!(module.status, 200, "{url}");
        assert_eq!(module.kind, "text/javascript; charset=utf-8", "{url}");
        for specifier in imports(&module.body) {
            pending.push(url.join(&specifier).unwrap());
        }
        loaded.insert(url, module);
    }
    assert!(modules.len() >= 8, "{modules:?}");
    for name in ["/shared.js", "/feed.js", "/inspector.js"] {
        assert!(
            modules.iter().any(|url| url.path() == name),
            "{name} not imported"
        );
    }

    // No content twice under two paths: no file is served again under another path, alone or
    // inside another file (as `shared.js` was, concatenated into both views' scripts).
    for (url, file) in &loaded {
        for (other, outer) in &loaded {
            let inside = outer.body.contains(file.body.trim());
            assert!(url == other || !inside, "{url} is served again in {other}");
        }
    }

    // Revalidation: a strong ETag with no-cache, and 304 without a body for the current one.
    for (url, file) in &loaded {
        assert_eq!(file.cache, "no-cache", "{url}");
        assert!(
            file.etag.starts_with('"') && file.etag.ends_with('"'),
            "{url}: {}",
            file.etag
        );
        for (if_none_match, status) in [
            (file.etag.clone(), 304),
            (format!("\"stale\", W/{}", file.etag), 304),
            ("\"stale\"".to_owned(), 200),
        ] {
            let response = app
                .client
                .get(url.clone())
                .header(IF_NONE_MATCH, &if_none_match)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{url} {if_none_match}");
            assert_eq!(
                response.headers()[ETAG].to_str().unwrap(),
                file.etag,
                "{url}"
            );
            let body = response.text().await.unwrap();
            assert_eq!(body.is_empty(), status == 304, "{url} {if_none_match}");
        }
    }
}

#[test]
fn imports_are_read_as_a_browser_would() {
    let module = "// import nothing\nimport { a } from './a.js';\nimport * as b from \"./b.js\";\nimport {\n  c,\n} from '../c.js';\nimport './d.js';\nexport { e } from './e.js';\nconst f = import('./f.js');\n";
    assert_eq!(
        imports(module),
        ["./a.js", "./b.js", "../c.js", "./d.js", "./e.js"]
    );
}
