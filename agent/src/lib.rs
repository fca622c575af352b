//! modelwatch-agent: the in-process hook a scorer calls on every prediction.
//!
//! # Data flow
//!
//! 1. A scorer thread calls [`Handle::record`] (or `feedback`, `error`, `log_metric`). The
//!    call writes the calling thread's own shard of counters: no lock, no allocation once
//!    the thread has recorded once, no syscall, no cache line shared with another recording
//!    thread; past the memory budget, threads share one shard with atomic read-modify-writes
//!    (`shard.rs` states the protocol).
//! 2. A flusher thread wakes at every interval boundary of the agent's [`Clock`], reads every
//!    shard, turns cumulative counters into interval deltas and builds one immutable
//!    [`Snapshot`] per interval: HdrHistogram latency, 1,000-bin confidence histograms (also
//!    split by true label from feedback), per-feature moments and relative-error
//!    [`Sketch`]es, errors and generic metrics, per segment.
//! 3. A delivery thread hands the snapshot to a [`Sink`]: the store (`modelwatch-store`), a
//!    [`MemorySink`], or your own; a slow sink never delays collection. A sink error keeps
//!    the snapshot and retries with backoff; snapshots that wait meanwhile are merged
//!    ([`Snapshot::merge`]: time resolution is lost, never a count), and only past a byte
//!    bound is the oldest dropped, counted in [`OverflowCounts`]. A value is durable once
//!    `Sink::write` has returned `Ok` for its snapshot (the store acknowledges after its WAL
//!    fsync): the open interval, the labels for earlier predictions not yet in a snapshot,
//!    and the snapshots still waiting for the sink live in this process's memory and die
//!    with it (a kill -9 loses them, up to the backlog's bound).
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
//! shards, a quarter for generic metric cells, a quarter for snapshots a failing sink holds
//! back. Every part is reserved against its share before it is used and returned when
//! freed; [`AgentStats::memory_reserved`] says what is reserved. Cells come zeroed from
//! `calloc`, so a page nobody writes is address space, not resident memory, and the budget
//! counts what can become resident: each shard's cells but its sketches, and a sketch's
//! 4 KiB regions as values arrive in them. Address space is bounded apart, at twice the
//! budget for shards. Every figure counts the flusher's mirror of the same cells, so it is
//! twice the cells' size. Each flush also builds one snapshot, proportional to the series
//! that changed, which is not counted; nor are the labels for earlier predictions waiting
//! for the next snapshot (at most [`AgentBuilder::max_pending_labels`], 3.6 MB at the
//! default; see "Labels").
//!
//! What things cost (8-byte cells, doubled for the mirror):
//!
//! - **A shard**, per segment: 16 + error kinds + 3,808 latency + 3,000 confidence cells,
//!   plus 16 cells per numeric feature and `categories + 3` per categorical one, plus one
//!   slot per metric series (64 bytes): [`AgentStats::shard_bytes`], 0.89 MB for 7
//!   segments × 32 numeric features, 0.82 MB for 7 × 4. Its address space,
//!   [`AgentStats::shard_address`], adds a 4,099-cell sketch per numeric feature and
//!   segment: 15.6 MB and 2.7 MB.
//! - **A sketch region**: 512 buckets (8 KiB with its mirror), paid the first time a value
//!   falls in it. A feature whose values span six decades pays for two or three of its nine;
//!   one of small spread, one. A value whose region finds no room keeps its count, moments
//!   and extremes and is counted in `overflow.sketch_over_budget`.
//! - **A thread**: the first call of a thread takes a free exclusive shard, or creates one
//!   while every shard, the shared one included, keeps room for three regions per numeric
//!   block (and the address bound allows). Otherwise the thread writes the agent's one
//!   **shared shard**, with atomic read-modify-writes: slower under contention, never lost.
//!   A thread that exits releases its shard; the next flush reads it one last time, frees it
//!   and returns its bytes.
//! - **A metric series**, per shard that writes it: a counter or gauge 240 bytes (a cache
//!   line of its own), a distribution 66 KB (its whole block, sketch included). Past the
//!   metrics' share, values go to the shared shard's cells for the series, then are dropped
//!   and counted (`overflow.metric_over_budget`).
//!
//! Two approximations: a region starts wherever its block does, so its 4 KiB usually spans
//! two pages and a sparse sketch can make up to twice its regions' bytes resident; and the
//! shared shard is never freed, so the regions and metric cells it paid for stay paid for the
//! agent's life (at most every region of its blocks).
//!
//! With the default budget, 64 threads recording 7 segments × 32 numeric features spread
//! over six decades get 4 exclusive shards and the shared one (measured by
//! `tests/footprint.rs` and `examples/footprint.rs`).
//!
//! # Canary routing
//!
//! [`router::Router`] decides which model answers a request during a canary: a request key
//! hashed with the experiment's salt, the challenger taking a fixed share of the hash space.
//! Sticky per key and reproducible in every process, monotone when the share changes, one
//! relaxed atomic load and a multiply per 16 key bytes (the facade's `ModelWatcher` uses
//! it).
//!
//! # Labels
//!
//! A label usually arrives after its prediction, and quality is judged over the predictions
//! *made* in a window. [`Handle::feedback_for`] takes the prediction's time: the label goes
//! to that prediction's interval (its *cohort*), however late it arrives, with the delay from
//! prediction to label; [`Handle::feedback`] is the same for a prediction made now. A label
//! for an earlier prediction travels through a bounded lock-free queue to the flusher, which
//! tallies it by prediction interval and segment; each snapshot carries the cohorts whose
//! labels arrived during it ([`Snapshot::cohorts`], [`CohortLabels`]), and the store writes
//! them at the prediction's interval. A label older than
//! [`AgentBuilder::max_label_delay`] (30 days) or finding the queue full
//! ([`AgentBuilder::max_pending_labels`]) is counted in [`OverflowCounts`], not recorded;
//! a prediction time after now is recorded at now and counted. Why this design:
//! `docs/decisions/0006-labels-by-prediction-cohort.md`.
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
//! - `labels`: labels for earlier predictions on their way to their cohort.
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
//! use modelwatch_agent::{Agent, Feature, ManualClock, MemorySink, Prediction, Timestamp};
//! use std::time::Duration;
//!
//! let sink = MemorySink::new();
//! let agent = Agent::builder("pii-confidence")
//!     .version("1.4.0")
//!     .segments(["email", "phone"])
//!     .features([Feature::numeric("token_count"), Feature::numeric("digit_ratio")])
//!     .clock(ManualClock::new(Timestamp::from_secs(1_764_115_260))) // default: the system clock
//!     .build(sink.clone())
//!     .unwrap();
//! let handle = agent.handle();
//! let email = handle.segment("email");
//!
//! handle.record(&Prediction::new(email, Duration::from_micros(850), 0.93).features(&[12.0, 0.0]));
//! handle.record(&Prediction::new("phone", Duration::from_micros(910), 0.71).features(&[9.0, f64::NAN]));
//! handle.feedback(email, 0.93, true);
//! // A label for a prediction made a minute ago counts with that minute's predictions.
//! handle.feedback_for(Timestamp::from_secs(1_764_115_200), "phone", 0.71, false);
//!
//! agent.shutdown().unwrap(); // flushes the last partial interval
//! let snapshots = sink.snapshots();
//! assert_eq!(snapshots.iter().map(|s| s.predictions()).sum::<u64>(), 2);
//! assert_eq!(snapshots.iter().flat_map(|s| &s.cohorts).map(|c| c.count()).sum::<u64>(), 1);
//! ```
#![forbid(unsafe_code)]

