//! The read side of the shard protocol (see `shard.rs`): turns every shard's cumulative cells
//! into one interval's deltas and assembles a [`Snapshot`].

use crate::agent::Core;
use crate::confidence::{CONFIDENCE_BINS, ConfidenceHistogram};
use crate::latency::{LATENCY_BUCKETS, latency_histogram_from};
use crate::metrics::MetricKind;
use crate::schema::FeatureKind;
use crate::shard::*;
use crate::sketch::{SKETCH_CELLS, Sketch, key_of_cell};
use crate::snapshot::*;
use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// The previous value of every cell the flusher has read, per shard.
#[derive(Default)]
pub(crate) struct Mirror {
    shards: Vec<ShardMirror>,
    gauge_versions: Vec<u64>,
}

#[derive(Default)]
struct ShardMirror {
    cells: Vec<u64>,
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

    fn delta_f64(&mut self, i: usize) -> f64 {
        let now = self.cells[i].load(Ordering::Relaxed);
        let d = f64::from_bits(now) - f64::from_bits(self.prev[i]);
        self.prev[i] = now;
        d
    }

    fn value(&self, i: usize) -> u64 {
        self.cells[i].load(Ordering::Relaxed)
    }

    /// Deltas of `len` counter cells from `base`, as `(index, delta)` for the non-zero ones.
    fn deltas(&mut self, base: usize, len: usize) -> impl Iterator<Item = (usize, u64)> + '_ {
        (0..len).filter_map(move |i| {
            let d = self.delta(base + i, Ordering::Relaxed);
            (d > 0).then_some((i, d))
        })
    }

    /// A numeric block's interval summary; `None` when nothing changed.
    fn numeric(&mut self, base: usize, bank: usize, late: Extremes) -> Option<NumericSummary> {
        let count = self.delta(base + NUM_COUNT, Ordering::Acquire);
        let missing = self.delta(base + NUM_MISSING, Ordering::Acquire);
        let invalid = self.delta(base + NUM_INVALID, Ordering::Acquire);
        if count == 0 {
            return (missing + invalid > 0).then(|| NumericSummary {
                missing,
                invalid,
                ..Default::default()
            });
        }
        let shift = f64::from_bits(self.value(base + NUM_SHIFT));
        let s1 = self.delta_f64(base + NUM_SUM);
        let s2 = self.delta_f64(base + NUM_SUMSQ);
        let n = count as f64;
        let sketch = Sketch::from_buckets(
            self.deltas(base + NUM_SKETCH, SKETCH_CELLS).map(|(i, c)| (key_of_cell(i), c)),
        );
        // The bank read now is remembered, so the next flush can spot stragglers in it.
        let lowest = self.value(base + NUM_MIN + bank);
        let highest = self.value(base + NUM_MAX + bank);
        if (lowest, highest) != (self.prev[base + NUM_MIN + bank], self.prev[base + NUM_MAX + bank]) {
            self.prev[base + NUM_MIN + bank] = lowest;
            self.prev[base + NUM_MAX + bank] = highest;
        }
        // Keys: a min is stored as !order_key, so the larger stored key is the smaller value.
        let lowest = lowest.max(late.min);
        let highest = highest.max(late.max);
        let min = (lowest != 0).then(|| from_order_key(!lowest));
        let max = (highest != 0).then(|| from_order_key(highest));
        Some(NumericSummary {
            count,
            missing,
            invalid,
            min,
            max,
            mean: shift + s1 / n,
            m2: (s2 - s1 * s1 / n).max(0.0),
            sketch,
        })
    }
}

/// A numeric block within a shard: by cell offset, or by metric series id.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Cell(usize),
    Metric(usize),
}

/// Order keys of a min and a max (0: unset), see `shard::order_key`.
#[derive(Clone, Copy, Default)]
struct Extremes {
    min: u64,
    max: u64,
}

