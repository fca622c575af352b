//! The canary: a challenger serves a sticky share of the traffic beside the control
//! ([`ModelWatcher`], in the scorer), and is promoted or rolled back on what the store says
//! of both ([`Canary`], the controller; [`CanaryWorker`] runs it in `modelwatch serve`).
pub mod controller;
pub mod watcher;
mod worker;
pub use controller::*;
pub use watcher::*;
pub use worker::CanaryWorker;
