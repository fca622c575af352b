//! The demo: a simulated scorer played through the agent hook into a store, and what the
//! detectors, quality metrics and triggers find in it. `modelwatch demo` parses its flags
//! and prints the [`Summary`]; the tests and benches use the same [`Rng`].
//!
//! - `scenario`: scenarios as data (traffic, segments, features, the drift injected).
//! - `simulate`: a [`Run`] of a scenario written minute by minute on a manual clock.
//! - `summary`: the figures read back through the query engine, and the triggers' events.
//! - `closing`: after the history, the loop closed through the registry: retrain, gate,
//!   canary, promotion; a candidate rejected at the gate; a canary rolled back.
//! - `rng`: the seeded generator.
//!
//! ```
//! use modelwatch::demo::{Run, scenario, summarise};
//! use modelwatch_store::{Store, StoreConfig};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) })?);
//! let run = Run { scenario: &scenario::PII, days: 1, end_ms: 1_764_115_200_000, seed: 42 };
//! let written = run.write(&store, |_, _| {})?;
//! store.flush()?;
//! let summary = summarise(&run, &written, &store, dir.path())?;
//! assert!(summary.drifting.iter().any(|d| d.feature == "doc_length"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod closing;
mod rng;
pub mod scenario;
mod simulate;
mod summary;

pub use closing::{Closing, LOOP_HOURS, Moment, Round, SegmentPrecision, TRUTH_DOCS, close_loop};
pub use rng::Rng;
pub use scenario::Scenario;
pub use simulate::{Run, Simulated};
pub use summary::{Alarm, Drifting, Event, Figure, QualityAfter, Summary, summarise, trigger_config};

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The scenario names something it does not define.
    #[error("{0}")]
    Scenario(String),
    /// An agent could not be built.
    #[error(transparent)]
    Build(#[from] modelwatch_agent::BuildError),
    /// The store refused a snapshot.
    #[error(transparent)]
    Sink(#[from] modelwatch_agent::SinkError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] modelwatch_store::StoreError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] modelwatch_query::QueryError),
    /// A scenario's query does not parse.
    #[error(transparent)]
    Parse(#[from] modelwatch_query::ParseError),
    /// The triggers failed.
    #[error(transparent)]
    Triggers(#[from] crate::triggers::TriggerError),
    /// The demo's model could not be trained, registered or loaded.
    #[error("the demo's model: {0}")]
    Model(String),
}
