//! The flush cycle: collecting an interval when the clock passes its end, and delivering the
//! snapshots to the sink. Reading the shards into one interval's deltas is
//! `crate::flusher`'s job.
//!
//! # Threads
//!
//! - The background flusher (`modelwatch-flush-<model>`) only collects: at every interval
//!   boundary it builds the snapshot, queues it in the backlog and wakes
//! - the delivery thread (`modelwatch-sink-<model>`, started by the flusher), which offers
//!   the backlog to the sink oldest first and retries a failing sink after 100 ms, doubling
//!   the delay up to the interval. A slow or failing sink never delays collection, so every
//!   snapshot covers one interval whatever the sink does.
//! - [`Agent::flush_due`](super::Agent::flush_due) and
//!   [`Agent::flush_now`](super::Agent::flush_now) collect and then deliver the backlog on
//!   the caller's thread, returning the sink's error; shutdown does so one last time after
//!   stopping both threads, then closes the sink.
//!
//! # Locks
//!
//! `Core::flush` ([`FlushState`]) is held while collecting; [`Delivery`]'s `sink` lock while
//! writing, so one thread at a time delivers and snapshots reach the sink in order, each once;
//! its `backlog` lock briefly by both. Order: `flush` before `backlog`, `sink` before
//! `backlog`; collecting never waits for the sink.
//!
//! # Backlog
//!
//! A delivered snapshot is forgotten; the others wait in the backlog. Past `MERGE_AFTER` (4)
//! waiting snapshots, or past half the byte bound (`AgentBuilder::max_pending_bytes`, bytes
//! by [`Snapshot::approx_bytes`]), the two oldest are merged ([`Snapshot::merge`]): an outage
//! costs time resolution, not counts. Only when even merging all that waits into one would
//! exceed the bound is the oldest dropped; the newest always stays. A drop is counted in the
//! `snapshots_dropped` and `predictions_dropped` overflow counts of the snapshot that waits
//! next, so it reaches the sink with it. A merged snapshot keeps its first one's `seq`.

use super::{AgentStats, Core};
use crate::clock::Timestamp;
use crate::flusher::{Mirror, collect};
use crate::labels::CohortTally;
use crate::sink::{Sink, SinkError};
use crate::snapshot::{ModelState, OverflowCounts, Snapshot};
use crate::sync::{self, Ordering};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Snapshots that may wait unmerged for a failing sink; past this many the oldest two merge.
const MERGE_AFTER: usize = 4;
/// The delivery thread's first retry delay after a sink error; it doubles up to the interval.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The collecting side of an agent, behind the agent's flush lock.
pub(super) struct FlushState {
    mirror: Mirror,
    seq: u64,
    start: Timestamp,
    end: Timestamp,
    closed: bool,
    delivery: Arc<Delivery>,
    /// Labels for past predictions drained from the queue since the last snapshot.
    labels: CohortTally,
}

impl FlushState {
    /// The state before the first flush: the interval `[start, start + interval)` is open;
    /// snapshots go to `sink`, and at most about `max_pending_bytes` of them wait for it.
    pub(super) fn new(
        start: Timestamp,
        interval: Duration,
        sink: Box<dyn Sink>,
        max_pending_bytes: usize,
        labels: CohortTally,
    ) -> Self {
        let (wake, woken) = crossbeam_channel::bounded(1);
        FlushState {
            mirror: Mirror::default(),
            seq: 0,
            start,
            end: start.saturating_add(interval),
            closed: false,
            labels,
            delivery: Arc::new(Delivery {
                sink: sync::Mutex::new(sink),
                backlog: sync::Mutex::new(Backlog::new(max_pending_bytes)),
                wake,
                woken,
                stop: AtomicBool::new(false),
            }),
        }
    }
}

/// The delivering side, shared by the flush lock's holders and the delivery thread.
pub(super) struct Delivery {
    /// Held while offering snapshots: one deliverer at a time.
    sink: sync::Mutex<Box<dyn Sink>>,
    backlog: sync::Mutex<Backlog>,
    /// A token for the delivery thread: something was queued, or it should stop.
    wake: Sender<()>,
    woken: Receiver<()>,
    stop: AtomicBool,
}

