//! The hot path: one shard of counters per recording thread (or, past the memory budget,
//! per group of threads).
//!
//! # Concurrency protocol
//!
//! A [`Shard`] is a flat array of 64-bit atomic cells. An *exclusive* shard is written by
//! exactly one recording thread at a time (the owner holds a lease, see `registry.rs`), so an
//! increment is a relaxed load and a relaxed store: no read-modify-write, no lock, no
//! contended cache line. A *shared* shard (threads beyond the memory budget's shards) is
//! written by several threads with atomic read-modify-writes (`fetch_add`, `fetch_max`, a
//! compare-and-swap loop for float sums): slower under contention, never lost.
//!
//! Two kinds of cells:
//!
//! - **Cumulative counters** (predictions, latency and confidence buckets, sketch buckets,
//!   missing and invalid counts) are never reset. The flusher keeps the previous value of
//!   every cell it read and reports `current.wrapping_sub(previous)`, so every increment is
//!   reported in exactly one interval and totals over a run are exact. A latency recorded on
//!   its own needs no synchronisation: the flusher scans those cells at every flush. Other
//!   counts end with a `Release` store to a hint (a segment's prediction, feedback or error
//!   count; a feature's missing or invalid count) that the flusher loads with `Acquire`.
//! - **Interval banks** hold a numeric value's moments: count, shift, sum and sum of squares
//!   of `x - shift`, min and max. There are two banks, picked by the parity of the agent's
//!   epoch, which the flusher bumps at every flush. The shift is the first value a bank
//!   receives in its interval, so a `1e10` sentinel in one interval does not cost the next
//!   interval its precision, and the cancellation in `m2 = Σd² − (Σd)²/n` stays small: the
//!   first value's squared deviation is itself part of `m2`, so `Σd² ≤ n·m2`.
//!
//! A numeric block's sketch is addressed directly, one cell per bucket; the memory budget
//! pays for it by region of 512 buckets, marked in a mask cell of the block the first time a
//! value falls in a region (`pay_region`). A value whose region finds no room is counted,
//! not sketched.
//!
//! # The epoch hand-shake
//!
//! A call that writes a bank *enters* the epoch first: it loads the epoch `e`, marks bank
//! `e & 1` in flight on its shard, issues a `SeqCst` fence and loads the epoch again; if it
//! moved, it unmarks and starts over with the new epoch. The flusher stores `e + 1`, issues
//! a `SeqCst` fence, then waits on every shard until bank `e & 1` has no call in flight. The
//! two fences are ordered one way or the other (Dekker's pattern), so a call either marked
//! itself before the flusher looked (and the flusher waits for it) or saw `e + 1` on its
//! second load (and writes the other bank). (Fences rather than `SeqCst` accesses because
//! loom models `SeqCst` fences exactly and `SeqCst` accesses only as acquire/release.) So
//! when the flusher reads bank `e & 1`, every value of epoch `e` is in it, completely, and
//! nothing else will write it until epoch `e + 2`, whose writers see the flusher's reset
//! through the epoch store. Per interval, count, mean, m2, min and max are therefore exact,
//! even with values in flight at the flush; the cost is one `SeqCst` fence per recording
//! call that carries numeric values (an `mfence` on x86), and a flush waits for calls in
//! flight (nanoseconds, or as long as a descheduled scorer thread stays off its core).
//!
//! Cumulative cells are not part of the hand-shake: a call in flight at a flush may have its
//! sketch bucket or its prediction count read in one interval and its moments in the next
//! (so an interval's sketch can count one value more or less than its `count`). Over any run
//! every figure is exact.

use crate::confidence::{CONFIDENCE_BINS, confidence_bin};
use crate::latency::{LATENCY_BUCKETS, LATENCY_MAX, latency_index};
use crate::registry::Budget;
use crate::schema::{Feature, FeatureKind};
use crate::sketch::{REGION_CELLS, SKETCH_CELLS, SKETCH_REGIONS, sketch_cell, sketch_key};
use crate::sync::{AtomicBool, AtomicU64, OnceCell, Ordering, fence, zeroed_cells};
use std::sync::Arc;

/// Bytes a sketch region costs against the budget: its cells and the flusher's mirror.
pub(crate) const REGION_BYTES: usize = REGION_CELLS * 16;
/// A `NUM_REGIONS` mask with every region paid for.
pub(crate) const ALL_REGIONS: u64 = if SKETCH_REGIONS >= 64 { u64::MAX } else { (1 << SKETCH_REGIONS) - 1 };

