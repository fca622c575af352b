//! The hot path: one shard of cumulative counters per recording thread.
//!
//! # Concurrency protocol
//!
//! A [`Shard`] is a flat array of 64-bit atomic cells owned by exactly one recording thread
//! at a time (the owner holds a lease, see `registry.rs`). Only the owner writes counters,
//! so an increment is a relaxed load and a relaxed store: no read-modify-write, no lock, no
//! contended cache line. The flusher only reads counters. Cells are cumulative and never
//! reset: the flusher keeps the previous value of every cell it read and reports
//! `current.wrapping_sub(previous)`, so every increment is reported in exactly one interval
//! whatever the timing, and totals over a run are exact.
//!
//! Each recording ends with a `Release` store to a *hint* counter (a segment's prediction,
//! feedback or error count; a feature's count, missing or invalid count). The flusher loads
//! hints with `Acquire` and reads a block's bulk cells only when its hint moved; a record
//! whose hint it did not see is picked up at a later flush, since the previous values it
//! keeps are only updated for cells it read. Latency and confidence cells are the exception:
//! the flusher scans them at every flush, so a latency recorded on its own needs no hint. A
//! record in flight at a flush may have its count in one interval and some of its cells (a
//! bucket, a sum) in the next.
//!
//! Min and max cannot be delta-encoded, so they live in two banks selected by the parity of
//! the agent's epoch, which the flusher bumps at every flush (the recorder loads it with
//! `Acquire`). Before bumping epoch `e` to `e + 1` the flusher resets bank `(e + 1) & 1`,
//! which was last written in epoch `e - 1` and read at the previous flush; after the bump it
//! reads bank `e & 1`. Writing min/max is the one place a non-owner (the flusher) writes a
//! recorder's cell: a recorder still writing bank `e & 1` after the flusher read it (a
//! thread preempted across the boundary) can lose that one value's min/max contribution,
//! never a count.
//!
//! Sums of numeric values are cumulative f64 sums of `x - shift`, with `shift` the first
//! value the shard saw for that series, which keeps the variance's cancellation small.
//! The delta of two cumulative sums is exact up to 2^-53 times the cumulative magnitude.

use crate::confidence::{CONFIDENCE_BINS, confidence_bin};
use crate::latency::{LATENCY_BUCKETS, LATENCY_MAX, latency_index};
use crate::schema::{Feature, FeatureKind};
use crate::sketch::{SKETCH_CELLS, sketch_cell, sketch_key};
use crate::sync::{AtomicBool, AtomicU64, Ordering, zeroed_cells};
use std::sync::{Arc, OnceLock};

/// Cells before the first block: keeps two shards' hot cells off one cache line.
const PAD: usize = 8;

// Segment header cells (offsets within a segment block).
pub(crate) const SEG_PREDICTIONS: usize = 0;
pub(crate) const SEG_PREDICTED_POSITIVE: usize = 1;
pub(crate) const SEG_FEEDBACK: usize = 2;
pub(crate) const SEG_INVALID_LATENCY: usize = 3;
pub(crate) const SEG_CLAMPED_LATENCY: usize = 4;
pub(crate) const SEG_INVALID_CONFIDENCE: usize = 5;
pub(crate) const SEG_INVALID_FEEDBACK: usize = 6;
pub(crate) const SEG_SCHEMA_ERRORS: usize = 7;
pub(crate) const SEG_LATENCY_SUM: usize = 8;
const SEG_HEADER: usize = 16;

// Numeric value block (a numeric feature, or a distribution metric).
pub(crate) const NUM_COUNT: usize = 0;
pub(crate) const NUM_MISSING: usize = 1;
pub(crate) const NUM_INVALID: usize = 2;
pub(crate) const NUM_SHIFT: usize = 3;
pub(crate) const NUM_SUM: usize = 4;
pub(crate) const NUM_SUMSQ: usize = 5;
pub(crate) const NUM_MIN: usize = 6; // two banks: 6, 7
pub(crate) const NUM_MAX: usize = 8; // two banks: 8, 9
pub(crate) const NUM_SKETCH: usize = 10;
/// Cells of a numeric block.
pub(crate) const NUM_BLOCK: usize = NUM_SKETCH + SKETCH_CELLS;

