//! modelwatch-agent: the in-process hook a scorer calls on every prediction.
//!
//! # Data flow
//!
//! 1. A scorer thread calls [`Handle::record`] (or `feedback`, `error`, `log_metric`). The
//!    call writes the calling thread's own shard of counters: no lock, no allocation once
//!    the thread has recorded once (a numeric value's first sketch chunk in a new range
//!    aside), no syscall, no cache line shared with another recording thread; past the
//!    memory budget, threads share one shard with atomic read-modify-writes (`shard.rs`
//!    states the protocol).
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
//! snapshots add up to the calls made. Per interval, a numeric value's count, mean, m2, min
//! and max, and a counter's sum, belong to exactly the calls of that interval, even with
//! calls in flight at the flush (an epoch hand-shake, see `shard.rs`). NaN and infinite
//! counter or gauge values are counted, never applied. The loom model, `tests/values.rs`
//! and `tests/hostile.rs` check these.
//!
//! # Memory
//!
//! The agent allocates within a **memory budget** ([`AgentBuilder::memory_budget`], default
//! [`DEFAULT_MEMORY_BUDGET`] = 64 MiB) whatever the number of threads: half for recording
//! shards and their sketch chunks, a quarter for generic metric cells, a quarter for
//! snapshots a failing sink holds back. Every allocation is reserved against its share
//! first and returned when freed; [`AgentStats::memory_reserved`] says what is in use. The
//! figures are address space (cells come zeroed from `calloc`, so untouched pages are not
//! resident) and each counts the flusher's mirror of the same cells, so it is twice the
//! cells' size. Each flush also builds one snapshot, proportional to the series that
//! changed, which is not counted.
//!
//! What things cost (8-byte cells, doubled for the mirror):
//!
//! - **A shard**, per segment: 16 + error kinds + 3,808 latency + 3,000 confidence cells,
//!   plus 18 cells per numeric feature and `categories + 3` per categorical one; plus a
//!   table of 16 sketch-chunk slots per numeric feature and segment (40 bytes each) and one
//!   slot per metric series (64 bytes). [`AgentStats::shard_bytes`] is the total: about
//!   1.06 MB for 7 segments × 32 numeric features, 0.86 MB for 7 segments × 4 (latency
//!   and confidence buckets dominate).
//! - **A sketch chunk**: 4 KiB, eight binary orders of magnitude of one feature in one
//!   segment and shard, allocated the first time a value falls in its range. A feature whose
//!   values span six decades needs three or four (about 14 KiB per shard and segment); a
//!   feature of small spread, one.
//! - **A thread**: the first call of a thread takes a free exclusive shard, or creates one if
//!   exclusive shards then hold at most half the shards' share (so the other half stays for
//!   chunks). Otherwise the thread writes the agent's one **shared shard**, with atomic
//!   read-modify-writes: slower under contention, never lost. A thread that exits releases
//!   its shard; the next flush reads it one last time, frees it and returns its bytes.
//! - **A metric series**, per shard that writes it: a counter or gauge 240 bytes (a cache
//!   line of its own), a distribution 288 bytes plus its chunk table (640 bytes) and chunks.
//!   Past the metrics' share, values go to the shared shard's cells for the series, then
//!   are dropped and counted (`overflow.metric_over_budget`).
//!
//! When a share is spent nothing already recorded is lost and every loss is counted: a
//! value whose sketch chunk finds no room keeps its count, moments and extremes and is
//! counted in `overflow.sketch_over_budget`. With the default budget, 64 threads recording
//! 7 segments × 32 numeric features spread over six decades get 5 exclusive shards and the
//! shared one (measured by `tests/footprint.rs` and `examples/footprint.rs`).
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
    Agent, AgentBuilder, AgentStats, BuildError, DEFAULT_MEMORY_BUDGET, Handle, Latency, LocalRecorder,
    MetricHandle, Prediction, SegmentKey, Timer,
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