// Shard header cells (before the first segment), written by the recording threads.
/// Calls in flight on bank 0 and bank 1 (see the hand-shake in the module docs).
const H_INFLIGHT: usize = 0;
/// Metric values sent to the overflow series because their series was past the limit.
pub(crate) const H_OVERFLOWED: usize = 2;
/// Metric values logged under another kind than their series' first kind.
pub(crate) const H_KIND_CONFLICTS: usize = 3;
/// Counter increments and gauge values that were NaN or infinite (not applied).
pub(crate) const H_METRIC_INVALID: usize = 4;
/// Metric values with no cells to go to: the memory budget was spent.
pub(crate) const H_METRIC_DROPPED: usize = 5;
/// Cells of the shard header; also keeps two shards' hot cells off one cache line.
const HEADER: usize = 8;

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
pub(crate) const NUM_MISSING: usize = 0;
pub(crate) const NUM_INVALID: usize = 1;
/// First cell of bank 0; bank `b` starts at `NUM_BANK + b * BANK`.
pub(crate) const NUM_BANK: usize = 2;
pub(crate) const BANK: usize = 6;
// Cells of a bank.
pub(crate) const B_COUNT: usize = 0;
/// `order_key` of the bank's first value (0: no value yet).
pub(crate) const B_SHIFT: usize = 1;
pub(crate) const B_SUM: usize = 2;
pub(crate) const B_SUMSQ: usize = 3;
/// `!order_key` of the smallest value, so that "raise" serves both extremes.
pub(crate) const B_MIN: usize = 4;
pub(crate) const B_MAX: usize = 5;
/// Bit `r` set: the sketch's region `r` is paid for in the memory budget (see
/// [`REGION_CELLS`]). Written by the writers, read by the flusher (which scans paid regions
/// only) and when the shard is freed.
pub(crate) const NUM_REGIONS: usize = NUM_BANK + 2 * BANK;
/// Values whose sketch region the memory budget had no room for: their count, moments and
/// extremes are exact, their bucket is missing from the sketch.
pub(crate) const NUM_UNSKETCHED: usize = NUM_REGIONS + 1;
/// The sketch: one cell per key, at `sketch_cell(key)`, addressed directly.
pub(crate) const NUM_SKETCH: usize = NUM_UNSKETCHED + 1;
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
    /// Whether a prediction writes interval banks (some feature is numeric).
    pub has_numeric: bool,
    /// Numeric features.
    pub numeric: usize,
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
        let mut numeric = 0;
        for f in features {
            offset = offset.next_multiple_of(8);
            let (size, categories) = match &f.kind {
                FeatureKind::Numeric => (NUM_BLOCK, None),
                FeatureKind::Categorical { categories } => {
                    (CAT_FIRST + categories.len() + 1, Some(categories.clone()))
                }
            };
            slots.push(FeatureSlot { offset, categories: categories.clone() });
            numeric += usize::from(categories.is_none());
            offset = offset.saturating_add(size);
        }
        let segment_stride = offset.next_multiple_of(8);
        Layout {
            segments,
            error_kinds,
            latency,
            confidence,
            feedback_positive,
            feedback_negative,
            has_numeric: numeric > 0,
            numeric,
            features: slots,
            segment_stride,
            len: segments.saturating_mul(segment_stride).saturating_add(2 * HEADER),
        }
    }

    /// Sketch cells of a shard: paid for in the budget by region, as values arrive.
    pub fn sketch_cells(&self) -> usize {
        self.segments.saturating_mul(self.numeric).saturating_mul(SKETCH_CELLS)
    }

    /// First cell of segment `s`.
    #[inline]
    pub fn segment(&self, s: usize) -> usize {
        HEADER + s * self.segment_stride
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

/// One thread's (or, for a shared shard, a group of threads') counters. See the module
/// docs for the protocol.
pub(crate) struct Shard {
    /// Stable identity, for the flusher's mirror of this shard.
    pub id: u64,
    pub cells: Box<[AtomicU64]>,
    /// Written by several threads at once, with read-modify-writes.
    pub shared: bool,
    /// Set while a thread holds the lease to write this exclusive shard (always set for a
    /// shared one).
    pub claimed: AtomicBool,
    /// The budget sketch regions are paid from (the shards' share).
    pub budget: Arc<Budget>,
    /// Cells of generic metric series, by series id, created on the first use of a series
    /// on this shard and published through the `OnceLock` (its `get` is an `Acquire` load).
    pub metrics: Box<[OnceCell<SeriesCells>]>,
}

/// What a shard holds: cells (of which sketch cells), metric series slots.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardSize {
    pub cells: usize,
    pub sketch_cells: usize,
    pub metric_series: usize,
}

