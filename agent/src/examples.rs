//! Labelled examples ([`crate::Handle::example`]): the feature vector of a prediction with
//! its label, kept whole for training (the quality metrics keep only bins).
//!
//! It is not the per-prediction path, but it runs on a scorer's or labeller's thread, so it
//! never blocks and never allocates for the values: the queue is two bounded channels over
//! a fixed pool of records, each allocated once at build with room for the agent's declared
//! feature count. A call takes a free record, copies the values into it and queues it; the
//! flusher turns queued records into [`LabelledExample`]s on the snapshot and gives the
//! records back. No free record (the flusher has not caught up) is counted in
//! [`crate::OverflowCounts::examples_dropped`]; a feature vector of another width than the
//! declared features is counted in [`crate::OverflowCounts::examples_wrong_width`] and
//! refused. A prediction ID longer than a record's reserved room grows that record once.

use crate::agent::SegmentKey;
use crate::clock::Timestamp;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Room reserved for a prediction ID in each record.
const ID_BYTES: usize = 48;

/// One labelled prediction, as a scorer hands it to [`crate::Handle::example`].
#[derive(Clone, Copy, Debug)]
pub struct LabelledPrediction<'a> {
    pub(crate) segment: SegmentKey<'a>,
    pub(crate) prediction_id: &'a str,
    pub(crate) predicted_at: Timestamp,
    pub(crate) labelled_at: Option<Timestamp>,
    pub(crate) features: &'a [f64],
    pub(crate) confidence: f64,
    pub(crate) label: bool,
}

impl<'a> LabelledPrediction<'a> {
    /// A prediction made at `predicted_at` in `segment` on `features` (the declared
    /// features in schema order, NaN for missing, categorical ones by code), which gave
    /// `confidence` and turned out to be `label`.
    pub fn new(
        segment: impl Into<SegmentKey<'a>>,
        predicted_at: Timestamp,
        features: &'a [f64],
        confidence: f64,
        label: bool,
    ) -> Self {
        LabelledPrediction {
            segment: segment.into(),
            prediction_id: "",
            predicted_at,
            labelled_at: None,
            features,
            confidence,
            label,
        }
    }

    /// The prediction's ID, as the scorer gave it (empty by default).
    pub fn id(mut self, prediction_id: &'a str) -> Self {
        self.prediction_id = prediction_id;
        self
    }

    /// When the label arrived (by default, the agent's clock at the call).
    pub fn labelled_at(mut self, t: Timestamp) -> Self {
        self.labelled_at = Some(t);
        self
    }
}

/// A labelled example on a [`crate::Snapshot`]: what the store keeps for training.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledExample {
    /// The prediction's ID.
    pub prediction_id: String,
    /// When the prediction was made.
    pub predicted_at: Timestamp,
    /// When its label arrived.
    pub labelled_at: Timestamp,
    /// The segment.
    pub segment: Arc<str>,
    /// The feature values, in the order of [`crate::Snapshot::example_features`].
    pub features: Vec<f64>,
    /// The confidence the model gave.
    pub confidence: f64,
    /// The label.
    pub label: bool,
}

/// A pooled record between a caller and the flusher.
struct Record {
    id: String,
    predicted_ns: u64,
    labelled_ns: u64,
    segment: u16,
    features: Vec<f64>,
    confidence: f64,
    label: bool,
}

/// The bounded queue of examples and its counters.
pub(crate) struct ExampleQueue {
    free_tx: Sender<Record>,
    free_rx: Receiver<Record>,
    full_tx: Sender<Record>,
    full_rx: Receiver<Record>,
    width: usize,
    capacity: usize,
    pub dropped: AtomicU64,
    pub wrong_width: AtomicU64,
}

impl ExampleQueue {
    /// A queue of `capacity` records (at least one), each with room for `width` values.
    pub fn new(capacity: usize, width: usize) -> Self {
        let capacity = capacity.max(1);
        let (free_tx, free_rx) = crossbeam_channel::bounded(capacity);
        let (full_tx, full_rx) = crossbeam_channel::bounded(capacity);
        for _ in 0..capacity {
            let r = Record {
                id: String::with_capacity(ID_BYTES),
                predicted_ns: 0,
                labelled_ns: 0,
                segment: 0,
                features: Vec::with_capacity(width),
                confidence: 0.0,
                label: false,
            };
            let _ = free_tx.try_send(r);
        }
        ExampleQueue {
            free_tx,
            free_rx,
            full_tx,
            full_rx,
            width,
            capacity,
            dropped: AtomicU64::new(0),
            wrong_width: AtomicU64::new(0),
        }
    }

    /// Queues one example; never blocks. Returns whether it was queued.
    pub fn push(&self, e: &LabelledPrediction<'_>, segment: u16, now: Timestamp) -> bool {
        if e.features.len() != self.width {
            self.wrong_width.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Ok(mut r) = self.free_rx.try_recv() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        r.features.clear();
        r.features.extend_from_slice(e.features);
        r.id.clear();
        r.id.push_str(e.prediction_id);
        r.predicted_ns = e.predicted_at.as_nanos();
        r.labelled_ns = e.labelled_at.unwrap_or(now).as_nanos();
        r.segment = segment;
        r.confidence = e.confidence;
        r.label = e.label;
        // Never full: there are only `capacity` records and both channels hold that many.
        if let Err(err) = self.full_tx.try_send(r) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = self.free_tx.try_send(err.into_inner());
            return false;
        }
        true
    }

    /// The queued examples (at most the pool's size: callers may keep pushing), their
    /// records given back to the pool.
    pub fn drain(&self, segments: &[Arc<str>]) -> Vec<LabelledExample> {
        let mut out = Vec::new();
        for r in self.full_rx.try_iter().take(self.capacity) {
            out.push(LabelledExample {
                prediction_id: r.id.clone(),
                predicted_at: Timestamp::from_nanos(r.predicted_ns),
                labelled_at: Timestamp::from_nanos(r.labelled_ns),
                segment: segments[usize::from(r.segment).min(segments.len() - 1)].clone(),
                features: r.features.clone(),
                confidence: r.confidence,
                label: r.label,
            });
            let _ = self.free_tx.try_send(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_and_a_wrong_width_are_counted_and_records_come_back() {
        let q = ExampleQueue::new(2, 3);
        let segs: Vec<Arc<str>> = vec!["a".into(), "other".into()];
        let t = Timestamp::from_millis(1_000);
        let ok = LabelledPrediction::new("a", t, &[1.0, f64::NAN, 1e300], 0.9, true).id("p1");
        assert!(q.push(&ok, 0, t));
        assert!(q.push(&ok, 0, t));
        assert!(!q.push(&ok, 0, t));
        assert!(!q.push(&LabelledPrediction::new("a", t, &[1.0], 0.9, true), 0, t));
        assert_eq!(q.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(q.wrong_width.load(Ordering::Relaxed), 1);
        let got = q.drain(&segs);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].prediction_id, "p1");
        assert_eq!(got[0].features[2], 1e300);
        assert!(got[0].features[1].is_nan());
        assert_eq!(got[0].labelled_at, t);
        // The records are back in the pool.
        assert!(q.push(&ok, 0, t));
        assert!(q.push(&ok, 0, t));
    }
}
