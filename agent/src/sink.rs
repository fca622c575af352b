//! Where snapshots go. The store implements [`Sink`]; [`MemorySink`] keeps them in memory for
//! tests and examples.

use crate::snapshot::Snapshot;
use std::sync::{Arc, Mutex};

/// A sink refused or failed to take a snapshot. The agent keeps the snapshot and offers it
/// again (after a backoff, or at the next explicit flush), merging the snapshots that wait
/// meanwhile, so a sink error loses no count until the merged backlog passes
/// [`AgentBuilder::max_pending_bytes`](crate::AgentBuilder::max_pending_bytes); what is
/// dropped then is counted in
/// [`crate::OverflowCounts`].
#[derive(Debug, thiserror::Error)]
#[error("sink {sink} could not take snapshot {seq}: {message}")]
pub struct SinkError {
    /// The sink that failed (its type or path).
    pub sink: String,
    /// The snapshot it failed on.
    pub seq: u64,
    /// What went wrong.
    pub message: String,
}

/// Receives every snapshot the agent produces, in sequence order, one call at a time: on the
/// agent's delivery thread (`modelwatch-sink-<model>`), or on the thread that calls
/// `Agent::flush_now`, `flush_due` or `shutdown`. A slow `write` delays only delivery, never
/// collection; snapshots that wait for it are merged (see [`Snapshot::merge`]).
///
/// `write` returning `Ok` is the acknowledgement: after it the agent forgets the snapshot.
/// After an error the snapshot is offered again, possibly merged with later ones.
pub trait Sink: Send + Sync + 'static {
    /// Takes one snapshot.
    fn write(&self, snapshot: &Arc<Snapshot>) -> Result<(), SinkError>;

    /// Called once at shutdown, after the last snapshot.
    fn close(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for Arc<S> {
    fn write(&self, snapshot: &Arc<Snapshot>) -> Result<(), SinkError> {
        (**self).write(snapshot)
    }

    fn close(&self) -> Result<(), SinkError> {
        (**self).close()
    }
}

/// A sink that keeps every snapshot in memory. Clone it to keep a reader while the agent
/// owns a writer.
#[derive(Clone, Default)]
pub struct MemorySink {
    snapshots: Arc<Mutex<Vec<Arc<Snapshot>>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The snapshots received so far.
    pub fn snapshots(&self) -> Vec<Arc<Snapshot>> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the snapshots received so far, leaving the sink empty.
    pub fn take(&self) -> Vec<Arc<Snapshot>> {
        std::mem::take(&mut *self.snapshots.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Sink for MemorySink {
    fn write(&self, snapshot: &Arc<Snapshot>) -> Result<(), SinkError> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner()).push(snapshot.clone());
        Ok(())
    }
}

/// A sink that drops every snapshot: for benchmarks and for agents that only feed in-process
/// detectors.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn write(&self, _: &Arc<Snapshot>) -> Result<(), SinkError> {
        Ok(())
    }
}
