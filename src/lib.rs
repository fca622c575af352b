//! modelwatch: watch machine-learning models in production and close their retraining loop.
//!
//! This crate is the facade over the workspace: [`agent`] (the in-process hook a scorer
//! calls on every prediction), [`store`] (durable Arrow/Parquet storage) and `query` (the
//! read side). The crates below it never depend on the ones above: a scorer that only wants
//! recording and its own sink can depend on `modelwatch-agent` alone.
//!
//! # Data flow
//!
//! scorer thread → [`Handle::record`] → per-thread shard (lock-free) → flusher thread →
//! one [`Snapshot`] per interval → [`Sink`] ([`store::Store`]: WAL, then Parquet files
//! listed in a manifest; or your own sink).
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
pub use modelwatch_agent::{
    Agent, AgentBuilder, Clock, Feature, FeatureStats, Handle, Latency, ManualClock, MemorySink,
    MetricHandle, MetricValue, NumericSummary, Prediction, SegmentSnapshot, Sink, SinkError, Snapshot,
    SystemClock, Timer, Timestamp,
};
pub use modelwatch_store as store;

pub mod baseline;
pub mod serve;
pub mod triggers;