/// Snapshots waiting for the sink, oldest first.
struct Backlog {
    queue: VecDeque<Pending>,
    /// The snapshot a deliverer took out of `queue` and is writing: `(bytes, intervals)`.
    in_flight: Option<(usize, u64)>,
    /// Bytes of `queue` and `in_flight` together.
    bytes: usize,
    max_bytes: usize,
    /// Collected snapshots dropped so far.
    dropped: u64,
}

struct Pending {
    snapshot: Arc<Snapshot>,
    /// `snapshot.approx_bytes()`.
    bytes: usize,
    /// Collected snapshots merged into this one.
    intervals: u64,
}

/// The background flusher's loop: collect what is due until the agent says stop. It starts
/// the delivery thread and, when stopped, stops and joins it (the last partial interval and
/// the last delivery attempt are the caller's, see `Core::close`).
pub(super) fn run_flusher(core: &Core, stop: &Receiver<()>) {
    let delivery = sync::lock(&core.flush).delivery.clone();
    std::thread::scope(|scope| {
        let deliverer = std::thread::Builder::new()
            .name(format!("modelwatch-sink-{}", core.model.name.replace('\0', "")))
            .spawn_scoped(scope, || delivery.run(core.interval))
            .map_err(|e| tracing::error!(error = %e, "no delivery thread; delivering on the flusher thread"))
            .ok();
        loop {
            let wait = if core.clock.is_real_time() {
                let end = sync::lock(&core.flush).end;
                end.saturating_duration_since(core.clock.now()).max(Duration::from_millis(1))
            } else {
                // A simulated clock can jump at any time: look often.
                Duration::from_millis(5)
            };
            crossbeam_channel::select! {
                recv(stop) -> _ => break,
                // A burst of labels for past predictions: drain the queue before it fills
                // (at most its capacity, so a flood cannot hold the flush lock).
                recv(core.labels.woken) -> _ => {
                    let mut f = sync::lock(&core.flush);
                    core.labels.drain_into(&mut f.labels);
                }
                default(wait) => {}
            }
            // Whatever woke the flusher, an interval that ended is collected now: a flood of
            // labels never delays a snapshot.
            if deliverer.is_some() {
                core.collect_due();
            } else if let Err(e) = core.flush_due() {
                tracing::warn!(error = %e, "sink failed; snapshot kept for retry");
            }
        }
        delivery.stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = delivery.wake.try_send(());
        if let Some(t) = deliverer {
            // A panic there is the sink's; what it left pending is delivered by `close`.
            let _ = t.join();
        }
    });
}

impl Delivery {
    /// The delivery thread's loop: deliver when woken, back off while the sink fails.
    fn run(&self, interval: Duration) {
        let mut retry: Option<(Instant, Duration)> = None;
        loop {
            let woken = match retry {
                None => self.woken.recv().is_ok(),
                Some((at, _)) => !matches!(self.woken.recv_deadline(at), Err(RecvTimeoutError::Disconnected)),
            };
            if !woken || self.stop.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            if let Some((at, _)) = retry
                && Instant::now() < at
            {
                continue; // queued while backing off: it waits for the retry
            }
            match self.deliver() {
                Ok(()) => retry = None,
                Err(e) => {
                    let delay = retry
                        .map_or(FIRST_RETRY, |(_, d)| d.saturating_mul(2))
                        .min(interval.max(FIRST_RETRY));
                    tracing::warn!(error = %e, retry_in = ?delay, "sink failed; snapshots kept for retry");
                    // Past what an `Instant` holds (an interval of centuries): at the next snapshot.
                    retry = Instant::now().checked_add(delay).map(|at| (at, delay));
                }
            }
        }
    }

    /// Offers waiting snapshots to the sink, oldest first; stops at the first error, which
    /// puts the snapshot back at the front.
    fn deliver(&self) -> Result<(), SinkError> {
        let sink = sync::lock(&self.sink);
        loop {
            let next = {
                let mut b = sync::lock(&self.backlog);
                let Some(next) = b.queue.pop_front() else { return Ok(()) };
                b.in_flight = Some((next.bytes, next.intervals));
                next
            };
            let written =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.write(&next.snapshot)))
                    .unwrap_or_else(|_| {
                        Err(SinkError {
                            sink: "sink".into(),
                            seq: next.snapshot.seq,
                            message: "the sink panicked in write".into(),
                        })
                    });
            let mut b = sync::lock(&self.backlog);
            b.in_flight = None;
            match written {
                Ok(()) => b.bytes = b.bytes.saturating_sub(next.bytes),
                Err(e) => {
                    b.queue.push_front(next);
                    b.compact();
                    return Err(e);
                }
            }
        }
    }
}

