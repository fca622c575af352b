//! The `modelwatch` command: a thin shim that parses arguments, runs a command and turns its
//! outcome into an exit code (0 success, 1 data or I/O error, 2 usage error).

use clap::Parser;
use std::process::ExitCode;

mod cli;
mod commands;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MODELWATCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`modelwatch ... | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("modelwatch: {e:#}");
            ExitCode::from(1)
        }
    }
}
