//! The `modelwatch` command: a thin shim that parses arguments, runs a command and turns its
//! outcome into an exit code (0 success, 1 data or I/O error, 2 usage error).

use clap::Parser;
use modelwatch::{Clock, ManualClock, Timestamp};
use std::process::ExitCode;
use std::sync::Arc;

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
    let clock = match clock(cli.now.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("modelwatch: --now: {e}");
            return ExitCode::from(2);
        }
    };
    match commands::run(cli, clock) {
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
            // A flag that does not parse is a usage error, whichever verb reads it.
            if e.chain().any(|c| c.downcast_ref::<commands::UsageError>().is_some()) {
                return ExitCode::from(2);
            }
            ExitCode::from(1)
        }
    }
}

/// The one place the binary reads the wall clock: the system clock, or a fixed `--now`.
fn clock(now: Option<&str>) -> Result<Arc<dyn Clock>, modelwatch::time::TimeError> {
    #[allow(clippy::disallowed_types)] // the binary's entry point chooses the clock
    let system: Arc<dyn Clock> = Arc::new(modelwatch::SystemClock);
    let Some(now) = now else { return Ok(system) };
    let at = modelwatch::time::parse_time(now, system.now().as_millis() as i64)?;
    // parse_time keeps times between 1970 and 2500: no clamping here.
    Ok(Arc::new(ManualClock::new(Timestamp::from_millis(at as u64))))
}