impl ShardSize {
    /// Bytes a shard costs against the memory budget before any value arrives: its cells
    /// but the sketches' (paid by region as values arrive), the flusher's mirror of them, and
    /// the table of metric series (with its mirror).
    pub fn bytes(self) -> usize {
        self.table().saturating_add(self.cells.saturating_sub(self.sketch_cells).saturating_mul(16))
    }

    /// Address space a shard takes: all its cells with their mirror, and the tables.
    pub fn address(self) -> usize {
        self.table().saturating_add(self.cells.saturating_mul(16))
    }

    fn table(self) -> usize {
        let series = std::mem::size_of::<OnceCell<SeriesCells>>() + std::mem::size_of::<Option<Vec<u64>>>();
        self.metric_series.saturating_mul(series)
    }
}

/// One metric series' cells on one shard: a counter's or gauge's line, or a distribution's
/// numeric block.
pub(crate) struct SeriesCells {
    pub cells: Box<[AtomicU64]>,
}

impl Shard {
    pub fn new(id: u64, size: ShardSize, shared: bool, budget: Arc<Budget>) -> Shard {
        Shard {
            id,
            cells: zeroed_cells(size.cells),
            shared,
            claimed: AtomicBool::new(true),
            budget,
            metrics: (0..size.metric_series).map(|_| OnceCell::new()).collect(),
        }
    }

    #[inline]
    pub fn c(&self) -> Cells<'_> {
        Cells { c: &self.cells, shared: self.shared }
    }

    /// Bytes of sketch regions this shard paid for (to return to the budget when it is
    /// freed).
    pub fn region_bytes(&self, layout: &Layout) -> usize {
        let mut regions = 0;
        for s in 0..layout.segments {
            for slot in layout.features.iter().filter(|f| f.categories.is_none()) {
                let mask = self.cells[layout.segment(s) + slot.offset + NUM_REGIONS].load(Ordering::Relaxed);
                regions += mask.count_ones() as usize;
            }
        }
        regions * REGION_BYTES
    }

    /// Enters the current epoch for a call that writes interval banks; returns the epoch.
    /// Pair with [`Shard::leave`]. See "The epoch hand-shake" in the module docs.
    #[inline]
    pub fn enter(&self, epoch: &AtomicU64) -> u64 {
        loop {
            // Acquire: the flusher emptied this bank before publishing the epoch.
            let e = epoch.load(Ordering::Acquire);
            let slot = &self.cells[H_INFLIGHT + (e & 1) as usize];
            if self.shared {
                slot.fetch_add(1, Ordering::Relaxed);
            } else {
                // One writer, and calls do not nest: the slot is 0 here.
                slot.store(1, Ordering::Relaxed);
            }
            // Pairs with the flusher's fence after its epoch store (Dekker): either it sees
            // this mark, or this load sees its new epoch.
            fence(Ordering::SeqCst);
            if epoch.load(Ordering::Relaxed) == e {
                return e;
            }
            self.leave(e);
        }
    }

    /// Leaves epoch `e`: everything written since [`Shard::enter`] is published to the
    /// flusher that waits for the bank.
    #[inline]
    pub fn leave(&self, e: u64) {
        let slot = &self.cells[H_INFLIGHT + (e & 1) as usize];
        if self.shared {
            slot.fetch_sub(1, Ordering::Release);
        } else {
            slot.store(0, Ordering::Release);
        }
    }

    /// The in-flight marker of `bank`, for the flusher.
    pub fn inflight(&self, bank: usize) -> &AtomicU64 {
        &self.cells[H_INFLIGHT + bank]
    }

    /// Records one latency value into segment base `seg`. The flusher scans latency cells
    /// at every flush, so this needs no publication hint.
    #[inline]
    pub fn record_latency(&self, layout: &Layout, seg: usize, latency: LatencyNanos) {
        let c = self.c();
        match latency {
            LatencyNanos::Valid(ns) => {
                if ns > LATENCY_MAX {
                    c.add(seg + SEG_CLAMPED_LATENCY, 1);
                }
                let ns = ns.min(LATENCY_MAX);
                c.add(seg + layout.latency + latency_index(ns), 1);
                c.add(seg + SEG_LATENCY_SUM, ns);
            }
            LatencyNanos::Invalid => c.add(seg + SEG_INVALID_LATENCY, 1),
        }
    }

    /// Records one whole prediction. `seg` is the segment's first cell; `epoch` the epoch
    /// the caller entered (only read when the layout has numeric features).
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
        let c = self.c();
        self.record_latency(layout, seg, latency);
        match confidence_bin(confidence) {
            Some(b) => c.add(seg + layout.confidence + b, 1),
            None => c.add(seg + SEG_INVALID_CONFIDENCE, 1),
        }
        if predicted == Some(true) {
            c.add(seg + SEG_PREDICTED_POSITIVE, 1);
        }
        // A vector of the wrong length is a schema error, except none at all when every
        // value came by category name.
        let by_name_only = features.is_empty() && !categories.is_empty();
        if features.len() != layout.features.len() && !by_name_only {
            c.add(seg + SEG_SCHEMA_ERRORS, 1);
        }
        let mut next_category = 0;
        for (i, slot) in layout.features.iter().enumerate() {
            // Positions the caller did not supply count as missing.
            let x = features.get(i).copied().unwrap_or(f64::NAN);
            let base = seg + slot.offset;
            match &slot.categories {
                None => c.record_value(base, epoch, x, &self.budget),
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
                        Some(k) => {
                            c.add(base + CAT_FIRST + k, 1);
                            c.add_release(base + CAT_COUNT, 1);
                        }
                        None => c.add_release(base + CAT_MISSING, 1),
                    }
                }
            }
        }
        c.add_release(seg + SEG_PREDICTIONS, 1);
    }

    /// Records feedback: the confidence the model gave and the true label.
    #[inline]
    pub fn record_feedback(&self, layout: &Layout, seg: usize, confidence: f64, label: bool) {
        let c = self.c();
        match confidence_bin(confidence) {
            Some(b) => {
                let hist = if label { layout.feedback_positive } else { layout.feedback_negative };
                c.add(seg + hist + b, 1);
                c.add_release(seg + SEG_FEEDBACK, 1);
            }
            None => c.add_release(seg + SEG_INVALID_FEEDBACK, 1),
        }
    }

    /// Records a scoring error of kind `kind`.
    #[inline]
    pub fn record_error(&self, seg: usize, kind: usize) {
        self.c().add_release(seg + SEG_HEADER + kind, 1);
    }

    /// Counts one event in a shard header cell (`H_*`).
    #[inline]
    pub fn count(&self, cell: usize) {
        self.c().add(cell, 1);
    }
}