// Categorical block: count, missing, then one cell per category and one for `other`.
pub(crate) const CAT_COUNT: usize = 0;
pub(crate) const CAT_MISSING: usize = 1;
pub(crate) const CAT_FIRST: usize = 2;

/// Where each part of a shard lives. Computed once per agent, shared by all shards.
#[derive(Debug)]
pub(crate) struct Layout {
    pub segments: usize,
    pub error_kinds: usize,
    pub latency: usize,
    pub confidence: usize,
    pub feedback_positive: usize,
    pub feedback_negative: usize,
    pub features: Vec<FeatureSlot>,
    pub segment_stride: usize,
    pub len: usize,
}

/// A feature's block within a segment.
#[derive(Debug)]
pub(crate) struct FeatureSlot {
    pub offset: usize,
    /// `None` for numeric features; the vocabulary for categorical ones.
    pub categories: Option<Vec<Arc<str>>>,
}

impl Layout {
    pub fn new(segments: usize, error_kinds: usize, features: &[Feature]) -> Layout {
        let latency = SEG_HEADER + error_kinds;
        let confidence = latency + LATENCY_BUCKETS;
        let feedback_positive = confidence + CONFIDENCE_BINS;
        let feedback_negative = feedback_positive + CONFIDENCE_BINS;
        let mut offset = feedback_negative + CONFIDENCE_BINS;
        let mut slots = Vec::with_capacity(features.len());
        for f in features {
            offset = offset.next_multiple_of(8);
            let (size, categories) = match &f.kind {
                FeatureKind::Numeric => (NUM_BLOCK, None),
                FeatureKind::Categorical { categories } => {
                    (CAT_FIRST + categories.len() + 1, Some(categories.clone()))
                }
            };
            slots.push(FeatureSlot { offset, categories });
            offset += size;
        }
        let segment_stride = offset.next_multiple_of(8);
        Layout {
            segments,
            error_kinds,
            latency,
            confidence,
            feedback_positive,
            feedback_negative,
            features: slots,
            segment_stride,
            len: PAD + segments * segment_stride + PAD,
        }
    }

    /// First cell of segment `s`.
    #[inline]
    pub fn segment(&self, s: usize) -> usize {
        PAD + s * self.segment_stride
    }
}

/// A latency as the hot path sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LatencyNanos {
    Valid(u64),
    Invalid,
}

/// A feature value's category: a code in the vocabulary, or missing.
#[inline]
fn category_of(x: f64, vocabulary: usize) -> Option<usize> {
    if x.is_nan() {
        None
    } else if x >= 0.0 && x < vocabulary as f64 && x.fract() == 0.0 {
        Some(x as usize)
    } else {
        Some(vocabulary) // `other`
    }
}

/// Order-preserving map of f64 onto u64, with 0 left free to mean "unset".
#[inline]
pub(crate) fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

