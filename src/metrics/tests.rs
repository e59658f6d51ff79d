//! The recorder and the stream guard, rendered and read back.

use super::*;

/// The value of the one line of `text` that starts with `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn a_stream_counts_while_open_and_its_end_once() {
    let metrics = Metrics::new();
    let scrape = Scrape::default();
    let mut stats = metrics.stream(StreamKind::Mercure, HttpVersion::Http2);
    stats.sent();
    stats.sent();
    let text = metrics.render(&scrape);
    let open = r#"ssehub_streams_open{mode="mercure",http_version="2"}"#;
    assert_eq!(value(&text, open), Some(1.0), "{text}");
    assert_eq!(value(&text, "mercure_subscribers_connected"), Some(1.0));
    assert_eq!(value(&text, "mercure_subscribers_total"), Some(1.0));
    // Not flushed yet: counted when the stream writes or ends.
    assert_eq!(value(&text, "ssehub_events_delivered_total"), Some(0.0));
    stats.flush();
    assert_eq!(metrics.delivered(), 2);
    stats.sent();
    stats.end(End::Shutdown);
    stats.end(End::Lagged);
    drop(stats);
    let text = metrics.render(&scrape);
    assert_eq!(value(&text, open), Some(0.0));
    assert_eq!(value(&text, "ssehub_events_delivered_total"), Some(3.0));
    let ended = r#"ssehub_streams_ended_total{mode="mercure",reason="shutdown"}"#;
    assert_eq!(value(&text, ended), Some(1.0), "{text}");
    let lagged = r#"ssehub_streams_ended_total{mode="mercure",reason="lagged"}"#;
    assert_eq!(value(&text, lagged), Some(0.0));
}

#[test]
fn a_dropped_stream_with_no_reason_is_a_client_gone() {
    let metrics = Metrics::new();
    drop(metrics.stream(StreamKind::Burst, HttpVersion::Http11));
    let text = metrics.render(&Scrape::default());
    let gone = r#"ssehub_streams_ended_total{mode="burst",reason="client_gone"}"#;
    assert_eq!(value(&text, gone), Some(1.0), "{text}");
}

#[test]
fn two_recorders_keep_their_own_figures() {
    let (a, b) = (Metrics::new(), Metrics::new());
    a.publish("/api/messages", 201);
    let text = b.render(&Scrape::default());
    assert!(!text.contains("ssehub_publishes_total{"), "{text}");
    let text = a.render(&Scrape::default());
    let series = r#"ssehub_publishes_total{endpoint="/api/messages",status="201"}"#;
    assert_eq!(value(&text, series), Some(1.0), "{text}");
    assert_eq!(value(&text, "mercure_updates_total"), Some(1.0));
}

#[test]
fn request_durations_are_histograms_with_buckets() {
    let metrics = Metrics::new();
    metrics.request("/api/ping", "GET", 200, Duration::from_millis(3));
    metrics.request("/api/ping", "GET", 299, Duration::from_millis(3));
    metrics.upkeep();
    let text = metrics.render(&Scrape::default());
    let bucket = r#"ssehub_http_request_duration_seconds_bucket{route="/api/ping",method="GET",status="200",le="0.005"}"#;
    assert_eq!(value(&text, bucket), Some(1.0), "{text}");
    let fast = r#"ssehub_http_request_duration_seconds_bucket{route="/api/ping",method="GET",status="200",le="0.001"}"#;
    assert_eq!(value(&text, fast), Some(0.0), "{text}");
    let rare = r#"ssehub_http_request_duration_seconds_count{route="/api/ping",method="GET",status="299"}"#;
    assert_eq!(value(&text, rare), Some(1.0), "{text}");
}

/// Every idle stream holds one: keep it two words.
#[test]
fn a_stream_guard_stays_small() {
    assert!(std::mem::size_of::<StreamStats>() <= 16);
    assert_eq!(
        std::mem::size_of::<Option<StreamStats>>(),
        std::mem::size_of::<StreamStats>()
    );
}
