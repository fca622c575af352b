//! The commands.

use crate::cli::{Cli, Command, StoreCommand};
use std::process::ExitCode;

mod crash_writer;
mod demo;
mod drift;
pub(crate) mod import;
mod query;
mod serve;
mod store;
mod triggers;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Import(args) => import::run(&args),
        Command::Store(StoreCommand::Inspect { data, format }) => store::inspect(&data, format),
        Command::Store(StoreCommand::Verify { data, format }) => store::verify(&data, format),
        Command::Store(StoreCommand::Compact { data, as_of }) => store::compact(&data, as_of.as_deref()),
        Command::CrashWriter(args) => crash_writer::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Drift(args) => drift::drift(&args),
        Command::Quality(args) => drift::quality(&args),
        Command::Baseline(cmd) => drift::baseline(cmd),
        Command::Triggers(cmd) => triggers::run(cmd),
    }
}

/// A time in ms since the Unix epoch as RFC 3339 (UTC, whole seconds), for tables.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
