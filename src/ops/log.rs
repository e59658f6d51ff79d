//! The access log: one line per request, the same from every transport.

use super::AppState;

/// One access-log line: at `info` with `--access-log`, else at `debug`. The query string is
/// never logged (it may carry a token).
pub(crate) fn log_request(
    app: &AppState,
    method: &str,
    path: &str,
    status: u16,
    took: std::time::Duration,
) {
    if !app.config().access_log && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let path: String = path.chars().take(200).collect();
    let path = crate::logtext::Untrusted(&path);
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    if app.config().access_log {
        tracing::info!(method, %path, status, micros, "request");
    } else {
        tracing::debug!(method, %path, status, micros, "request");
    }
}
