//! modelwatch-agent: the in-process hook a scorer calls on every prediction.
//!
//! # Data flow
//!
//! 1. A scorer thread calls [`Handle::record`] (or `feedback`, `error`, `log_metric`). The
//!    call writes the calling thread's own shard of cumulative counters: no lock, no
//!    allocation once the thread has recorded once, no syscall, no cache line shared with
//!    another recording thread (`shard.rs` states the protocol).
//! 2. A flusher thread wakes at every interval boundary of the agent's [`Clock`], reads every
//!    shard, turns cumulative counters into interval deltas and builds one immutable
//!    [`Snapshot`] per interval: HdrHistogram latency, 1,000-bin confidence histograms (also
//!    split by true label from feedback), per-feature moments and relative-error
//!    [`Sketch`]es, errors and generic metrics, per segment.
//! 3. A delivery thread hands the snapshot to a [`Sink`]: the store (`modelwatch-store`), a
//!    [`MemorySink`], or your own; a slow sink never delays collection. A sink error keeps
//!    the snapshot and retries with backoff; snapshots that wait meanwhile are merged
//!    ([`Snapshot::merge`]: time resolution is lost, never a count), and only past a byte
//!    bound is the oldest dropped, counted in [`OverflowCounts`].
//!
//! Exactness: over any run, with any number of threads and flushes, the counts in the
//! snapshots add up to the calls made (the stress and loom tests check this).
//!
//! # Memory
//!
//! Each thread that records owns one shard of `8 × (16 + 3 × 1,000 + 3,808 + errors +
//! features)` bytes per segment, where a numeric feature takes 4,107 cells (32.9 KB of
//! address space) and a categorical one `categories + 3` cells. Shards come from `calloc`,
//! so only the pages a scorer actually touches become resident: a numeric feature whose
//! values span a few binary orders of magnitude touches about one 4 KiB page of its sketch.
//! The flusher keeps one mirror of the same size per shard. Threads that exit hand their
//! shard to the next thread, so memory follows the number of threads recording at once.
//! Snapshots waiting for a failing sink take at most about
//! [`AgentBuilder::max_pending_bytes`] (16 MiB by default).
//!
//! # Modules
//!
//! - `agent`: the [`Agent`], its builder, the [`Handle`] a scorer records through, the
//!   [`Prediction`] it hands over, and the flush cycle that delivers snapshots to the sink.
//! - `shard`: the hot path: one shard of cumulative cells per recording thread, and the
//!   concurrency protocol between recorders and the flusher.
//! - `registry`: which shard a thread writes: leases in a thread-local.
//! - `flusher`: reads every shard into one interval's deltas and assembles the snapshot.
//! - `metrics`: generic metric series (`log_metric`, counters, gauges), bounded in number.
//! - `schema`: what the agent is told about the model: identity, features, segments.
//! - `snapshot`: the plain values one interval's flush produces.
//! - `sink`: where snapshots go: the [`Sink`] trait, [`MemorySink`] and [`NullSink`].
//! - `clock`: injected time; every interval boundary comes from a [`Clock`].
//! - `latency`, `confidence`, `sketch`: the three distributions' bucket layouts, and the
//!   [`ConfidenceHistogram`] and [`Sketch`] values built on them.
//! - [`layout`] (public): those bucket layouts, for the crates that store and read them.
//! - `sync`: std's synchronisation primitives, or loom's under `--cfg loom`.
//!
//! # Example
//!
//! ```
//! use modelwatch_agent::{Agent, Feature, MemorySink, Prediction};
//! use std::time::Duration;
//!
//! let sink = MemorySink::new();
//! let agent = Agent::builder("pii-confidence")
//!     .version("1.4.0")
//!     .segments(["email", "phone"])
//!     .features([Feature::numeric("token_count"), Feature::numeric("digit_ratio")])
//!     .build(sink.clone())
//!     .unwrap();
//! let handle = agent.handle();
//! let email = handle.segment("email");
//!
//! handle.record(&Prediction::new(email, Duration::from_micros(850), 0.93).features(&[12.0, 0.0]));
//! handle.record(&Prediction::new("phone", Duration::from_micros(910), 0.71).features(&[9.0, f64::NAN]));
//! handle.feedback(email, 0.93, true);
//!
//! agent.shutdown().unwrap(); // flushes the last partial interval
//! let snapshots = sink.snapshots();
//! assert_eq!(snapshots.iter().map(|s| s.predictions()).sum::<u64>(), 2);
//! ```
#![forbid(unsafe_code)]

mod agent;
mod clock;
mod confidence;
mod flusher;
mod latency;
pub mod layout;
mod metrics;
mod registry;
mod schema;
mod shard;
mod sink;
mod sketch;
mod snapshot;
mod sync;

pub use agent::{
    Agent, AgentBuilder, AgentStats, BuildError, Handle, Latency, LocalRecorder, MetricHandle, Prediction,
    SegmentKey, Timer,
};
#[allow(clippy::disallowed_types)] // for the one caller that picks the wall clock
pub use clock::SystemClock;
pub use clock::{Clock, ManualClock, Timestamp};
pub use confidence::ConfidenceHistogram;
/// The latency histogram of a [`SegmentSnapshot`], re-exported so that a reader can name it
/// without depending on `hdrhistogram` itself.
pub use hdrhistogram::Histogram;
pub use metrics::{MetricKind, OVERFLOW_SERIES};
pub use schema::{ErrorKindId, Feature, FeatureKind, ModelIdentity, OTHER, OTHER_SEGMENT, SegmentId};
pub use sink::{MemorySink, NullSink, Sink, SinkError};
pub use sketch::Sketch;
pub use snapshot::{
    CategoryCounts, FeatureSnapshot, FeatureStats, InvalidCounts, MetricSnapshot, MetricValue, ModelState,
    NumericSummary, OverflowCounts, SegmentSnapshot, Snapshot,
};
