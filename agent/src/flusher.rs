//! The read side of the shard protocol (see `shard.rs`): turns every shard's cumulative cells
//! into one interval's deltas and assembles a [`Snapshot`].

use crate::agent::Core;
use crate::confidence::{CONFIDENCE_BINS, ConfidenceHistogram};
use crate::latency::{LATENCY_BUCKETS, latency_histogram_from};
use crate::metrics::{MetricKind, gauge_cells};
use crate::schema::FeatureKind;
use crate::shard::*;
use crate::sketch::{REGION_CELLS, SKETCH_CELLS, SKETCH_REGIONS, Sketch, key_of_cell};
use crate::snapshot::*;
use crate::sync::{AtomicU64, Ordering, fence, wait_for_zero};
use std::collections::HashMap;
use std::sync::Arc;

/// The previous value of every cumulative cell the flusher has read, per shard id, and the
/// stamp of every gauge value reported.
#[derive(Default)]
pub(crate) struct Mirror {
    shards: HashMap<u64, ShardMirror>,
    gauge_stamps: Vec<u64>,
}

#[derive(Default)]
struct ShardMirror {
    cells: Vec<u64>,
    /// Per metric series: its cells' previous values.
    metrics: Vec<Option<Vec<u64>>>,
}

/// Reads cells against their previous values.
struct Reader<'a> {
    cells: &'a [AtomicU64],
    prev: &'a mut [u64],
}

impl Reader<'_> {
    /// The increase of a counter cell since the last read; `Acquire` for hint cells.
    fn delta(&mut self, i: usize, order: Ordering) -> u64 {
        let now = self.cells[i].load(order);
        let d = now.wrapping_sub(self.prev[i]);
        // Written only on change: the mirror comes from calloc, and untouched pages stay free.
        if d != 0 {
            self.prev[i] = now;
        }
        d
    }

    /// Deltas of `len` counter cells from `base`, as `(index, delta)` for the non-zero ones.
    fn deltas(&mut self, base: usize, len: usize) -> impl Iterator<Item = (usize, u64)> + '_ {
        (0..len).filter_map(move |i| {
            let d = self.delta(base + i, Ordering::Relaxed);
            (d > 0).then_some((i, d))
        })
    }

    /// A numeric block's interval summary from bank `bank`, which no call writes any more
    /// (the caller waited for it, see `shard.rs`); the bank is emptied for its next epoch.
    /// `None` when nothing was recorded. Values whose sketch region the budget had no room
    /// for are added to `unsketched`.
    fn numeric(&mut self, base: usize, bank: usize, unsketched: &mut u64) -> Option<NumericSummary> {
        let missing = self.delta(base + NUM_MISSING, Ordering::Acquire);
        let invalid = self.delta(base + NUM_INVALID, Ordering::Acquire);
        *unsketched += self.delta(base + NUM_UNSKETCHED, Ordering::Relaxed);
        let b = base + NUM_BANK + BANK * bank;
        let load = |i: usize| self.cells[b + i].load(Ordering::Relaxed);
        let count = load(B_COUNT);
        if count == 0 {
            return (missing + invalid > 0).then(|| NumericSummary {
                missing,
                invalid,
                ..Default::default()
            });
        }
        let (shift, s1, s2) =
            (from_order_key(load(B_SHIFT)), f64::from_bits(load(B_SUM)), f64::from_bits(load(B_SUMSQ)));
        let (lowest, highest) = (load(B_MIN), load(B_MAX));
        for i in 0..BANK {
            self.cells[b + i].store(0, Ordering::Relaxed);
        }
        // Only paid regions can hold counts: the others' pages stay untouched.
        let paid = self.cells[base + NUM_REGIONS].load(Ordering::Relaxed);
        let mut buckets: Vec<(i32, u64)> = Vec::new();
        for r in (0..SKETCH_REGIONS).filter(|r| paid & (1 << r) != 0) {
            let first = r * REGION_CELLS;
            let len = REGION_CELLS.min(SKETCH_CELLS - first);
            buckets.extend(
                self.deltas(base + NUM_SKETCH + first, len).map(|(i, c)| (key_of_cell(first + i), c)),
            );
        }
        let sketch = Sketch::from_buckets(buckets);
        let n = count as f64;
        Some(NumericSummary {
            count,
            missing,
            invalid,
            // Keys: a min is stored as !order_key (see `shard.rs`).
            min: (lowest != 0).then(|| from_order_key(!lowest)),
            max: (highest != 0).then(|| from_order_key(highest)),
            mean: shift + s1 / n,
            m2: moment2(s1, s2, n),
            sketch,
        })
    }
}

