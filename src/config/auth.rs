//! Authorization flags: keys, token rules, CORS, per-client caps. The key flags are shared
//! with `ssehub token`, so a token minted with the server's flags is one the server accepts.

use std::time::Duration;

use clap::Args;

use super::parse::parse_duration;

/// The issuer trusted in draft-08 tokens when none is configured (the Mercure hub's default).
pub const DEFAULT_TRUSTED_ISSUER: &str = "https://localhost";
/// Mercure hub environment names read when the `SSEHUB_*` twin is unset (an empty value counts
/// as unset, as in the Mercure hub's image).
pub const MERCURE_ENV: [(&str, &str); 7] = [
    ("MERCURE_JWT_KEY", "SSEHUB_JWT_KEY"),
    ("MERCURE_PUBLISHER_JWT_KEY", "SSEHUB_PUBLISHER_JWT_KEY"),
    ("MERCURE_PUBLISHER_JWT_ALG", "SSEHUB_PUBLISHER_JWT_ALG"),
    ("MERCURE_SUBSCRIBER_JWT_KEY", "SSEHUB_SUBSCRIBER_JWT_KEY"),
    ("MERCURE_SUBSCRIBER_JWT_ALG", "SSEHUB_SUBSCRIBER_JWT_ALG"),
    ("MERCURE_TRUSTED_ISSUERS", "SSEHUB_TRUSTED_ISSUERS"),
    ("MERCURE_RESOURCE_IDENTIFIER", "SSEHUB_RESOURCE_IDENTIFIER"),
];
/// Variables of the Mercure hub's image that ssehub does not read, with what to do instead:
/// a deployment moved as is gets a warning at start rather than silently different behaviour.
pub const MERCURE_UNREAD: [(&str, &str); 6] = [
    (
        "MERCURE_EXTRA_DIRECTIVES",
        "translate each directive into its SSEHUB_* variable (docs/migrating-from-mercure.md)",
    ),
    (
        "MERCURE_TRANSPORT_URL",
        "history is in memory unless SSEHUB_DATA_DIR or SSEHUB_BROKER is set",
    ),
    (
        "GLOBAL_OPTIONS",
        "Caddy options: logs are RUST_LOG, metrics are always at /metrics",
    ),
    (
        "CADDY_EXTRA_CONFIG",
        "put other sites and routes on a reverse proxy in front",
    ),
    (
        "CADDY_SERVER_EXTRA_DIRECTIVES",
        "put other directives on a reverse proxy in front",
    ),
    (
        "SERVER_NAME",
        "ssehub listens on SSEHUB_BIND (0.0.0.0:8000); TLS is SSEHUB_TLS_CERT/KEY",
    ),
];
/// The JWT keys and algorithms of both roles.
#[derive(Debug, Clone, Default, Args)]
pub struct KeyFlags {
    /// JWT key for publishers and subscribers both: the secret (HS256/384/512) or a PEM public
    /// key, as text or a file path (RS*, PS*, ES256/384, EdDSA). Also `MERCURE_JWT_KEY`.
    #[arg(
        long,
        env = "SSEHUB_JWT_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub jwt_key: Option<String>,

    /// Algorithm of `--jwt-key` (default HS256).
    #[arg(long, env = "SSEHUB_JWT_ALG")]
    pub jwt_alg: Option<String>,

    /// JWT key of publishers (overrides `--jwt-key`). Also `MERCURE_PUBLISHER_JWT_KEY`.
    #[arg(
        long,
        env = "SSEHUB_PUBLISHER_JWT_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub publisher_jwt_key: Option<String>,

    /// Algorithm of the publisher key. Also `MERCURE_PUBLISHER_JWT_ALG`.
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_ALG")]
    pub publisher_jwt_alg: Option<String>,

    /// JWT key of subscribers (overrides `--jwt-key`). Also `MERCURE_SUBSCRIBER_JWT_KEY`.
    #[arg(
        long,
        env = "SSEHUB_SUBSCRIBER_JWT_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub subscriber_jwt_key: Option<String>,

