//! CORS for browsers on other origins: the allow headers on every response to an allowed
//! origin, including streams and publishes served by the direct path (which is why this is a
//! small policy object rather than a tower layer: both transports call it; the hyper path's
//! layer, which also answers preflights, is `http::cors`).
//!
//! `--cors-origins` is a list of exact origins (answered with credentials allowed, so cookies
//! work) or `*` (any origin, never with credentials). Unset: no CORS headers at all. An allowed
//! origin may also read the response headers a client acts on ([`EXPOSE`]): Mercure discovery's
//! `Link`, the reconciliation cursors and `Retry-After`.

/// The response headers beyond the CORS-safelisted ones that an allowed origin's scripts read.
pub const EXPOSE: &str = "Link, Mercure-Last-Event-ID, Last-Event-ID, Retry-After";

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
    any: bool,
}

impl Cors {
    /// The policy of `--cors-origins`.
    pub fn new(origins: &[String]) -> Self {
        Self {
            any: origins.iter().any(|o| o == "*"),
            origins: origins.iter().filter(|o| *o != "*").cloned().collect(),
        }
    }

    /// The headers for a response to a request from `origin`: the allow headers when it is
    /// allowed, and `Vary: Origin` on every response whenever an exact-origin list makes the
    /// answer depend on it (allowed or not, with an `Origin` or without: a shared cache must
    /// not hand one origin's answer to another).
    pub fn headers(&self, origin: Option<&[u8]>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        let origin = origin.and_then(|o| std::str::from_utf8(o).ok());
        match origin {
            Some(origin) if self.origins.iter().any(|o| o == origin) => {
                headers.push(("access-control-allow-origin", origin.to_owned()));
                headers.push(("access-control-allow-credentials", "true".to_owned()));
                headers.push(("access-control-expose-headers", EXPOSE.to_owned()));
            }
            Some(_) if self.any => {
                headers.push(("access-control-allow-origin", "*".to_owned()));
                headers.push(("access-control-expose-headers", EXPOSE.to_owned()));
            }
            _ => {}
        }
        if !self.origins.is_empty() {
            headers.push(("vary", "origin".to_owned()));
        }
        headers
    }

    /// Whether `headers` (from [`Cors::headers`]) allow the origin.
    pub(crate) fn allows(headers: &[(&'static str, String)]) -> bool {
        headers
            .iter()
            .any(|(name, _)| *name == "access-control-allow-origin")
    }
}