/// `Σ(x - mean)²` from the shifted sums `s1 = Σd`, `s2 = Σd²` of `n` values. Values whose
/// squared deviations pass f64's range give `+inf`, the honest answer, rather than the
/// `inf - inf` of the formula.
fn moment2(s1: f64, s2: f64, n: f64) -> f64 {
    if s2.is_infinite() {
        return f64::INFINITY;
    }
    // s1 * (s1 / n) stays finite where s1 * s1 would not: (Σd)² ≤ n Σd².
    (s2 - s1 * (s1 / n)).max(0.0)
}

struct SegmentAcc {
    predictions: u64,
    predicted_positive: u64,
    latency_sum: u64,
    latency: Vec<u64>,
    confidence: ConfidenceHistogram,
    positive: ConfidenceHistogram,
    negative: ConfidenceHistogram,
    errors: Vec<u64>,
    invalid: InvalidCounts,
    touched: bool,
}

/// Collects one interval from every shard. The caller holds the flush lock.
pub(crate) fn collect(core: &Core, mirror: &mut Mirror) -> Parts {
    let layout = &core.layout;
    // Shards whose threads exited leave circulation now: read one last time, then freed.
    let retiring = core.shards.take_released();

    // The epoch hand-shake (`shard.rs`): after the wait, bank `epoch & 1` holds every value
    // of the closing interval and no call writes it.
    let epoch = core.epoch.load(Ordering::Relaxed);
    core.epoch.store(epoch + 1, Ordering::Release);
    fence(Ordering::SeqCst);
    let bank = (epoch & 1) as usize;
    // Listed after the flip: a shard created later only has calls of the new epoch.
    let shards = core.shards.shards();
    for shard in &shards {
        wait_for_zero(shard.inflight(bank));
    }
    // Listed after the wait: every series written in the closing interval is registered.
    let series = core.metrics.series();

    let mut overflow = OverflowCounts::default();
    let mut segs: Vec<SegmentAcc> = (0..layout.segments)
        .map(|_| SegmentAcc {
            predictions: 0,
            predicted_positive: 0,
            latency_sum: 0,
            latency: Vec::new(),
            confidence: ConfidenceHistogram::new(),
            positive: ConfidenceHistogram::new(),
            negative: ConfidenceHistogram::new(),
            errors: vec![0; layout.error_kinds],
            invalid: InvalidCounts::default(),
            touched: false,
        })
        .collect();
    let mut features: Vec<Option<FeatureStats>> = vec![None; layout.segments * layout.features.len()];
    let mut metric_acc: Vec<Option<MetricValue>> = vec![None; series.len()];
    // Per gauge series, the latest (stamp, value) over all shards.
    let mut gauges: Vec<(u64, f64)> = vec![(0, 0.0); series.len()];

    for shard in &shards {
        let m = mirror.shards.entry(shard.id).or_default();
        if m.cells.len() != shard.cells.len() {
            m.cells = vec![0; shard.cells.len()];
        }
        if m.metrics.len() < series.len() {
            m.metrics.resize(series.len(), None);
        }
        let ShardMirror { cells: prev_cells, metrics: prev_metrics } = m;
        let mut r = Reader { cells: &shard.cells, prev: prev_cells };
        overflow.metric_series += r.delta(H_OVERFLOWED, Ordering::Relaxed);
        overflow.kind_conflicts += r.delta(H_KIND_CONFLICTS, Ordering::Relaxed);
        overflow.metric_invalid += r.delta(H_METRIC_INVALID, Ordering::Relaxed);
        overflow.metric_over_budget += r.delta(H_METRIC_DROPPED, Ordering::Relaxed);
        for (s, acc) in segs.iter_mut().enumerate() {
            let seg = layout.segment(s);
            let predictions = r.delta(seg + SEG_PREDICTIONS, Ordering::Acquire);
            let feedback = r.delta(seg + SEG_FEEDBACK, Ordering::Acquire);
            let invalid = InvalidCounts {
                latency: r.delta(seg + SEG_INVALID_LATENCY, Ordering::Relaxed),
                latency_clamped: r.delta(seg + SEG_CLAMPED_LATENCY, Ordering::Relaxed),
                confidence: r.delta(seg + SEG_INVALID_CONFIDENCE, Ordering::Relaxed),
                feedback_confidence: r.delta(seg + SEG_INVALID_FEEDBACK, Ordering::Acquire),
                schema: r.delta(seg + SEG_SCHEMA_ERRORS, Ordering::Relaxed),
            };
            for k in 0..layout.error_kinds {
                let d = r.delta(seg + SEG_ERROR_CELLS + k, Ordering::Acquire);
                acc.errors[k] += d;
                acc.touched |= d > 0;
            }
            // Latency and confidence cells are always scanned (a few thousand loads per
            // segment): a latency recorded on its own then needs no publication store.
            acc.predictions += predictions;
            acc.touched |= predictions > 0;
            acc.predicted_positive += r.delta(seg + SEG_PREDICTED_POSITIVE, Ordering::Relaxed);
            acc.latency_sum = acc.latency_sum.wrapping_add(r.delta(seg + SEG_LATENCY_SUM, Ordering::Relaxed));
            for (i, d) in r.deltas(seg + layout.latency, LATENCY_BUCKETS) {
                if acc.latency.is_empty() {
                    acc.latency = vec![0; LATENCY_BUCKETS];
                }
                acc.latency[i] += d;
                acc.touched = true;
            }
            for (i, d) in r.deltas(seg + layout.confidence, CONFIDENCE_BINS) {
                acc.confidence.add_to_bin(i, d);
                acc.touched = true;
            }
            if feedback > 0 {
                acc.touched = true;
                for (i, d) in r.deltas(seg + layout.feedback_positive, CONFIDENCE_BINS) {
                    acc.positive.add_to_bin(i, d);
                }
                for (i, d) in r.deltas(seg + layout.feedback_negative, CONFIDENCE_BINS) {
                    acc.negative.add_to_bin(i, d);
                }
            }
            if invalid != InvalidCounts::default() {
                acc.touched = true;
                let a = &mut acc.invalid;
                a.latency += invalid.latency;
                a.latency_clamped += invalid.latency_clamped;
                a.confidence += invalid.confidence;
                a.feedback_confidence += invalid.feedback_confidence;
                a.schema += invalid.schema;
            }
            for (f, slot) in layout.features.iter().enumerate() {
                let base = seg + slot.offset;
                let stats = match &slot.categories {
                    None => {
                        r.numeric(base, bank, &mut overflow.sketch_over_budget).map(FeatureStats::Numeric)
                    }
                    Some(vocabulary) => {
                        let count = r.delta(base + CAT_COUNT, Ordering::Acquire);
                        let missing = r.delta(base + CAT_MISSING, Ordering::Acquire);
                        let counts = if count > 0 {
                            r.deltas(base + CAT_FIRST, vocabulary.len() + 1)
                                .map(|(i, c)| (core.category_name(f, i), c))
                                .collect()
                        } else {
                            Vec::new()
                        };
                        (count + missing > 0)
                            .then_some(FeatureStats::Categorical(CategoryCounts { counts, missing }))
                    }
                };
                if let Some(stats) = stats {
                    merge_feature(&mut features[s * layout.features.len() + f], stats);
                }
            }
        }

        // Generic metrics.
        for (id, info) in series.iter().enumerate() {
            let Some(series_cells) = shard.metrics.get(id).and_then(|c| c.get()) else { continue };
            let cells = &series_cells.cells;
            if cells.len() != info.kind.cells() {
                continue; // no cells (the budget was spent), or not yet registered
            }
            let value = match info.kind {
                MetricKind::Gauge => {
                    let (stamp, value) = gauge_cells(cells);
                    if stamp > gauges[id].0 {
                        gauges[id] = (stamp, value);
                    }
                    continue;
                }
                MetricKind::Counter => {
                    // The bank of the closing epoch, which no call writes any more.
                    let line = own_line(cells);
                    let (sum, updates) = (&line[2 * bank + COUNTER_SUM], &line[2 * bank + COUNTER_UPDATES]);
                    let value = (updates.load(Ordering::Relaxed) > 0)
                        .then(|| MetricValue::Counter(f64::from_bits(sum.load(Ordering::Relaxed))));
                    if value.is_some() {
                        sum.store(0, Ordering::Relaxed);
                        updates.store(0, Ordering::Relaxed);
                    }
                    value
                }
                MetricKind::Distribution => {
                    let prev = prev_metrics[id].get_or_insert_with(|| vec![0; cells.len()]);
                    Reader { cells, prev }
                        .numeric(0, bank, &mut overflow.sketch_over_budget)
                        .map(MetricValue::Distribution)
                }
            };
            if let Some(v) = value {
                merge_metric(&mut metric_acc[id], v);
            }
        }
    }

    mirror.gauge_stamps.resize(series.len(), 0);
    for (id, &(stamp, value)) in gauges.iter().enumerate() {
        if stamp > mirror.gauge_stamps[id] {
            mirror.gauge_stamps[id] = stamp;
            metric_acc[id] = Some(MetricValue::Gauge(value));
        }
    }

    // Read for the last time: free them, and forget their mirrors.
    core.shards.remove(&retiring, |s| {
        core.metrics.release_cells(s);
        s.region_bytes(layout)
    });
    for id in &retiring {
        mirror.shards.remove(id);
    }

    let segments = segs
        .into_iter()
        .enumerate()
        .filter(|(_, a)| a.touched)
        .map(|(s, a)| SegmentSnapshot {
            segment: core.segment_names[s].clone(),
            predictions: a.predictions,
            predicted_positive: a.predicted_positive,
            latency: latency_histogram_from(a.latency.iter().copied().enumerate().filter(|c| c.1 > 0)),
            latency_sum_nanos: a.latency_sum,
            confidence: a.confidence,
            feedback_positive: a.positive,
            feedback_negative: a.negative,
            errors: a
                .errors
                .iter()
                .enumerate()
                .filter(|e| *e.1 > 0)
                .map(|(k, &n)| (core.error_kinds[k].clone(), n))
                .collect(),
            invalid: a.invalid,
        })
        .collect();
    let nf = layout.features.len().max(1);
    let features = features
        .into_iter()
        .enumerate()
        .filter_map(|(i, stats)| {
            Some(FeatureSnapshot {
                segment: core.segment_names[i / nf].clone(),
                feature: core.features[i % nf].name.clone(),
                stats: stats?,
            })
        })
        .collect();
    let metrics = metric_acc
        .into_iter()
        .enumerate()
        .filter_map(|(id, v)| {
            Some(MetricSnapshot { name: series[id].name.clone(), tags: series[id].tags.clone(), value: v? })
        })
        .collect();
    Parts { segments, features, metrics, overflow }
}