    /// Algorithm of the subscriber key. Also `MERCURE_SUBSCRIBER_JWT_ALG`.
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_ALG")]
    pub subscriber_jwt_alg: Option<String>,
}

/// See the module docs.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// Keys.
    #[command(flatten)]
    pub keys: KeyFlags,

    /// A JWK Set file whose keys (each with its `alg`, optionally a `kid`) are trusted for both
    /// roles, beside the keys above.
    #[arg(long, env = "SSEHUB_JWKS_FILE")]
    pub jwks_file: Option<std::path::PathBuf>,

    /// Issuers accepted in draft-08 (`authorization_details`) tokens, comma-separated. Also
    /// `MERCURE_TRUSTED_ISSUERS`.
    #[arg(long, env = "SSEHUB_TRUSTED_ISSUERS", value_delimiter = ',', default_value = DEFAULT_TRUSTED_ISSUER)]
    pub trusted_issuers: Vec<String>,

    /// This hub's resource identifier, which a draft-08 token's `aud` must name. Default: from
    /// the request, `http://HOST/.well-known/mercure`. Also `MERCURE_RESOURCE_IDENTIFIER`.
    #[arg(long, env = "SSEHUB_RESOURCE_IDENTIFIER")]
    pub resource_identifier: Option<String>,

    /// A cookie name to read tokens from, before `__Secure-mercure_access_token` and
    /// `mercureAuthorization` (which are always read).
    #[arg(long, env = "SSEHUB_COOKIE_NAME")]
    pub cookie_name: Option<String>,

    /// Accept a subscriber token in the `authorization` query parameter (legacy clients; tokens
    /// in URLs end up in logs, so off by default; ssehub never logs it).
    #[arg(long, env = "SSEHUB_ALLOW_QUERY_TOKEN")]
    pub allow_query_token: bool,

    /// Refuse streams without a valid subscriber token (default: anonymous streams get public
    /// events).
    #[arg(long, env = "SSEHUB_REQUIRE_SUBSCRIBER_TOKEN")]
    pub require_subscriber_token: bool,

    /// End every stream after this long (it reconnects and presents its token again), e.g.
    /// `1h`. Streams with a token always end at its `exp`.
    #[arg(long, env = "SSEHUB_MAX_STREAM_LIFETIME", value_parser = parse_duration)]
    pub max_stream_lifetime: Option<Duration>,

    /// Origins allowed to call the hub from a browser (CORS), comma-separated exact origins
    /// (`https://app.example.com`), or `*` (then without credentials). Unset: no CORS headers.
    #[arg(long, env = "SSEHUB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Origins from which a cookie-authenticated publish is accepted (CSRF protection),
    /// comma-separated. Unset: publishing with a cookie is refused.
    #[arg(long, env = "SSEHUB_PUBLISH_ORIGINS", value_delimiter = ',')]
    pub publish_origins: Vec<String>,

    /// Concurrent streams per client address; past it `429` with `Retry-After`. Off by default
    /// (behind a reverse proxy every client has the proxy's address).
    #[arg(long, env = "SSEHUB_MAX_STREAMS_PER_CLIENT")]
    pub max_streams_per_client: Option<usize>,

    /// Concurrent streams per token subject (`sub`); past it `429` with `Retry-After`.
    #[arg(long, env = "SSEHUB_MAX_STREAMS_PER_SUBJECT")]
    pub max_streams_per_subject: Option<usize>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            keys: KeyFlags::default(),
            jwks_file: None,
            trusted_issuers: vec![DEFAULT_TRUSTED_ISSUER.to_owned()],
            resource_identifier: None,
            cookie_name: None,
            allow_query_token: false,
            require_subscriber_token: false,
            max_stream_lifetime: None,
            cors_origins: Vec::new(),
            publish_origins: Vec::new(),
            max_streams_per_client: None,
            max_streams_per_subject: None,
        }
    }
}