/// Write operations on a run of cells, by the shard's mode: plain loads and stores for an
/// exclusive shard (one writer), read-modify-writes for a shared one.
#[derive(Clone, Copy)]
pub(crate) struct Cells<'a> {
    pub c: &'a [AtomicU64],
    pub shared: bool,
}

impl<'a> Cells<'a> {
    #[inline]
    fn sub(self, from: usize, len: usize) -> Cells<'a> {
        Cells { c: &self.c[from..from + len], shared: self.shared }
    }

    #[inline]
    pub fn add(self, i: usize, v: u64) {
        let c = &self.c[i];
        if self.shared {
            c.fetch_add(v, Ordering::Relaxed);
        } else {
            c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
        }
    }

    /// Adds and publishes: everything this thread wrote before is visible to a flusher that
    /// sees the new value with `Acquire`.
    #[inline]
    pub fn add_release(self, i: usize, v: u64) {
        let c = &self.c[i];
        if self.shared {
            c.fetch_add(v, Ordering::Release);
        } else {
            c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Release);
        }
    }

    #[inline]
    pub fn add_f64(self, i: usize, x: f64) {
        let c = &self.c[i];
        if self.shared {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((f64::from_bits(b) + x).to_bits())
            });
        } else {
            c.store((f64::from_bits(c.load(Ordering::Relaxed)) + x).to_bits(), Ordering::Relaxed);
        }
    }

    #[inline]
    fn raise(self, i: usize, k: u64) {
        let c = &self.c[i];
        if self.shared {
            c.fetch_max(k, Ordering::Relaxed);
        } else if k > c.load(Ordering::Relaxed) {
            c.store(k, Ordering::Relaxed);
        }
    }

    /// The bank's shift: the order key already there, or `k` when the bank is empty.
    #[inline]
    fn shift(self, i: usize, k: u64) -> u64 {
        let c = &self.c[i];
        if self.shared {
            match c.compare_exchange(0, k, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => k,
                Err(existing) => existing,
            }
        } else {
            match c.load(Ordering::Relaxed) {
                0 => {
                    c.store(k, Ordering::Relaxed);
                    k
                }
                existing => existing,
            }
        }
    }

    /// Records a numeric value into the numeric block at `base`, in the bank of `epoch` (the
    /// caller has entered it, see [`Shard::enter`]). The sketch region of its bucket is paid
    /// from `budget` the first time a value falls in it.
    #[inline]
    pub fn record_value(self, base: usize, epoch: u64, x: f64, budget: &Budget) {
        // One bounds check for the block; the constant offsets below need none.
        let b = self.sub(base, NUM_BLOCK);
        if x.is_nan() {
            b.add_release(NUM_MISSING, 1);
            return;
        }
        if !x.is_finite() {
            b.add_release(NUM_INVALID, 1);
            return;
        }
        let k = order_key(x);
        let bank = b.sub(NUM_BANK + BANK * (epoch & 1) as usize, BANK);
        let d = x - from_order_key(bank.shift(B_SHIFT, k));
        bank.add_f64(B_SUM, d);
        bank.add_f64(B_SUMSQ, d * d);
        bank.raise(B_MIN, !k);
        bank.raise(B_MAX, k);
        let cell = sketch_cell(sketch_key(x));
        let region = 1u64 << (cell / REGION_CELLS);
        if b.c[NUM_REGIONS].load(Ordering::Relaxed) & region != 0 || b.pay_region(region, budget) {
            b.add(NUM_SKETCH + cell, 1);
        } else {
            b.add(NUM_UNSKETCHED, 1);
        }
        bank.add(B_COUNT, 1);
    }

    /// Pays for a sketch region from the budget and marks it; false when the budget has no
    /// room (the region stays unpaid, so the next value asks again).
    #[cold]
    #[inline(never)]
    fn pay_region(self, region: u64, budget: &Budget) -> bool {
        if budget.looks_full() || !budget.try_reserve(REGION_BYTES) {
            // On the shared shard another writer may have paid for it with the last room.
            return self.c[NUM_REGIONS].load(Ordering::Relaxed) & region != 0;
        }
        let mask = &self.c[NUM_REGIONS];
        if self.shared {
            // Another writer may have paid for it meanwhile: give this payment back.
            if mask.fetch_or(region, Ordering::Relaxed) & region != 0 {
                budget.release(REGION_BYTES);
            }
        } else {
            mask.store(mask.load(Ordering::Relaxed) | region, Ordering::Relaxed);
        }
        true
    }
}