mod agent;
mod clock;
mod confidence;
mod examples;
mod flusher;
mod labels;
mod latency;
pub mod layout;
mod metrics;
mod registry;
pub mod router;
mod schema;
mod shard;
mod sink;
mod sketch;
mod snapshot;
mod sync;

pub use agent::{
    Agent, AgentBuilder, AgentStats, BuildError, DEFAULT_MAX_LABEL_DELAY, DEFAULT_MAX_PENDING_EXAMPLES,
    DEFAULT_MAX_PENDING_LABELS, DEFAULT_MEMORY_BUDGET, Handle, Latency, LocalRecorder, MetricHandle,
    Prediction, SegmentKey, Timer,
};
#[allow(clippy::disallowed_types)] // for the one caller that picks the wall clock
pub use clock::SystemClock;
pub use clock::{Clock, ManualClock, Timestamp};
pub use confidence::ConfidenceHistogram;
pub use examples::{LabelledExample, LabelledPrediction};
/// The latency histogram of a [`SegmentSnapshot`], re-exported so that a reader can name it
/// without depending on `hdrhistogram` itself.
pub use hdrhistogram::Histogram;
pub use metrics::{MetricKind, OVERFLOW_SERIES};
pub use schema::{ErrorKindId, Feature, FeatureKind, ModelIdentity, OTHER, OTHER_SEGMENT, SegmentId};
pub use sink::{MemorySink, NullSink, Sink, SinkError};
pub use sketch::Sketch;
pub use snapshot::{
    CategoryCounts, CohortLabels, FeatureSnapshot, FeatureStats, InvalidCounts, MetricSnapshot, MetricValue,
    ModelState, NumericSummary, OverflowCounts, SegmentSnapshot, Snapshot,
};
