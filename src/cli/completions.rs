//! `ssehub completions SHELL` and `ssehub manpage`: the shell completion script and the man page
//! (roff, `man 1 ssehub`) of the whole command line, made by `clap_complete` and `clap_mangen`
//! from the same definitions the parser uses, so they cannot drift. The Debian package ships
//! both (`packaging/deb/build`).

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

/// Writes the man page of `ssehub` (every flag of `serve`, the subcommands listed) to `out`.
pub fn manpage(out: &mut impl Write) -> std::io::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)
}

/// Writes the completion script for `args.shell` to `out`.
pub fn write(args: &CompletionsArgs, out: &mut impl Write) {
    clap_complete::generate(args.shell, &mut Cli::command(), "ssehub", out);
}