#[inline]
pub(crate) fn from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// One thread's counters. See the module docs for the protocol.
pub(crate) struct Shard {
    pub cells: Box<[AtomicU64]>,
    /// Set while a thread holds the lease to write this shard.
    pub claimed: AtomicBool,
    /// Cells of generic metric series, by series id, created on the thread's first use of
    /// a series and published through the `OnceLock` (its `get` is an `Acquire` load).
    pub metrics: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl Shard {
    pub fn new(len: usize, metric_series: usize) -> Shard {
        Shard {
            cells: zeroed_cells(len),
            claimed: AtomicBool::new(true),
            metrics: (0..metric_series).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The cells of metric series `id`, created on first use by this shard's owner.
    #[inline]
    pub fn metric_cells(&self, id: usize, len: usize) -> Option<MetricCells<'_>> {
        let cells = self.metrics.get(id)?.get_or_init(|| zeroed_cells(len));
        Some(MetricCells { cells })
    }

    #[inline]
    fn c(&self) -> Cells<'_> {
        Cells(&self.cells)
    }

    #[inline]
    fn add(&self, i: usize, v: u64) {
        self.c().add(i, v);
    }

    #[inline]
    fn add_release(&self, i: usize, v: u64) {
        self.c().add_release(i, v);
    }

    /// Records one latency value into segment base `seg`. The flusher scans latency cells
    /// at every flush, so this needs no publication hint.
    #[inline]
    pub fn record_latency(&self, layout: &Layout, seg: usize, latency: LatencyNanos) {
        match latency {
            LatencyNanos::Valid(ns) => {
                if ns > LATENCY_MAX {
                    self.add(seg + SEG_CLAMPED_LATENCY, 1);
                }
                let ns = ns.min(LATENCY_MAX);
                self.add(seg + layout.latency + latency_index(ns), 1);
                self.add(seg + SEG_LATENCY_SUM, ns);
            }
            LatencyNanos::Invalid => self.add(seg + SEG_INVALID_LATENCY, 1),
        }
    }

    /// Records one whole prediction. `seg` is the segment's first cell.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn record_prediction(
        &self,
        layout: &Layout,
        epoch: u64,
        seg: usize,
        latency: LatencyNanos,
        confidence: f64,
        predicted: Option<bool>,
        features: &[f64],
        categories: &[Option<&str>],
    ) {
        self.record_latency(layout, seg, latency);
        match confidence_bin(confidence) {
            Some(b) => self.add(seg + layout.confidence + b, 1),
            None => self.add(seg + SEG_INVALID_CONFIDENCE, 1),
        }
        if predicted == Some(true) {
            self.add(seg + SEG_PREDICTED_POSITIVE, 1);
        }
        // A vector of the wrong length is a schema error, except none at all when every
        // value came by category name.
        let by_name_only = features.is_empty() && !categories.is_empty();
        if features.len() != layout.features.len() && !by_name_only {
            self.add(seg + SEG_SCHEMA_ERRORS, 1);
        }
        let mut next_category = 0;
        for (i, slot) in layout.features.iter().enumerate() {
            // Positions the caller did not supply count as missing.
            let x = features.get(i).copied().unwrap_or(f64::NAN);
            let base = seg + slot.offset;
            match &slot.categories {
                None => self.record_value(base, epoch, x),
                Some(vocabulary) => {
                    let by_name = categories.get(next_category).copied().flatten();
                    next_category += 1;
                    let category = match by_name {
                        Some(name) => {
                            Some(vocabulary.iter().position(|c| &**c == name).unwrap_or(vocabulary.len()))
                        }
                        None => category_of(x, vocabulary.len()),
                    };
                    match category {
                        Some(c) => {
                            self.add(base + CAT_FIRST + c, 1);
                            self.add_release(base + CAT_COUNT, 1);
                        }
                        None => self.add_release(base + CAT_MISSING, 1),
                    }
                }
            }
        }
        self.add_release(seg + SEG_PREDICTIONS, 1);
    }

    /// Records a numeric value into the numeric block at `base`.
    #[inline]
    pub fn record_value(&self, base: usize, epoch: u64, x: f64) {
        self.c().record_value(base, epoch, x);
    }

    /// Records feedback: the confidence the model gave and the true label.
    #[inline]
    pub fn record_feedback(&self, layout: &Layout, seg: usize, confidence: f64, label: bool) {
        match confidence_bin(confidence) {
            Some(b) => {
                let hist = if label { layout.feedback_positive } else { layout.feedback_negative };
                self.add(seg + hist + b, 1);
                self.add_release(seg + SEG_FEEDBACK, 1);
            }
            None => self.add_release(seg + SEG_INVALID_FEEDBACK, 1),
        }
    }

    /// Records a scoring error of kind `kind`.
    #[inline]
    pub fn record_error(&self, seg: usize, kind: usize) {
        self.add_release(seg + SEG_HEADER + kind, 1);
    }
}

/// Single-writer operations on a run of cells: only the shard's owner calls these.
#[derive(Clone, Copy)]
pub(crate) struct Cells<'a>(pub &'a [AtomicU64]);

