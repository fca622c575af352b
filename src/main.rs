//! The `modelwatch` command. Its subcommands (demo, import, query, serve, ...) arrive with
//! the store and query crates; today it reports its version and points at the quickstart.

use std::process::ExitCode;

const USAGE: &str = "\
modelwatch — observability and retraining loop for ML models in production

Usage: modelwatch [--version | --help]

The recording agent is ready; the store, query and serve commands are not built yet.
Try the agent:  cargo run --release --example quickstart";

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        None | Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("modelwatch {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("modelwatch: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