impl Backlog {
    fn new(max_bytes: usize) -> Self {
        Backlog { queue: VecDeque::new(), in_flight: None, bytes: 0, max_bytes, dropped: 0 }
    }

    /// Queues a new snapshot, then merges or drops what waits to keep within the bounds.
    fn push(&mut self, snapshot: Snapshot) {
        let bytes = snapshot.approx_bytes();
        self.bytes = self.bytes.saturating_add(bytes);
        self.queue.push_back(Pending { snapshot: Arc::new(snapshot), bytes, intervals: 1 });
        self.compact();
    }

    /// Merges the oldest pair while more than `MERGE_AFTER` snapshots wait or they pass
    /// half the byte bound; past the bound, drops the oldest (never the newest) when merging
    /// everything into one would not fit.
    fn compact(&mut self) {
        while self.queue.len() >= 2 && (self.queue.len() > MERGE_AFTER || self.bytes > self.max_bytes / 2) {
            let mut merged = None;
            if self.queue.len() == 2 && self.bytes > self.max_bytes {
                // The last merge would leave one snapshot: make it only if that one fits.
                let mut all = (*self.queue[0].snapshot).clone();
                all.merge(&self.queue[1].snapshot);
                let in_flight = self.in_flight.map_or(0, |f| f.0);
                if in_flight.saturating_add(all.approx_bytes()) > self.max_bytes {
                    break;
                }
                merged = Some(all);
            }
            self.merge_oldest(merged);
        }
        while self.queue.len() >= 2 && self.bytes > self.max_bytes {
            self.drop_oldest();
        }
    }

    /// Merges the two oldest waiting snapshots (`merged`: that merge, already made).
    fn merge_oldest(&mut self, merged: Option<Snapshot>) {
        let Some(later) = self.queue.remove(1) else { return };
        let Some(first) = self.queue.front_mut() else { return };
        match merged {
            Some(m) => first.snapshot = Arc::new(m),
            None => Arc::make_mut(&mut first.snapshot).merge(&later.snapshot),
        }
        let bytes = first.snapshot.approx_bytes();
        self.bytes = self.bytes.saturating_sub(first.bytes + later.bytes).saturating_add(bytes);
        first.bytes = bytes;
        first.intervals += later.intervals;
    }

    /// Drops the oldest waiting snapshot; its count (and the drops it carried) move to the
    /// next one, which is delivered before any later snapshot.
    fn drop_oldest(&mut self) {
        let Some(gone) = self.queue.pop_front() else { return };
        self.bytes = self.bytes.saturating_sub(gone.bytes);
        self.dropped += gone.intervals;
        let (snapshots, predictions) = (
            gone.intervals.saturating_add(gone.snapshot.overflow.snapshots_dropped),
            gone.snapshot.predictions().saturating_add(gone.snapshot.overflow.predictions_dropped),
        );
        tracing::error!(
            snapshots = gone.intervals,
            predictions = gone.snapshot.predictions(),
            max_pending_bytes = self.max_bytes,
            "sink failing and its backlog past the byte bound: dropped the oldest pending snapshot"
        );
        if let Some(next) = self.queue.front_mut() {
            let o = &mut Arc::make_mut(&mut next.snapshot).overflow;
            o.snapshots_dropped = o.snapshots_dropped.saturating_add(snapshots);
            o.predictions_dropped = o.predictions_dropped.saturating_add(predictions);
        }
    }

    /// Snapshots waiting (a merged one once) and the collected snapshots they hold.
    fn waiting(&self) -> (usize, u64) {
        let (n, intervals) = self.in_flight.map_or((0, 0), |f| (1, f.1));
        (self.queue.len() + n, self.queue.iter().map(|p| p.intervals).sum::<u64>() + intervals)
    }
}

impl Core {
    /// Collects and delivers if the clock has passed the open interval's end.
    pub(super) fn flush_due(&self) -> Result<(), SinkError> {
        match self.collect_due() {
            Some(delivery) => delivery.deliver(),
            None => Ok(()),
        }
    }

