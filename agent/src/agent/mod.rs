//! The agent: the [`Agent`] a scorer starts, and the [`Core`] its handles and its flusher
//! share.
//!
//! - `builder`: [`AgentBuilder`] and [`BuildError`]: options, defaults, validation, start-up.
//! - `prediction`: [`Prediction`], [`SegmentKey`], [`Latency`], [`Timer`]: what a scorer
//!   hands to a record call.
//! - `handle`: [`Handle`], [`LocalRecorder`], [`MetricHandle`]: the record calls, the start
//!   of the hot path that `registry.rs` and `shard.rs` finish.
//! - `flush`: the flusher thread, interval boundaries, and the delivery thread and backlog
//!   that take snapshots to the sink.

mod builder;
mod flush;
mod handle;
mod prediction;

pub use builder::{
    AgentBuilder, BuildError, DEFAULT_MAX_LABEL_DELAY, DEFAULT_MAX_PENDING_EXAMPLES,
    DEFAULT_MAX_PENDING_LABELS, DEFAULT_MEMORY_BUDGET,
};
pub use handle::{Handle, LocalRecorder, MetricHandle};
pub use prediction::{Latency, Prediction, SegmentKey, Timer};

use crate::clock::Clock;
use crate::examples::ExampleQueue;
use crate::labels::LabelQueue;
use crate::metrics::MetricRegistry;
use crate::registry::ShardRegistry;
use crate::schema::{Feature, ModelIdentity};
use crate::shard::Layout;
use crate::sink::SinkError;
use crate::sync::{self, AtomicU64, Ordering};
use flush::FlushState;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::thread::JoinHandle;
use std::time::Duration;

/// State shared by the agent, its handles and its flusher.
pub(crate) struct Core {
    pub layout: Layout,
    pub segment_names: Vec<Arc<str>>,
    pub error_kinds: Vec<Arc<str>>,
    pub features: Vec<Feature>,
    pub model: Arc<ModelIdentity>,
    /// Bumped by every flush; its parity picks the min/max bank (see `shard.rs`).
    pub epoch: AtomicU64,
    pub shards: ShardRegistry,
    pub metrics: MetricRegistry,
    /// Labels for past predictions on their way to the flusher (see `labels.rs`).
    pub labels: LabelQueue,
    /// Labelled examples on their way to the flusher (see `examples.rs`).
    pub examples: ExampleQueue,
    interval: Duration,
    memory_budget: usize,
    clock: Arc<dyn Clock>,
    loaded: AtomicI64,
    loaded_at: std::sync::atomic::AtomicU64,
    flush: sync::Mutex<FlushState>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shards.closed.store(true, Ordering::Relaxed);
    }
}

/// Counters about the agent itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Snapshots produced so far.
    pub snapshots: u64,
    /// Snapshots waiting for the sink (being written, or kept for a failing sink). Several
    /// merged into one while they waited count once.
    pub pending: usize,
    /// Estimated memory of the pending snapshots, bytes ([`crate::Snapshot::approx_bytes`]),
    /// held near [`AgentBuilder::max_pending_bytes`] by merging them.
    pub pending_bytes: usize,
    /// Snapshots dropped because a failing sink let the merged backlog pass
    /// [`AgentBuilder::max_pending_bytes`] (each also counted in the overflow counts of a
    /// later snapshot the sink receives).
    pub dropped_snapshots: u64,
    /// Shards: one per thread recording at once within the budget, plus the shared shard
    /// once a thread past the budget (or a metric past its share) needed it.
    pub shards: usize,
    /// Bytes one shard takes from the memory budget before any value arrives: its cells but
    /// the sketches', the flusher's mirror of them and its table of metric cells. Sketch
    /// regions are charged as values arrive (see "Memory" in the crate docs).
    pub shard_bytes: usize,
    /// Address space one shard takes, sketches included (bounded apart, at twice the budget).
    pub shard_address: usize,
    /// The memory budget, bytes ([`AgentBuilder::memory_budget`]).
    pub memory_budget: usize,
    /// Bytes allocated within the budget now: shards with their mirrors and metric cells.
    pub memory_reserved: usize,
}

/// The in-process recorder of one model variant. Dropping it flushes the last partial
/// interval and stops the flusher; use [`Agent::handle`] to record.
pub struct Agent {
    handle: Handle,
    stop: crossbeam_channel::Sender<()>,
    flusher: Option<JoinHandle<()>>,
}

impl Agent {
    /// Starts configuring an agent for the model `name`.
    pub fn builder(name: &str) -> AgentBuilder {
        AgentBuilder::new(name)
    }

    /// A cheap, cloneable handle for recording from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Flushes every interval whose end the clock has passed, then delivers the snapshots
    /// waiting for the sink on this thread, returning the sink's error (the snapshots stay
    /// pending). The background flusher collects the same way but leaves delivery to its own
    /// thread; a backfill driving a manual clock calls this before recording a value whose
    /// timestamp is past the current interval.
    pub fn flush_due(&self) -> Result<(), SinkError> {
        self.handle.core.flush_due()
    }

    /// Flushes what was recorded so far as a partial interval ending now, then delivers the
    /// snapshots waiting for the sink on this thread, returning the sink's error.
    pub fn flush_now(&self) -> Result<(), SinkError> {
        self.handle.core.flush_partial()
    }

    /// Counters about the agent itself.
    pub fn stats(&self) -> AgentStats {
        self.handle.core.stats()
    }

    /// Stops the flusher and the delivery thread, flushes the last partial interval, makes one
    /// last attempt to deliver what is pending and closes the sink. An error says how many
    /// snapshots stayed undelivered. Values recorded through handles after this are not
    /// delivered.
    pub fn shutdown(mut self) -> Result<(), SinkError> {
        self.stop_and_flush()
    }

    fn stop_and_flush(&mut self) -> Result<(), SinkError> {
        let _ = self.stop.try_send(());
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
        self.handle.core.close()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_flush() {
            tracing::error!(error = %e, "final flush failed at agent drop");
        }
    }
}
