//! The commands.

use crate::cli::{Cli, Command, StoreCommand};
use std::process::ExitCode;

mod crash_writer;
mod demo;
pub(crate) mod import;
mod query;
mod store;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Import(args) => import::run(&args),
        Command::Store(StoreCommand::Inspect { data, format }) => store::inspect(&data, format),
        Command::Store(StoreCommand::Verify { data, format }) => store::verify(&data, format),
        Command::Store(StoreCommand::Compact { data, as_of }) => store::compact(&data, as_of.as_deref()),
        Command::CrashWriter(args) => crash_writer::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Demo(args) => demo::run(&args),
    }
}
