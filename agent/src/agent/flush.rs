//! The flush cycle: the background flusher thread, closing an interval when the clock passes
//! its end, and delivering snapshots to the sink in order, with a bounded retry queue for a
//! failing sink. Reading the shards into one interval's deltas is `crate::flusher`'s job.

use super::{AgentStats, Core};
use crate::clock::Timestamp;
use crate::flusher::{Mirror, collect};
use crate::sink::{Sink, SinkError};
use crate::snapshot::{ModelState, OverflowCounts, Snapshot};
use crate::sync::{self, Ordering};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Snapshots a failing sink may hold back before the oldest are dropped (and counted).
const RETRY_QUEUE: usize = 1024;

/// The flusher's side of an agent, behind the agent's flush lock.
pub(super) struct FlushState {
    mirror: Mirror,
    seq: u64,
    start: Timestamp,
    end: Timestamp,
    pending: VecDeque<Arc<Snapshot>>,
    sink: Box<dyn Sink>,
    dropped_snapshots: u64,
    closed: bool,
}

impl FlushState {
    /// The state before the first flush: the interval `[start, start + interval)` is open.
    pub(super) fn new(start: Timestamp, interval: Duration, sink: Box<dyn Sink>) -> Self {
        FlushState {
            mirror: Mirror::default(),
            seq: 0,
            start,
            end: start.saturating_add(interval),
            pending: VecDeque::new(),
            sink,
            dropped_snapshots: 0,
            closed: false,
        }
    }
}

/// The background flusher's loop: flush what is due until the agent says stop.
pub(super) fn run_flusher(core: &Core, stop: &crossbeam_channel::Receiver<()>) {
    loop {
        let wait = if core.clock.is_real_time() {
            let end = sync::lock(&core.flush).end;
            end.saturating_duration_since(core.clock.now()).max(Duration::from_millis(1))
        } else {
            // A simulated clock can jump at any time: look often.
            Duration::from_millis(5)
        };
        match stop.recv_timeout(wait) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Err(e) = core.flush_due() {
                    tracing::warn!(error = %e, "sink failed; snapshot kept for retry");
                }
            }
            _ => return,
        }
    }
}

impl Core {
    pub(super) fn flush_due(&self) -> Result<(), SinkError> {
        let mut f = sync::lock(&self.flush);
        let now = self.clock.now();
        if now < f.end || f.closed {
            return Ok(());
        }
        let end = f.end;
        self.emit(&mut f, end);
        f.start = now.align_down(self.interval);
        f.end = f.start.saturating_add(self.interval);
        self.deliver(&mut f)
    }

    pub(super) fn flush_partial(&self) -> Result<(), SinkError> {
        let mut f = sync::lock(&self.flush);
        if f.closed {
            return Ok(());
        }
        let now = self.clock.now();
        let end = now.clamp(f.start, f.end);
        self.emit(&mut f, end);
        f.start = end;
        if f.start >= f.end {
            f.start = now.align_down(self.interval);
            f.end = f.start.saturating_add(self.interval);
        }
        self.deliver(&mut f)
    }

    /// Flushes the last partial interval and closes the sink, once; later flushes do
    /// nothing. The caller has stopped the flusher thread.
    pub(super) fn close(&self) -> Result<(), SinkError> {
        let result = self.flush_partial();
        let mut f = sync::lock(&self.flush);
        if f.closed {
            return result;
        }
        f.closed = true;
        let closed = f.sink.close();
        result.and(closed)
    }

    pub(super) fn stats(&self) -> AgentStats {
        let f = sync::lock(&self.flush);
        AgentStats {
            snapshots: f.seq,
            pending: f.pending.len(),
            dropped_snapshots: f.dropped_snapshots,
            shards: self.shards.shards().len(),
            shard_bytes: self.layout.len * 8,
        }
    }

    /// Collects the interval `[f.start, end)` and queues its snapshot if it holds anything.
    fn emit(&self, f: &mut FlushState, end: Timestamp) {
        let parts = collect(self, &mut f.mirror);
        let loaded_at = self.loaded_at.load(std::sync::atomic::Ordering::Acquire);
        let snapshot = Snapshot {
            seq: f.seq,
            start: f.start,
            end,
            model: self.model.clone(),
            segments: parts.segments,
            features: parts.features,
            metrics: parts.metrics,
            model_state: ModelState {
                loaded: self.loaded.load(std::sync::atomic::Ordering::Relaxed),
                loaded_at: (loaded_at != 0).then_some(Timestamp::from_nanos(loaded_at)),
            },
            overflow: OverflowCounts {
                metric_series: self.metrics.overflowed.swap(0, Ordering::Relaxed),
                kind_conflicts: self.metrics.kind_conflicts.swap(0, Ordering::Relaxed),
                dropped: self.shards.dropped.swap(0, Ordering::Relaxed),
                ..OverflowCounts::default()
            },
        };
        if snapshot.is_empty() {
            return;
        }
        f.seq += 1;
        if f.pending.len() == RETRY_QUEUE {
            f.pending.pop_front();
            f.dropped_snapshots += 1;
            tracing::error!("sink failing for {RETRY_QUEUE} snapshots; dropping the oldest");
        }
        f.pending.push_back(Arc::new(snapshot));
    }

    /// Offers queued snapshots to the sink in order; stops at the first failure.
    fn deliver(&self, f: &mut FlushState) -> Result<(), SinkError> {
        while let Some(s) = f.pending.front() {
            f.sink.write(s)?;
            f.pending.pop_front();
        }
        Ok(())
    }
}
