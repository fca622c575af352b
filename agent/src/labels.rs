//! Labels for past predictions ([`crate::Handle::feedback_for`]): how a label finds the
//! interval of the prediction it labels.
//!
//! A label usually arrives long after its prediction (a user's correction, a chargeback, a
//! reviewer's verdict), and quality is judged over the predictions *made* in a window, not
//! over the labels that *arrived* in it (see `docs/decisions/0006-labels-by-prediction-cohort.md`).
//! So such a label does not go to the open interval's shard cells: the call puts a small
//! fixed-size record in a bounded lock-free queue (no lock, no allocation; a full queue is
//! counted in `OverflowCounts::labels_dropped`), and the flusher thread drains the queue
//! into per-cohort tallies: for each prediction interval (the agent's interval grid) and
//! segment, the confidence bins of positive and negative labels and the delays from
//! prediction to label. Each snapshot carries the cohorts whose labels arrived during it
//! ([`crate::CohortLabels`]); the store writes them at the *prediction's* interval, where
//! they merge with what is there already.
//!
//! A label older than [`crate::AgentBuilder::max_label_delay`] (30 days by default) is
//! counted in `labels_too_late`, not recorded: its cohort's quality was reported long ago.
//! A prediction time after the clock's now is recorded at now and counted in
//! `labels_future` (a clock skew between the scorer and the labeller).

use crate::clock::Timestamp;
use crate::snapshot::{CohortLabels, NumericSummary};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::HashMap;
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

    /// Moves every queued label into `tally`; labels past its bound are counted as dropped.
    pub fn drain_into(&self, tally: &mut CohortTally) {
        let mut lost = 0u64;
        for r in self.rx.try_iter() {
            if !tally.add(&r) {
                lost += 1;
            }
        }
        if lost > 0 {
            self.dropped.fetch_add(lost, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Tally {
    /// `(bin, positives, negatives)`, sorted by bin.
    bins: Vec<(u16, u64, u64)>,
    delay: NumericSummary,
}

/// Labels drained since the last snapshot, per (prediction interval, segment).
pub(crate) struct CohortTally {
    interval: Duration,
    cohorts: HashMap<(u64, u16), Tally>,
    /// Distinct (cohort, segment, bin) entries held now.
    entries: usize,
    /// At most this many entries are held between two snapshots.
    max_entries: usize,
}

impl CohortTally {
    pub fn new(interval: Duration, max_entries: usize) -> Self {
        CohortTally { interval, cohorts: HashMap::new(), entries: 0, max_entries }
    }

    /// Adds one label; false (nothing added) when the tally is at its bound and the label
    /// would need a new entry.
    fn add(&mut self, r: &LabelRecord) -> bool {
        let cohort = Timestamp::from_nanos(r.predicted_ns).align_down(self.interval).as_nanos();
        let full = self.entries >= self.max_entries;
        let t = match self.cohorts.get_mut(&(cohort, r.segment)) {
            Some(t) => t,
            None if full => return false,
            None => self.cohorts.entry((cohort, r.segment)).or_default(),
        };
        match t.bins.binary_search_by_key(&r.bin, |b| b.0) {
            Ok(i) => {
                let b = &mut t.bins[i];
                if r.label { b.1 += 1 } else { b.2 += 1 }
            }
            Err(_) if full => return false,
            Err(i) => {
                t.bins.insert(i, (r.bin, u64::from(r.label), u64::from(!r.label)));
                self.entries += 1;
            }
        }
        let delay = Duration::from_nanos(r.arrived_ns.saturating_sub(r.predicted_ns)).as_secs_f64();
        t.delay.push(delay);
        true
    }

    /// The cohorts tallied so far, sorted by prediction interval and segment; the tally is
    /// left empty.
    pub fn take(&mut self, segment_names: &[Arc<str>]) -> Vec<CohortLabels> {
        self.entries = 0;
        let mut out: Vec<CohortLabels> = self
            .cohorts
            .drain()
            .map(|((start, seg), t)| {
                let start = Timestamp::from_nanos(start);
                let pick = |f: fn(&(u16, u64, u64)) -> u64| -> Vec<(u16, u64)> {
                    t.bins.iter().map(|b| (b.0, f(b))).filter(|b| b.1 > 0).collect()
                };
                CohortLabels {
                    start,
                    end: start.saturating_add(self.interval),
                    segment: segment_names
                        .get(seg as usize)
                        .or(segment_names.last())
                        .cloned()
                        .unwrap_or_else(|| "".into()),
                    positive: pick(|b| b.1),
                    negative: pick(|b| b.2),
                    delay: t.delay,
                }
            })
            .collect();
        out.sort_by(|a, b| (a.start, &a.segment).cmp(&(b.start, &b.segment)));
        out
    }
}
