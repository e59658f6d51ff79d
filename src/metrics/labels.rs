//! The fixed text of the series: the status labels (a small set, never a client's number) and
//! each series' help line.

use metrics::{Recorder, SharedString};
use metrics_exporter_prometheus::PrometheusRecorder;

use super::*;

/// A status code as a label: its three digits (a closed set), without an allocation for the
/// statuses this server answers.
pub(super) fn status_label(status: u16) -> SharedString {
    SharedString::const_str(match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        308 => "308",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        429 => "429",
        431 => "431",
        500 => "500",
        503 => "503",
        _ => return SharedString::from(status.to_string()),
    })
}

pub(super) fn describe(recorder: &PrometheusRecorder) {
    let gauges = [
        (STREAMS_OPEN, "Streams open now, by mode and HTTP version."),
        (HISTORY_EVENTS, "Events held in this process' history."),
        (
            HISTORY_BYTES,
            "Bytes of events held in this process' history.",
        ),
        (STORE_BYTES, "Size of the on-disk history store in bytes."),
        (BROKER_READY, "1 when the broker takes publishes, else 0."),
        (
            MERCURE_CONNECTED,
            "Open Mercure subscribers (alias of ssehub_streams_open{mode=\"mercure\"}).",
        ),
    ];
    for (name, help) in gauges {
        recorder.describe_gauge(name.into(), None, help.into());
    }
    let counters = [
        (STREAMS_OPENED, "Streams opened, by mode."),
        (STREAMS_ENDED, "Streams ended, by mode and reason."),
        (STREAMS_REFUSED, "Stream requests refused before opening, by reason."),
        (EVENTS_DELIVERED, "Event frames sent to streams."),
        (PUBLISHES, "Publish requests, by endpoint and status."),
        (MERCURE_SUBSCRIBERS, "Mercure subscriptions opened (alias of ssehub_streams_opened_total{mode=\"mercure\"})."),
        (MERCURE_UPDATES, "Updates published, on any endpoint (alias of the 2xx ssehub_publishes_total)."),
    ];
    for (name, help) in counters {
        recorder.describe_counter(name.into(), None, help.into());
    }
    let histograms = [
        (REQUEST_DURATION, "Time to answer a request (to the response head for streams), by route template, method and status."),
        (REDIS_DURATION, "Round trip of each Redis command, as this node sees it."),
    ];
    for (name, help) in histograms {
        recorder.describe_histogram(name.into(), None, help.into());
    }
}
