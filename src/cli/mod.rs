//! The command line: `ssehub` (serve, the default), `ssehub serve`, `ssehub token`, the client
//! commands `ssehub publish` and `ssehub subscribe`, `ssehub completions` and `ssehub manpage`.
//!
//! The client commands speak HTTP to a hub like any other client (`http` holds their
//! connection, `client` their shared flags and exit codes); no server module depends on them.
//! They are the `client` feature (on by default): an embedder's build without it has no HTTP
//! client (hyper's `client`) and no `publish` or `subscribe`.

#[cfg(feature = "client")]
pub mod client;
pub mod completions;
#[cfg(feature = "client")]
mod http;
#[cfg(feature = "client")]
pub mod publish;
#[cfg(feature = "client")]
pub mod render;
#[cfg(feature = "client")]
pub mod subscribe;
pub mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// The version `--version` prints: the package's and the git commit it was built from
/// (`build.rs`), e.g. `0.1.0 (cc283d7a1b2c)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SSEHUB_COMMIT"), ")");

/// `ssehub`: a Server-Sent Events hub. With no subcommand it serves.
#[derive(Debug, Parser)]
#[command(name = "ssehub", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// What to run; none means `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or per-module directives
    /// such as `ssehub=debug,hyper=warn`. Requests are logged only with `--access-log`.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log lines as `text` (for people) or `json` (one JSON object per line, for log
    /// collectors).
    #[arg(
        long = "log-format",
        env = "SSEHUB_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// The server's settings, when no subcommand is given.
    #[command(flatten)]
    pub serve: Config,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00Z  INFO ssehub::app: listening addr=...`.
    Text,
    /// `{"timestamp":"...","level":"INFO","fields":{"message":"listening","addr":"..."},"target":"ssehub::app"}`.
    Json,
}

/// Subcommands beside the default `serve`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (the default when no subcommand is given).
    Serve(Box<Config>),
    /// Mint a JWT for local use and tests, with the server's key flags and environment.
    Token(Box<token::TokenArgs>),
    /// Publish a message (or each line of standard input) and print its id.
    #[cfg(feature = "client")]
    Publish(Box<publish::PublishArgs>),
    /// Print a stream's events, reconnecting with `Last-Event-ID` as a browser does.
    #[cfg(feature = "client")]
    Subscribe(Box<subscribe::SubscribeArgs>),
    /// Print a shell completion script (`bash`, `zsh`, `fish`).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff; `ssehub manpage | man -l -`).
    #[command(hide = true)]
    Manpage,
}

/// Runs a client command (`publish`, `subscribe`, `completions`) to its exit code; `None` for
/// the others (which `main` runs itself).
pub fn run_client(command: &Command) -> Option<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    Some(match command {
        #[cfg(feature = "client")]
        Command::Publish(args) => client::run("publish", publish::run(args, &mut stdout)),
        #[cfg(feature = "client")]
        Command::Subscribe(args) => client::run("subscribe", subscribe::run(args, &mut stdout)),
        Command::Completions(args) => {
            completions::write(args, &mut stdout);
            ExitCode::SUCCESS
        }
        Command::Manpage => match completions::manpage(&mut stdout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("ssehub manpage: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(_) | Command::Token(_) => return None,
    })
}
