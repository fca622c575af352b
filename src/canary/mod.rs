//! The canary: a challenger serves a share of the traffic beside the control, and is
//! promoted or rolled back on what the store says of both.
pub mod controller;
pub mod watcher;
mod worker;
pub use controller::*;
pub use watcher::*;
pub use worker::CanaryWorker;
