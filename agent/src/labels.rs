//! Labels for past predictions ([`crate::Handle::feedback_for`]): how a label finds the
//! interval of the prediction it labels.
//!
//! A label usually arrives long after its prediction (a user's correction, a chargeback, a
//! reviewer's verdict), and quality is judged over the predictions *made* in a window, not
//! over the labels that *arrived* in it (see `docs/decisions/0006-labels-by-prediction-cohort.md`).
//! So such a label does not go to the open interval's shard cells: the call puts a small
//! fixed-size record in a bounded lock-free queue (no lock, no allocation; a full queue is
//! counted in `OverflowCounts::labels_dropped`), and the flusher thread drains the queue
//! (whenever it is half full, and at every snapshot) into a bounded list of the same
//! records. The snapshot groups them by prediction interval (the agent's interval grid) and
//! segment: the confidence bins of positive and negative labels and the delays from
//! prediction to label. Each snapshot carries the cohorts whose labels arrived during it
//! ([`crate::CohortLabels`]); the store writes them at the *prediction's* interval, where
//! they merge with what is there already.
//!
//! A label older than [`crate::AgentBuilder::max_label_delay`] (30 days by default) is
//! counted in `labels_too_late`, not recorded: its cohort's quality was reported long ago.
//! A prediction time after the clock's now is recorded at now and counted in
//! `labels_future` (a clock skew between the scorer and the labeller).

use crate::clock::Timestamp;
use crate::snapshot::CohortLabels;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One label on its way to the flusher.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LabelRecord {
    /// The prediction's time, ns.
    pub predicted_ns: u64,
    /// The label's arrival, ns.
    pub arrived_ns: u64,
    /// The segment's index in the agent's segment names.
    pub segment: u16,
    /// The confidence bin.
    pub bin: u16,
    pub label: bool,
}

/// The queue between `feedback_for` callers and the flusher, and its counters.
pub(crate) struct LabelQueue {
    tx: Sender<LabelRecord>,
    rx: Receiver<LabelRecord>,
    /// A token for the flusher: the queue is half full, drain it before the interval ends.
    pub wake: Sender<()>,
    pub woken: Receiver<()>,
    capacity: usize,
    pub max_delay: Duration,
    pub dropped: AtomicU64,
    pub too_late: AtomicU64,
    pub future: AtomicU64,
}

impl LabelQueue {
    pub fn new(capacity: usize, max_delay: Duration) -> Self {
        let capacity = capacity.max(1);
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let (wake, woken) = crossbeam_channel::bounded(1);
        LabelQueue {
            tx,
            rx,
            wake,
            woken,
            capacity,
            max_delay,
            dropped: AtomicU64::new(0),
            too_late: AtomicU64::new(0),
            future: AtomicU64::new(0),
        }
    }

    /// Queues a label with a valid confidence bin; never blocks. `now` is the clock's time.
    pub fn push(&self, now: Timestamp, predicted: Timestamp, segment: u16, bin: u16, label: bool) {
        let predicted = if predicted > now {
            self.future.fetch_add(1, Ordering::Relaxed);
            now
        } else {
            predicted
        };
        if now.saturating_duration_since(predicted) > self.max_delay {
            self.too_late.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let r = LabelRecord {
            predicted_ns: predicted.as_nanos(),
            arrived_ns: now.as_nanos(),
            segment,
            bin,
            label,
        };
        match self.tx.try_send(r) {
            Ok(()) => {
                if self.tx.len() * 2 >= self.capacity {
                    let _ = self.wake.try_send(());
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let _ = self.wake.try_send(());
            }
        }
    }

    /// Moves queued labels into `tally`, at most the queue's capacity (producers may keep
    /// pushing: an unbounded drain would never end); labels past the tally's bound are
    /// counted as dropped.
    pub fn drain_into(&self, tally: &mut CohortTally) {
        let mut lost = 0u64;
        for r in self.rx.try_iter().take(self.capacity) {
            if !tally.add(r) {
                lost += 1;
            }
        }
        if lost > 0 {
            self.dropped.fetch_add(lost, Ordering::Relaxed);
        }
    }
}

/// Labels drained since the last snapshot, as they came: a fixed-size record each (its
/// memory is `max` records, kept from one interval to the next), grouped into cohorts only
/// when the snapshot is built.
pub(crate) struct CohortTally {
    interval: Duration,
    records: Vec<LabelRecord>,
    max: usize,
}

impl CohortTally {
    pub fn new(interval: Duration, max: usize) -> Self {
        CohortTally { interval, records: Vec::new(), max }
    }

    /// Adds one label; false (nothing added) when the tally holds `max` labels already.
    fn add(&mut self, r: LabelRecord) -> bool {
        if self.records.len() >= self.max {
            return false;
        }
        self.records.push(r);
        true
    }

    /// The labels tallied so far by prediction interval and segment, sorted by both; the
    /// tally is left empty.
    pub fn take(&mut self, segment_names: &[Arc<str>]) -> Vec<CohortLabels> {
        let interval = self.interval;
        let cohort = |r: &LabelRecord| Timestamp::from_nanos(r.predicted_ns).align_down(interval);
        self.records.sort_unstable_by_key(|r| (cohort(r), r.segment, r.bin));
        let mut out: Vec<CohortLabels> = Vec::new();
        for group in self.records.chunk_by(|a, b| cohort(a) == cohort(b) && a.segment == b.segment) {
            let start = cohort(&group[0]);
            let mut c = CohortLabels {
                start,
                end: start.saturating_add(interval),
                segment: segment_names
                    .get(group[0].segment as usize)
                    .or(segment_names.last())
                    .cloned()
                    .unwrap_or_else(|| "".into()),
                ..CohortLabels::default()
            };
            for bin in group.chunk_by(|a, b| a.bin == b.bin) {
                let positive = bin.iter().filter(|r| r.label).count() as u64;
                let negative = bin.len() as u64 - positive;
                if positive > 0 {
                    c.positive.push((bin[0].bin, positive));
                }
                if negative > 0 {
                    c.negative.push((bin[0].bin, negative));
                }
            }
            for r in group {
                c.delay.push(Duration::from_nanos(r.arrived_ns.saturating_sub(r.predicted_ns)).as_secs_f64());
            }
            out.push(c);
        }
        self.records.clear();
        out
    }
}