impl Cells<'_> {
    #[inline]
    pub fn load(self, i: usize) -> u64 {
        self.0[i].load(Ordering::Relaxed)
    }

    #[inline]
    pub fn add(self, i: usize, v: u64) {
        let c = &self.0[i];
        c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
    }

    /// Adds and publishes: everything this thread wrote before is visible to a flusher that
    /// sees the new value with `Acquire`.
    #[inline]
    pub fn add_release(self, i: usize, v: u64) {
        let c = &self.0[i];
        c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Release);
    }

    #[inline]
    pub fn add_f64(self, i: usize, x: f64) {
        let c = &self.0[i];
        c.store((f64::from_bits(c.load(Ordering::Relaxed)) + x).to_bits(), Ordering::Relaxed);
    }

    #[inline]
    fn raise(self, i: usize, k: u64) {
        let c = &self.0[i];
        if k > c.load(Ordering::Relaxed) {
            c.store(k, Ordering::Relaxed);
        }
    }

    /// Records a numeric value into the numeric block at `base`.
    #[inline]
    pub fn record_value(self, base: usize, epoch: u64, x: f64) {
        // One bounds check for the block; the constant offsets below need none.
        let b = Cells(&self.0[base..base + NUM_BLOCK]);
        if x.is_nan() {
            b.add_release(NUM_MISSING, 1);
            return;
        }
        if !x.is_finite() {
            b.add_release(NUM_INVALID, 1);
            return;
        }
        let n = b.load(NUM_COUNT);
        if n == 0 {
            b.0[NUM_SHIFT].store(x.to_bits(), Ordering::Relaxed);
        }
        let d = x - f64::from_bits(b.load(NUM_SHIFT));
        b.add_f64(NUM_SUM, d);
        b.add_f64(NUM_SUMSQ, d * d);
        let bank = (epoch & 1) as usize;
        let k = order_key(x);
        b.raise(NUM_MIN + bank, !k);
        b.raise(NUM_MAX + bank, k);
        b.add(NUM_SKETCH + sketch_cell(sketch_key(x)), 1);
        b.0[NUM_COUNT].store(n.wrapping_add(1), Ordering::Release);
    }
}

/// A generic metric series' cells in one shard. Counters use [`COUNTER_SUM`] and
/// [`COUNTER_UPDATES`]; distributions a numeric block at offset 0.
pub(crate) struct MetricCells<'a> {
    cells: &'a [AtomicU64],
}

pub(crate) const COUNTER_SUM: usize = 0;
pub(crate) const COUNTER_UPDATES: usize = 1;
pub(crate) const COUNTER_CELLS: usize = 2;

impl MetricCells<'_> {
    #[inline]
    pub fn increment(&self, x: f64) {
        let c = Cells(self.cells);
        c.add_f64(COUNTER_SUM, x);
        c.add_release(COUNTER_UPDATES, 1);
    }

    #[inline]
    pub fn observe(&self, epoch: u64, x: f64) {
        Cells(self.cells).record_value(0, epoch, x);
    }
}

/// Where segment error cells start (for the flusher).
pub(crate) const SEG_ERROR_CELLS: usize = SEG_HEADER;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn order_key_preserves_order_and_reserves_zero() {
        let xs = [f64::NEG_INFINITY, -1e300, -1.0, -0.0, 0.0, 1e-300, 1.0, 1e300, f64::INFINITY];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) <= order_key(w[1]));
        }
        for x in xs {
            assert_ne!(order_key(x), 0);
            assert_ne!(!order_key(x), 0);
            assert_eq!(from_order_key(order_key(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn categories_outside_the_vocabulary_are_other() {
        assert_eq!(category_of(1.0, 3), Some(1));
        assert_eq!(category_of(3.0, 3), Some(3));
        assert_eq!(category_of(-1.0, 3), Some(3));
        assert_eq!(category_of(0.5, 3), Some(3));
        assert_eq!(category_of(f64::NAN, 3), None);
    }
}