/// Resets the min/max bank that writers will use in the next epoch, returning what
/// stragglers wrote to it since the previous flush read it.
fn retire_bank(cells: &[AtomicU64], prev: &mut [u64], base: usize, bank: usize) -> Option<Extremes> {
    let (lo, hi) = (base + NUM_MIN + bank, base + NUM_MAX + bank);
    let x = Extremes { min: cells[lo].load(Ordering::Relaxed), max: cells[hi].load(Ordering::Relaxed) };
    if x.min == 0 && x.max == 0 && prev[lo] == 0 && prev[hi] == 0 {
        return None; // never written: leave its pages untouched
    }
    let changed = x.min != prev[lo] || x.max != prev[hi];
    cells[lo].store(0, Ordering::Relaxed);
    cells[hi].store(0, Ordering::Relaxed);
    prev[lo] = 0;
    prev[hi] = 0;
    changed.then_some(x)
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
    let shards = core.shards.shards();
    let (series, registered) = core.metrics.series();

    if mirror.shards.len() < shards.len() {
        mirror.shards.resize_with(shards.len(), ShardMirror::default);
    }
    for (shard, m) in shards.iter().zip(mirror.shards.iter_mut()) {
        if m.cells.len() != shard.cells.len() {
            m.cells = vec![0; shard.cells.len()];
        }
        if m.metrics.len() < series.len() {
            m.metrics.resize(series.len(), None);
        }
    }

    // Epoch flip for min/max banks (module docs of `shard.rs`). The bank writers will use
    // next was read at the previous flush; a change since then is a straggler's value,
    // reported in this interval rather than lost.
    let epoch = core.epoch.load(Ordering::Relaxed);
    let next_bank = ((epoch + 1) & 1) as usize;
    let mut stragglers: Vec<(usize, Block, Extremes)> = Vec::new();
    for (i, (shard, m)) in shards.iter().zip(mirror.shards.iter_mut()).enumerate() {
        for s in 0..layout.segments {
            let seg = layout.segment(s);
            for slot in layout.features.iter().filter(|f| f.categories.is_none()) {
                let base = seg + slot.offset;
                if let Some(x) = retire_bank(&shard.cells, &mut m.cells, base, next_bank) {
                    stragglers.push((i, Block::Cell(base), x));
                }
            }
        }
        for (id, info) in live(&series, registered, core.metrics.capacity) {
            if info.kind != MetricKind::Distribution {
                continue;
            }
            let (Some(cells), Some(Some(prev))) =
                (shard.metrics.get(id).and_then(|c| c.get()), m.metrics.get_mut(id))
            else {
                continue;
            };
            if let Some(x) = retire_bank(cells, prev, 0, next_bank) {
                stragglers.push((i, Block::Metric(id), x));
            }
        }
    }
    core.epoch.store(epoch + 1, Ordering::Release);
    let bank = (epoch & 1) as usize;
    let straggler = |shard: usize, block: Block| {
        stragglers.iter().find(|s| s.0 == shard && s.1 == block).map(|s| s.2).unwrap_or_default()
    };

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

    for (i, (shard, m)) in shards.iter().zip(mirror.shards.iter_mut()).enumerate() {
        let mut r = Reader { cells: &shard.cells, prev: &mut m.cells };
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
                    None => r.numeric(base, bank, straggler(i, Block::Cell(base))).map(FeatureStats::Numeric),
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
        for (id, info) in live(&series, registered, core.metrics.capacity) {
            if info.kind == MetricKind::Gauge {
                continue;
            }
            let Some(cells) = shard.metrics.get(id).and_then(|c| c.get()) else { continue };
            if cells.len() != info.kind.cells() {
                continue;
            }
            let prev = m.metrics[id].get_or_insert_with(|| vec![0; cells.len()]);
            let mut r = Reader { cells, prev };
            let value = match info.kind {
                MetricKind::Counter => (r.delta(COUNTER_UPDATES, Ordering::Acquire) > 0)
                    .then(|| MetricValue::Counter(r.delta_f64(COUNTER_SUM))),
                _ => r.numeric(0, bank, straggler(i, Block::Metric(id))).map(MetricValue::Distribution),
            };
            if let Some(v) = value {
                merge_metric(&mut metric_acc[id], v);
            }
        }
    }

    // Gauges live in shared cells.
    mirror.gauge_versions.resize(series.len(), 0);
    for (id, info) in live(&series, registered, core.metrics.capacity) {
        if info.kind != MetricKind::Gauge {
            continue;
        }
        let g = &core.metrics.gauges[id];
        let version = g.version.load(Ordering::Acquire);
        if version != mirror.gauge_versions[id] {
            mirror.gauge_versions[id] = version;
            metric_acc[id] = Some(MetricValue::Gauge(f64::from_bits(g.value.load(Ordering::Relaxed))));
        }
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
    Parts { segments, features, metrics }
}

/// The metric series registered when the flush began, and the overflow series. A series
/// registered later is read at the next flush (its cells keep their values until then).
fn live(
    series: &[Arc<crate::metrics::SeriesInfo>],
    registered: usize,
    capacity: usize,
) -> impl Iterator<Item = (usize, &Arc<crate::metrics::SeriesInfo>)> {
    series.iter().enumerate().filter(move |(id, _)| *id < registered || *id == capacity)
}

pub(crate) struct Parts {
    pub segments: Vec<SegmentSnapshot>,
    pub features: Vec<FeatureSnapshot>,
    pub metrics: Vec<MetricSnapshot>,
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
