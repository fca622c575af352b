//! The canary: scorers that follow the model registry's aliases and route a sticky share
//! of requests to the challenger.
pub mod watcher;
pub use watcher::*;
