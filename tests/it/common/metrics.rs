//! Reading `GET /metrics` in tests (`tests/it/metrics.rs`).

use std::collections::HashMap;
use std::time::Duration;

use super::{TestApp, PATIENCE};

/// Every sample of an exposition, `name{labels}` → value.
pub fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `GET url`: the exposition, after checking its status and content type.
pub async fn scrape_at(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

/// Scrapes until every `(series, value)` holds (a stream's end is seen by the server a moment
/// after the client acts); fails after [`PATIENCE`] with the last exposition.
pub async fn settle(app: &TestApp, expected: &[(&str, f64)]) -> HashMap<String, f64> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = scrape_at(&app.client, &app.url("/metrics")).await;
        let got = samples(&text);
        let missing: Vec<_> = expected
            .iter()
            .filter(|(series, value)| got.get(*series) != Some(value))
            .collect();
        if missing.is_empty() {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached {missing:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
