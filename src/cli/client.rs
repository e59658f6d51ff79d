//! What `ssehub publish` and `ssehub subscribe` share: the hub's URL and protocol, the token
//! (given, or minted with the key flags of `ssehub token`), and the failures a script can tell
//! apart by exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::token::{self, Format, TokenArgs};
use crate::config::{KeyFlags, DEFAULT_TRUSTED_ISSUER};

/// The hub a client command talks to, and as whom.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The hub's base URL (`http://` or `https://`); a path prefix is kept (`https://example.com/hub`).
    #[arg(long, env = "SSEHUB_URL", default_value = "http://localhost:8000")]
    pub url: String,

    /// Speak the Mercure protocol on `/.well-known/mercure` instead of the native API.
    #[arg(long)]
    pub mercure: bool,

    /// A PEM file of CA certificates to trust for `https://`, beside the public roots (a
    /// private or self-signed CA).
    #[arg(long, env = "SSEHUB_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// The token to present (`Authorization: Bearer`). Without it, one is minted for the
    /// topics of the command when a key flag (`--jwt-key`, ...) or its environment is set.
    #[arg(long, env = "SSEHUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// PEM private key to mint tokens for RS*/PS*/ES*/EdDSA keys (as `ssehub token`).
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,

    /// The server's key flags (`--jwt-key`, `--publisher-jwt-key`, ... and their environment),
    /// to mint the token when `--token` is not given.
    #[command(flatten)]
    pub keys: KeyFlags,
}

/// Which grants a minted token carries.
pub enum Role<'a> {
    /// `publish` on these topics.
    Publish(&'a [String]),
    /// `subscribe` on these topics.
    Subscribe(&'a [String]),
}

/// Longest wait for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a publish's answer, or for a stream's response head.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

impl ClientArgs {
    /// The token to send, if any: `--token` (or `SSEHUB_TOKEN`), else one minted for `role`
    /// from the key flags, else none (anonymous).
    ///
    /// # Errors
    /// A key is set but no token can be minted with it (unknown algorithm, missing
    /// `--signing-key`, ...): a usage error.
    pub fn token(&self, role: Role<'_>) -> Result<Option<String>, ClientError> {
        if let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(token.to_owned()));
        }
        let keys = &self.keys;
        let (publish, subscribe, own_key) = match role {
            Role::Publish(topics) => (topics.to_vec(), Vec::new(), &keys.publisher_jwt_key),
            Role::Subscribe(topics) => (Vec::new(), topics.to_vec(), &keys.subscriber_jwt_key),
        };
        if own_key.is_none() && keys.jwt_key.is_none() {
            return Ok(None);
        }
        let args = TokenArgs {
            publish,
            subscribe,
            payload: None,
            ttl: Duration::from_secs(3600),
            format: Format::Legacy,
            subject: None,
            issuer: DEFAULT_TRUSTED_ISSUER.to_owned(),
            audience: String::new(),
            signing_key: self.signing_key.clone(),
            keys: keys.clone(),
        };
        token::mint(&args)
            .map(Some)
            .map_err(|e| ClientError::Usage(format!("minting a token: {e}")))
    }
}

/// Why a client command failed; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Exit 1: the server answered with an error status; `body` is its JSON error.
    #[error("the server answered {status}: {body}")]
    Refused {
        /// The status line's code and reason.
        status: String,
        /// The response body (`{"error": "..."}`), trimmed.
        body: String,
    },
    /// Exit 2: a bad command line (also what clap exits with for its own usage errors).
    #[error("{0}")]
    Usage(String),
    /// Exit 3: the hub could not be reached, or the connection failed (DNS, refused, TLS,
    /// timeout), including giving up reconnecting.
    #[error("{0}")]
    Connection(String),
    /// Exit 4: the server answered something this client does not understand (not an event
    /// stream, a publish answer without an id).
    #[error("{0}")]
    Protocol(String),
    /// Exit 5: standard output could not be written (other than closed).
    #[error("writing standard output: {0}")]
    Output(String),
    /// Exit 0: standard output was closed (`ssehub subscribe ... | head -1`): nothing more to do.
    #[error("standard output closed")]
    OutputClosed,
}

impl ClientError {
    /// The process exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::OutputClosed => 0,
            Self::Refused { .. } => 1,
            Self::Usage(_) => 2,
            Self::Connection(_) => 3,
            Self::Protocol(_) => 4,
            Self::Output(_) => 5,
        }
    }

    /// A failed write to standard output.
    pub fn output(err: &std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Self::OutputClosed
        } else {
            Self::Output(err.to_string())
        }
    }
}

/// Runs a client command on a small runtime and turns its outcome into the exit code, the
/// error (if any) on standard error prefixed with the command's name.
pub fn run<F>(name: &str, command: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), ClientError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ssehub {name}: {err}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !matches!(err, ClientError::OutputClosed) {
                eprintln!("ssehub {name}: {err}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
