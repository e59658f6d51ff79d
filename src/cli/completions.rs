//! `ssehub completions SHELL`: the shell completion script of the whole command line, made by
//! `clap_complete` from the same definitions the parser uses, so it cannot drift.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Flags of `ssehub completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell: `bash`, `zsh`, `fish` (also `elvish`, `powershell`).
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script for `args.shell` to `out`.
pub fn write(args: &CompletionsArgs, out: &mut impl Write) {
    clap_complete::generate(args.shell, &mut Cli::command(), "ssehub", out);
}