    /// Collects what was recorded so far as a partial interval ending now, and delivers.
    pub(super) fn flush_partial(&self) -> Result<(), SinkError> {
        match self.collect_partial() {
            Some(delivery) => delivery.deliver(),
            None => Ok(()),
        }
    }

    /// Collects the open interval if the clock has passed its end; `None` when it has not
    /// (or the agent is closed).
    fn collect_due(&self) -> Option<Arc<Delivery>> {
        let mut f = sync::lock(&self.flush);
        let now = self.clock.now();
        if now < f.end || f.closed {
            return None;
        }
        let end = f.end;
        self.emit(&mut f, end);
        f.start = now.align_down(self.interval);
        f.end = f.start.saturating_add(self.interval);
        Some(f.delivery.clone())
    }

    fn collect_partial(&self) -> Option<Arc<Delivery>> {
        let mut f = sync::lock(&self.flush);
        if f.closed {
            return None;
        }
        let now = self.clock.now();
        let end = now.clamp(f.start, f.end);
        self.emit(&mut f, end);
        f.start = end;
        if f.start >= f.end {
            f.start = now.align_down(self.interval);
            f.end = f.start.saturating_add(self.interval);
        }
        Some(f.delivery.clone())
    }

    /// Collects the last partial interval, makes one last delivery attempt and closes the
    /// sink, once; later flushes do nothing. The caller has stopped the flusher (and with it
    /// the delivery thread). An error says how many snapshots stayed undelivered.
    pub(super) fn close(&self) -> Result<(), SinkError> {
        let result = self.flush_partial();
        let delivery = {
            let mut f = sync::lock(&self.flush);
            if f.closed {
                return result;
            }
            f.closed = true;
            f.delivery.clone()
        };
        let sink = sync::lock(&delivery.sink);
        let (left, intervals) = sync::lock(&delivery.backlog).waiting();
        let result = result.map_err(|e| {
            if left == 0 {
                return e;
            }
            let merged =
                if intervals > left as u64 { format!(", merged into {left},") } else { String::new() };
            let message =
                format!("{}; {intervals} snapshot(s){merged} stayed undelivered at shutdown", e.message);
            SinkError { message, ..e }
        });
        let closed = sink.close();
        result.and(closed)
    }

    pub(super) fn stats(&self) -> AgentStats {
        let f = sync::lock(&self.flush);
        let b = sync::lock(&f.delivery.backlog);
        AgentStats {
            snapshots: f.seq,
            pending: b.waiting().0,
            pending_bytes: b.bytes,
            dropped_snapshots: b.dropped,
            shards: self.shards.shards().len(),
            shard_bytes: self.shards.shard_cost(),
            shard_address: self.shards.shard_address(),
            memory_budget: self.memory_budget,
            memory_reserved: self.shards.budget.reserved() + self.metrics.budget.reserved(),
        }
    }

    /// Collects the interval `[f.start, end)` and queues its snapshot if it holds anything,
    /// waking the delivery thread.
    fn emit(&self, f: &mut FlushState, end: Timestamp) {
        let parts = collect(self, &mut f.mirror);
        self.labels.drain_into(&mut f.labels);
        let cohorts = f.labels.take(&self.segment_names);
        let labels = &self.labels;
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
                dropped: self.shards.dropped.swap(0, Ordering::Relaxed),
                labels_dropped: labels.dropped.swap(0, std::sync::atomic::Ordering::Relaxed),
                labels_too_late: labels.too_late.swap(0, std::sync::atomic::Ordering::Relaxed),
                labels_future: labels.future.swap(0, std::sync::atomic::Ordering::Relaxed),
                examples_dropped: self.examples.dropped.swap(0, std::sync::atomic::Ordering::Relaxed),
                examples_wrong_width: self.examples.wrong_width.swap(0, std::sync::atomic::Ordering::Relaxed),
                ..parts.overflow
            },
            cohorts,
            examples: self.examples.drain(&self.segment_names),
            example_features: self.features.iter().map(|f| f.name.clone()).collect(),
        };
        if snapshot.is_empty() {
            return;
        }
        f.seq += 1;
        sync::lock(&f.delivery.backlog).push(snapshot);
        let _ = f.delivery.wake.try_send(());
    }
}