pub(crate) struct Parts {
    pub segments: Vec<SegmentSnapshot>,
    pub features: Vec<FeatureSnapshot>,
    pub metrics: Vec<MetricSnapshot>,
    /// The diversion and invalid-value counts the shards kept (`dropped` is the caller's).
    pub overflow: OverflowCounts,
}

fn merge_feature(slot: &mut Option<FeatureStats>, stats: FeatureStats) {
    match (slot.as_mut(), stats) {
        (None, s) => *slot = Some(s),
        (Some(FeatureStats::Numeric(a)), FeatureStats::Numeric(b)) => a.merge(&b),
        (Some(FeatureStats::Categorical(a)), FeatureStats::Categorical(b)) => {
            a.missing += b.missing;
            for (name, n) in b.counts {
                match a.counts.iter_mut().find(|c| c.0 == name) {
                    Some(c) => c.1 += n,
                    None => a.counts.push((name, n)),
                }
            }
        }
        _ => {}
    }
}

fn merge_metric(slot: &mut Option<MetricValue>, v: MetricValue) {
    match (slot.as_mut(), v) {
        (None, v) => *slot = Some(v),
        (Some(MetricValue::Counter(a)), MetricValue::Counter(b)) => *a += b,
        (Some(MetricValue::Distribution(a)), MetricValue::Distribution(b)) => a.merge(&b),
        _ => {}
    }
}

impl Core {
    fn category_name(&self, feature: usize, i: usize) -> Arc<str> {
        match &self.features[feature].kind {
            FeatureKind::Categorical { categories } => {
                categories.get(i).cloned().unwrap_or_else(|| crate::schema::OTHER.into())
            }
            FeatureKind::Numeric => crate::schema::OTHER.into(),
        }
    }
}
