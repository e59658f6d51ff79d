//! The command line: `ssehub` (serve, the default), `ssehub serve`, and `ssehub token`.

pub mod token;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// `ssehub`: a Server-Sent Events hub. With no subcommand it serves.
#[derive(Debug, Parser)]
#[command(name = "ssehub", version, about, long_about = None)]
pub struct Cli {
    /// What to run; none means `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or per-module directives
    /// such as `ssehub=debug,hyper=warn`. Requests are logged only with `--access-log`.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info", global = true)]
    pub log: String,
    /// The server's settings, when no subcommand is given.
    #[command(flatten)]
    pub serve: Config,
}

/// Subcommands beside the default `serve`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (the default when no subcommand is given).
    Serve(Box<Config>),
    /// Mint a JWT for local use and tests, with the server's key flags and environment.
    Token(Box<token::TokenArgs>),
}
