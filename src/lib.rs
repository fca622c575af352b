//! modelwatch: watch machine-learning models in production and close their retraining loop.
//!
//! This crate is the facade over the workspace and the home of everything above the query
//! engine. The crates below it never depend on the ones above (`modelwatch → query → store
//! → agent`): a scorer that only wants recording and its own sink depends on
//! `modelwatch-agent` alone.
//!
//! | crate | what it is |
//! |---|---|
//! | [`agent`] | the in-process hook a scorer calls on every prediction: lock-free recording, one snapshot per interval, the `Sink` trait |
//! | [`store`] | the durable store: WAL, Parquet files listed in a manifest, roll-ups, retention, object storage |
//! | [`query`] | the read side: the query language and engine, drift statistics, quality metrics, detectors |
//! | this crate | the time grammar, baselines, triggers, the demo, the HTTP server and the `modelwatch` binary |
//!
//! # Data flow
//!
//! scorer thread → [`Handle::record`] → per-thread shard (lock-free) → flusher thread →
//! one [`Snapshot`] per interval → [`Sink`] ([`store::Store`]: WAL, then Parquet files
//! listed in a manifest; or your own sink) → [`query`] (the engine, drift, quality) →
//! [`triggers`] (retraining events to sinks), [`serve`] (Grafana, REST, Prometheus) and the
//! CLI.
//!
//! # Modules
//!
//! - [`time`]: one grammar for points in time, durations and ranges, everywhere.
//! - [`baseline`]: named reference profiles for drift.
//! - [`triggers`]: when to retrain: one file per trigger kind, the engine, the state,
//!   delivery to sinks.
//! - [`registry`]: model gauges (`models_loaded`, `model_age_seconds`) from the registry's
//!   versions (the registry itself is [`store::registry`]).
//! - [`demo`]: simulated scenarios played through the hook, and the shared seeded RNG.
//! - [`canary`]: scorers that follow the registry (`ModelWatcher`: a sticky share of the
//!   requests to the challenger, an agent per arm and version) and the controller that
//!   judges a canary from the store and promotes or rolls back (`Canary`).
//! - [`features`]: correlation between a version's features, pruning candidates and the
//!   quarterly review's document (`modelwatch features report`).
//! - [`retrain`]: the trainers — a closure, an external command, an in-process logistic
//!   regression — and the `Model` they make, from the store's labelled examples to the
//!   model registry.
//! - [`report`]: self-contained HTML reports with server-drawn SVG charts: the ML System
//!   Health report and the feature review.
//! - [`serve`]: the HTTP server (Grafana JSON datasource, REST, Prometheus exposition); a
//!   leaf: nothing else in this crate depends on it.
//!
//! The binary (`src/main.rs`, `src/cli.rs`, one file per verb in `src/commands/`) is a thin
//! shell over these modules; the decision records in `docs/decisions/` say why the house is
//! laid out this way.
//!
//! # Example
//!
//! ```
//! use modelwatch::{Agent, Feature, MemorySink, Prediction, Timer};
//!
//! let sink = MemorySink::new();
//! let agent = Agent::builder("pii-confidence")
//!     .segments(["email", "phone", "ssn"])
//!     .features([Feature::numeric("token_count"), Feature::categorical("script", ["latin", "cyrillic"])])
//!     .build(sink.clone())?;
//! let handle = agent.handle(); // clone it into every scorer thread
//!
//! let timer = Timer::start();
//! let confidence = 0.87; // model.score(&features)
//! handle.record(&Prediction::new("email", timer, confidence).features(&[14.0, 0.0]));
//!
//! agent.shutdown()?;
//! assert_eq!(sink.snapshots()[0].predictions(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub use modelwatch_agent as agent;
#[allow(clippy::disallowed_types)] // for the binary's entry point, which picks the clock
pub use modelwatch_agent::SystemClock;
pub use modelwatch_agent::{
    Agent, AgentBuilder, Clock, Feature, FeatureStats, Handle, Latency, ManualClock, MemorySink,
    MetricHandle, MetricValue, NumericSummary, Prediction, SegmentSnapshot, Sink, SinkError, Snapshot, Timer,
    Timestamp,
};
pub use modelwatch_query as query;
pub use modelwatch_store as store;

pub mod baseline;
pub mod canary;
pub mod demo;
pub mod features;
mod lockfile;
pub mod registry;
pub mod report;
pub mod retrain;
pub mod serve;
pub mod time;
pub mod triggers;