/// Cells a counter or gauge series takes per shard: enough for one cache line of its own
/// wherever the allocation starts, so two threads' counters never share a line.
pub(crate) const SCALAR_ALLOC: usize = 15;
/// A counter's interval banks, like a numeric block's: bank `b` holds the sum of the
/// increments at `2 b` and their number at `2 b + 1`, read and emptied by the flusher once
/// the bank's epoch is over. (A cumulative sum read as a difference would turn NaN for good
/// after one overflow to infinity, and lose increments of 1 once it passed 2^53.)
pub(crate) const COUNTER_SUM: usize = 0;
pub(crate) const COUNTER_UPDATES: usize = 1;
pub(crate) const GAUGE_VALUE: usize = 0;
/// When the value was set: nanoseconds since the process's first gauge set, plus one.
pub(crate) const GAUGE_STAMP: usize = 1;

/// The 8 cells of `cells` that fill one 64-byte line.
#[inline]
pub(crate) fn own_line(cells: &[AtomicU64]) -> &[AtomicU64] {
    let misalign = (cells.as_ptr() as usize) % 64;
    let skip = ((64 - misalign) % 64) / 8;
    &cells[skip..skip + 8]
}

/// A generic metric series' cells in one shard: a counter's or gauge's line, or a
/// distribution's numeric block at offset 0.
pub(crate) struct MetricCells<'a> {
    pub cells: Cells<'a>,
}

impl MetricCells<'_> {
    /// Adds `x` to the counter's bank of `epoch` (the caller has entered it).
    #[inline]
    pub fn increment(&self, epoch: u64, x: f64) {
        let c = Cells { c: own_line(self.cells.c), shared: self.cells.shared };
        let bank = 2 * (epoch & 1) as usize;
        c.add_f64(bank + COUNTER_SUM, x);
        c.add(bank + COUNTER_UPDATES, 1);
    }

    /// Sets the gauge. The stamp only moves forward (on the shared shard two threads can race
    /// here; the value left can then be the other racer's, set within the same instant).
    #[inline]
    pub fn set(&self, x: f64, stamp: u64) {
        let c = own_line(self.cells.c);
        c[GAUGE_VALUE].store(x.to_bits(), Ordering::Relaxed);
        if self.cells.shared {
            c[GAUGE_STAMP].fetch_max(stamp, Ordering::Release);
        } else {
            c[GAUGE_STAMP].store(stamp, Ordering::Release);
        }
    }

    #[inline]
    pub fn observe(&self, epoch: u64, x: f64, budget: &Budget) {
        self.cells.record_value(0, epoch, x, budget);
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