/// Copies the Mercure hub's environment names (`MERCURE_PUBLISHER_JWT_KEY`, ...) to their
/// `SSEHUB_*` twins where those are unset, so a Mercure deployment's environment works as is.
/// `lookup` reads a variable; `set` writes one (the real environment in `main`, a map in tests).
pub fn mercure_env_twins(
    lookup: impl Fn(&str) -> Option<String>,
    mut set: impl FnMut(&str, String),
) {
    for (mercure, ours) in MERCURE_ENV {
        if lookup(ours).is_none() {
            if let Some(value) = lookup(mercure).filter(|value| !value.is_empty()) {
                set(ours, value);
            }
        }
    }
}

/// Warnings for a Mercure deployment's environment run as is: each variable of
/// [`MERCURE_UNREAD`] that is set (and not empty), and the one default that differs: the
/// Mercure hub refuses subscribers without a token unless `anonymous` is set, ssehub serves
/// them public updates unless `SSEHUB_REQUIRE_SUBSCRIBER_TOKEN` is set.
pub fn mercure_env_warnings(lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let set = |name: &str| lookup(name).is_some_and(|value| !value.is_empty());
    let mut warnings: Vec<String> = MERCURE_UNREAD
        .iter()
        .filter(|(name, _)| set(name))
        .map(|(name, instead)| format!("{name} is not read: {instead}"))
        .collect();
    let mercure_keys = set("MERCURE_SUBSCRIBER_JWT_KEY") || set("MERCURE_JWT_KEY");
    if mercure_keys && !set("SSEHUB_REQUIRE_SUBSCRIBER_TOKEN") {
        warnings.push(
            "anonymous subscribers get public updates (the Mercure hub refuses them unless \
             `anonymous` is set): set SSEHUB_REQUIRE_SUBSCRIBER_TOKEN=true to refuse them"
                .to_string(),
        );
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn mercure_names_fill_unset_twins_and_empty_counts_as_unset() {
        let given = env(&[
            ("MERCURE_PUBLISHER_JWT_KEY", "k"),
            ("MERCURE_PUBLISHER_JWT_ALG", ""),
            (
                "MERCURE_RESOURCE_IDENTIFIER",
                "https://hub.example/.well-known/mercure",
            ),
            ("MERCURE_TRUSTED_ISSUERS", "a"),
            ("SSEHUB_TRUSTED_ISSUERS", "b"),
        ]);
        let mut set = HashMap::new();
        mercure_env_twins(
            |name| given.get(name).cloned(),
            |name, v| {
                set.insert(name.to_owned(), v);
            },
        );
        assert_eq!(
            set,
            env(&[
                ("SSEHUB_PUBLISHER_JWT_KEY", "k"),
                (
                    "SSEHUB_RESOURCE_IDENTIFIER",
                    "https://hub.example/.well-known/mercure"
                ),
            ])
        );
    }

    #[test]
    fn a_mercure_deployment_run_as_is_is_warned_of_what_differs() {
        let given = env(&[
            ("MERCURE_EXTRA_DIRECTIVES", "anonymous"),
            ("MERCURE_TRANSPORT_URL", ""),
            ("MERCURE_SUBSCRIBER_JWT_KEY", "k"),
        ]);
        let warnings = mercure_env_warnings(|name| given.get(name).cloned());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("MERCURE_EXTRA_DIRECTIVES is not read"));
        assert!(warnings[1].contains("SSEHUB_REQUIRE_SUBSCRIBER_TOKEN=true"));
        let mut strict = given.clone();
        strict.insert("SSEHUB_REQUIRE_SUBSCRIBER_TOKEN".into(), "true".into());
        strict.remove("MERCURE_EXTRA_DIRECTIVES");
        assert!(mercure_env_warnings(|name| strict.get(name).cloned()).is_empty());
        assert!(mercure_env_warnings(|_| None).is_empty());
    }
}
