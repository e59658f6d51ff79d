//! The `ssehub` binary: parse the command line, run a client command or set up logging and
//! serve until a signal.

use std::process::ExitCode;

use clap::Parser;
use ssehub::cli::{Cli, Command, LogFormat};
use ssehub::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // A Mercure deployment's environment (MERCURE_PUBLISHER_JWT_KEY, ...) works as is. Nothing
    // else runs yet, so setting the environment here races with no other thread.
    ssehub::config::mercure_env_twins(
        |name| std::env::var(name).ok(),
        |name, value| std::env::set_var(name, value),
    );
    let cli = Cli::parse();
    // Client commands print only their output: no log lines on standard output.
    if let Some(code) = cli.command.as_ref().and_then(ssehub::cli::run_client) {
        return code;
    }
    init_logs(&cli.log, cli.log_format);
    let config = match cli.command {
        Some(Command::Serve(config)) => *config,
        Some(Command::Token(args)) => return print_token(&args),
        // The client commands have returned above.
        Some(_) | None => cli.serve,
    };
    for warning in ssehub::config::mercure_env_warnings(|name| std::env::var(name).ok()) {
        tracing::warn!("{warning}");
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "ssehub failed");
            eprintln!("ssehub: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stdout, filtered by `filter`, as text or one JSON object per line.
fn init_logs(filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

/// `ssehub token`: the token on stdout, alone, so `$(ssehub token ...)` works.
#[allow(clippy::print_stdout)] // the token is the command's output
fn print_token(args: &ssehub::cli::token::TokenArgs) -> ExitCode {
    match ssehub::cli::token::mint(args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ssehub token: {err}");
            ExitCode::from(2)
        }
    }
}

fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    config.validate()?;
    // Before the state is made: the default connection cap derives from the raised limit.
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let state = ssehub::app::connect(config).await?;
        ssehub::serve(listener, state, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("signal received");
}

/// Each stream is a file descriptor: raise the soft limit to the hard one.
#[allow(unsafe_code)] // getrlimit/setrlimit through libc; see the SAFETY note.
fn raise_open_file_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("could not raise the open-file limit");
            }
        }
    }
}
