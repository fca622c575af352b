//! End-to-end tests of the whole system, one module per concern (one test binary, as
//! ripgrep does, so the workspace links it once).

mod canary;
mod cli;
mod connections;
mod crash;
mod detect;
mod drift;
mod examples;
mod features;
mod fleet;
mod gate;
mod hostile;
mod import;
mod importance;
mod interop;
mod layout;
mod orchestrator;
mod prometheus;
mod quality;
mod query_cli;
mod registry;
mod report;
mod retrain;
mod serve;
mod store_cli;
mod stress;
mod support;
mod trainers;
mod triggers;
mod watcher;
