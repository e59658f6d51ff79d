//! The checks of values that parse but cannot work (alone or together), run by
//! [`Config::validate`] before anything binds a socket: each names the flag to fix.

use std::time::Duration;

use super::Config;

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks values that parse but cannot work together.
    ///
    /// # Errors
    /// Names the first value that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |what: &str| Err(ConfigError(what.to_owned()));
        if self.interval > Duration::from_secs(3600) {
            return fail("--interval must be at most 1h");
        }
        if self.heartbeat < Duration::from_millis(10) {
            return fail("--heartbeat must be at least 10ms");
        }
        if self.queue == 0 {
            return fail("--queue must be at least 1");
        }
        if self.max_message == 0 || self.max_message > self.body_limit {
            return fail("--max-message must be between 1 and --body-limit");
        }
        if self.max_topics_per_stream == 0 {
            return fail("--max-topics-per-stream must be at least 1");
        }
        if self.max_connections == Some(0) {
            return fail("--max-connections must be at least 1");
        }
        if self.max_streams == Some(0) {
            return fail("--max-streams must be at least 1");
        }
        if self.max_connections_per_client == Some(0) {
            return fail("--max-connections-per-client must be at least 1");
        }
        if self.repeats == 0 || self.repeats > 100 {
            return fail("--repeats must be between 1 and 100");
        }
        if self.interval.is_zero() {
            return fail("--interval must be more than 0");
        }
        if self.max_topics == 0 {
            return fail("--max-topics must be at least 1");
        }
        if self.history_bytes < 64 * 1024 {
            return fail("--history-bytes must be at least 64KiB");
        }
        for (value, name) in [
            (self.header_timeout, "--header-timeout"),
            (self.body_timeout, "--body-timeout"),
            (self.idle_timeout, "--idle-timeout"),
            (self.write_timeout, "--write-timeout"),
            (self.broker_timeout, "--broker-timeout"),
        ] {
            if value < Duration::from_millis(10) {
                return Err(ConfigError(format!("{name} must be at least 10ms")));
            }
        }
        if self.auth.max_streams_per_client == Some(0)
            || self.auth.max_streams_per_subject == Some(0)
        {
            return fail(
                "--max-streams-per-client and --max-streams-per-subject must be at least 1",
            );
        }
        if self.auth.cors_origins.len() > 1 && self.auth.cors_origins.iter().any(|o| o == "*") {
            return fail("--cors-origins is either '*' or a list of exact origins");
        }
        if self.data_dir.is_some() && self.broker.is_some() {
            return fail("--data-dir is for the memory broker; Redis keeps history itself");
        }
        if self.redirect_http.is_some() && self.tls_cert.is_none() {
            return fail("--redirect-http needs --tls-cert and --tls-key");
        }
        if self
            .metrics_bind
            .is_some_and(|m| m.port() != 0 && m.port() == self.bind.port())
        {
            return fail("--metrics-bind needs a port other than --bind's");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return fail("--tls-cert and --tls-key go together");
        }
        if let Some(url) = &self.broker {
            let schemes = [
                "redis://",
                "rediss://",
                "redis+sentinel://",
                "rediss+sentinel://",
                "redis+cluster://",
                "rediss+cluster://",
            ];
            if !schemes.iter().any(|s| url.starts_with(s)) {
                return fail(
                    "--broker must be a redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster:// URL",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unworkable_values_are_refused() {
        let base = Config::with_bind("127.0.0.1:0".parse().unwrap());
        assert!(base.validate().is_ok());
        let cases: [fn(&mut Config); 6] = [
            |c| c.repeats = 0,
            |c| c.max_connections = Some(0),
            |c| c.max_streams = Some(0),
            |c| c.queue = 0,
            |c| c.interval = Duration::ZERO,
            |c| c.header_timeout = Duration::ZERO,
        ];
        for case in cases {
            let mut config = base.clone();
            case(&mut config);
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
