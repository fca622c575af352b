//! Plain, immutable values the flusher hands to a [`crate::Sink`]: one [`Snapshot`] per
//! interval, holding interval deltas (not running totals) for every series that changed.

use crate::clock::Timestamp;
use crate::confidence::ConfidenceHistogram;
use crate::examples::LabelledExample;
use crate::schema::ModelIdentity;
use crate::sketch::Sketch;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::mem::{size_of, size_of_val};
use std::sync::Arc;

/// Everything recorded in one interval `[start, end)`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Position of this snapshot in the agent's sequence, from 0. Every snapshot the agent
    /// collects takes the next number; a snapshot merged from several that waited for a failing
    /// sink keeps the first one's (see [`Snapshot::merge`]), so what a sink receives is
    /// increasing, each number once, with gaps where snapshots were merged or dropped.
    pub seq: u64,
    /// Interval start (inclusive), from the agent's clock.
    pub start: Timestamp,
    /// Interval end (exclusive).
    pub end: Timestamp,
    /// The model these values belong to.
    pub model: Arc<ModelIdentity>,
    /// Per segment: predictions, latency, confidence, feedback and errors.
    pub segments: Vec<SegmentSnapshot>,
    /// Per segment and feature: the feature's summary.
    pub features: Vec<FeatureSnapshot>,
    /// Generic metrics logged with `log_metric` and metric handles.
    pub metrics: Vec<MetricSnapshot>,
    /// Model load state at the end of the interval.
    pub model_state: ModelState,
    /// Values that could not go to their own series.
    pub overflow: OverflowCounts,
    /// Labels for predictions of earlier intervals that arrived during this one
    /// ([`crate::Handle::feedback_for`]), by prediction interval and segment.
    pub cohorts: Vec<CohortLabels>,
    /// Labelled examples kept during this interval ([`crate::Handle::example`]), in the
    /// order they were kept.
    pub examples: Vec<LabelledExample>,
    /// The names of the examples' feature values: the agent's declared features.
    pub example_features: Arc<[Arc<str>]>,
}

/// Labels that arrived for the predictions of one earlier interval and segment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CohortLabels {
    /// The predictions' interval start (the agent's interval grid).
    pub start: Timestamp,
    /// The predictions' interval end.
    pub end: Timestamp,
    /// The segment.
    pub segment: Arc<str>,
    /// `(confidence bin, count)` of labels that were positive, by bin.
    pub positive: Vec<(u16, u64)>,
    /// `(confidence bin, count)` of labels that were negative, by bin.
    pub negative: Vec<(u16, u64)>,
    /// Seconds from each prediction to its label.
    pub delay: NumericSummary,
}

impl CohortLabels {
    /// Labels in this cohort.
    pub fn count(&self) -> u64 {
        self.positive.iter().chain(&self.negative).map(|b| b.1).sum()
    }

    fn merge(&mut self, o: &CohortLabels) {
        self.positive = merge_bins(&self.positive, &o.positive);
        self.negative = merge_bins(&self.negative, &o.negative);
        self.delay.merge(&o.delay);
    }
}

fn merge_bins(a: &[(u16, u64)], b: &[(u16, u64)]) -> Vec<(u16, u64)> {
    let mut out: Vec<(u16, u64)> = a.iter().chain(b).copied().collect();
    out.sort_unstable_by_key(|x| x.0);
    out.dedup_by(|later, first| {
        let same = later.0 == first.0;
        if same {
            first.1 = first.1.saturating_add(later.1);
        }
        same
    });
    out
}

impl Snapshot {
    /// Predictions in this interval, over all segments.
    pub fn predictions(&self) -> u64 {
        self.segments.iter().map(|s| s.predictions).sum()
    }

    /// Whether the snapshot holds no recorded value.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
            && self.cohorts.is_empty()
            && self.examples.is_empty()
            && self.features.is_empty()
            && self.metrics.is_empty()
            && self.overflow == OverflowCounts::default()
    }

    /// Adds `later`, the snapshot of the interval(s) after this one, to this one: the result
    /// is the snapshot of both together, `[self.start, later.end)`, as if one flush had
    /// collected both. Nothing is lost but time resolution: counts, sums, histograms and
    /// sketches add; the moments of numeric summaries combine exactly (up to floating point
    /// rounding); a gauge and the model state keep `later`'s value. Series are matched by
    /// segment, by (segment, feature) and by (name, tags); ones only one side has are kept.
    /// The merged snapshot keeps this one's `seq` and `later`'s model identity.
    ///
    /// A series whose kind differs between the two (which one agent never produces, since a
    /// series keeps the kind it was first recorded with) takes `later`'s value.
    pub fn merge(&mut self, later: &Snapshot) {
        self.start = self.start.min(later.start);
        self.end = self.end.max(later.end);
        self.model = later.model.clone();
        self.model_state = later.model_state;
        self.overflow.add(&later.overflow);
        self.examples.extend(later.examples.iter().cloned());
        if !later.example_features.is_empty() {
            self.example_features = later.example_features.clone();
        }

        let mut at: HashMap<Arc<str>, usize> =
            self.segments.iter().enumerate().map(|(i, g)| (g.segment.clone(), i)).collect();
        for g in &later.segments {
            match at.get(&g.segment) {
                Some(&i) => self.segments[i].merge(g),
                None => {
                    at.insert(g.segment.clone(), self.segments.len());
                    self.segments.push(g.clone());
                }
            }
        }

        let mut at: HashMap<(Arc<str>, Arc<str>), usize> = self
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| ((f.segment.clone(), f.feature.clone()), i))
            .collect();
        for f in &later.features {
            let key = (f.segment.clone(), f.feature.clone());
            match at.get(&key) {
                Some(&i) => self.features[i].stats.merge(&f.stats),
                None => {
                    at.insert(key, self.features.len());
                    self.features.push(f.clone());
                }
            }
        }

        let mut at: HashMap<(Timestamp, Arc<str>), usize> =
            self.cohorts.iter().enumerate().map(|(i, c)| ((c.start, c.segment.clone()), i)).collect();
        for c in &later.cohorts {
            match at.get(&(c.start, c.segment.clone())) {
                Some(&i) => self.cohorts[i].merge(c),
                None => {
                    at.insert((c.start, c.segment.clone()), self.cohorts.len());
                    self.cohorts.push(c.clone());
                }
            }
        }

        type MetricKey = (Arc<str>, Arc<[(Arc<str>, Arc<str>)]>);
        let mut at: HashMap<MetricKey, usize> =
            self.metrics.iter().enumerate().map(|(i, m)| ((m.name.clone(), m.tags.clone()), i)).collect();
        for m in &later.metrics {
            let key = (m.name.clone(), m.tags.clone());
            match at.get(&key) {
                Some(&i) => self.metrics[i].value.merge(&m.value),
                None => {
                    at.insert(key, self.metrics.len());
                    self.metrics.push(m.clone());
                }
            }
        }
    }

    /// An estimate of the memory this snapshot holds, in bytes, for the agent's bound on
    /// snapshots waiting for a failing sink: the struct itself, its vectors by capacity, each
    /// latency histogram's counts array (a few thousand `u64`s whatever it holds), each
    /// confidence histogram's bins and each sketch's non-empty buckets. Names (segments,
    /// features, metrics, tags, categories) are shared with the agent and not counted, nor
    /// are allocator overheads, so the true figure is somewhat higher.
    pub fn approx_bytes(&self) -> usize {
        let mut n = size_of::<Snapshot>()
            + self.segments.capacity() * size_of::<SegmentSnapshot>()
            + self.features.capacity() * size_of::<FeatureSnapshot>()
            + self.metrics.capacity() * size_of::<MetricSnapshot>()
            + self.examples.capacity() * size_of::<LabelledExample>()
            + self
                .examples
                .iter()
                .map(|e| e.prediction_id.capacity() + size_of_val(&e.features[..]))
                .sum::<usize>();
        for g in &self.segments {
            n += g.latency.distinct_values() * size_of::<u64>()
                + [&g.confidence, &g.feedback_positive, &g.feedback_negative]
                    .iter()
                    .map(|h| size_of_val(h.bins()))
                    .sum::<usize>()
                + g.errors.capacity() * size_of::<(Arc<str>, u64)>();
        }
        for f in &self.features {
            n += match &f.stats {
                FeatureStats::Numeric(s) => sketch_bytes(&s.sketch),
                FeatureStats::Categorical(c) => c.counts.capacity() * size_of::<(Arc<str>, u64)>(),
            };
        }
        for m in &self.metrics {
            if let MetricValue::Distribution(d) = &m.value {
                n += sketch_bytes(&d.sketch);
            }
        }
        n += self.cohorts.capacity() * size_of::<CohortLabels>();
        for c in &self.cohorts {
            n += size_of_val(&c.positive[..]) + size_of_val(&c.negative[..]) + sketch_bytes(&c.delay.sketch);
        }
        n
    }
}

/// The heap bytes of a sketch's buckets.
fn sketch_bytes(s: &Sketch) -> usize {
    size_of_val(s.buckets())
}

/// Adds `(name, count)` pairs into a list of them, by name.
fn add_named(into: &mut Vec<(Arc<str>, u64)>, from: &[(Arc<str>, u64)]) {
    for (name, n) in from {
        match into.iter_mut().find(|c| c.0 == *name) {
            Some(c) => c.1 = c.1.saturating_add(*n),
            None => into.push((name.clone(), *n)),
        }
    }
}

/// One segment's prediction-level values for an interval.
#[derive(Clone, Debug)]
pub struct SegmentSnapshot {
    /// The segment (a PII category, a customer tier, ...).
    pub segment: Arc<str>,
    /// Predictions recorded.
    pub predictions: u64,
    /// Predictions whose predicted label was positive.
    pub predicted_positive: u64,
    /// Latency of valid predictions, nanoseconds.
    pub latency: Histogram<u64>,
    /// Exact sum of the latencies in `latency`, nanoseconds.
    pub latency_sum_nanos: u64,
    /// Confidence of predictions.
    pub confidence: ConfidenceHistogram,
    /// Confidence the model gave to feedback examples whose true label was positive.
    pub feedback_positive: ConfidenceHistogram,
    /// Confidence the model gave to feedback examples whose true label was negative.
    pub feedback_negative: ConfidenceHistogram,
    /// Scoring errors by kind (declared kinds and `other`), zero counts left out.
    pub errors: Vec<(Arc<str>, u64)>,
    /// Inputs that could not be recorded as given.
    pub invalid: InvalidCounts,
}

impl SegmentSnapshot {
    /// Adds another interval's values of the same segment.
    fn merge(&mut self, o: &SegmentSnapshot) {
        self.predictions = self.predictions.saturating_add(o.predictions);
        self.predicted_positive = self.predicted_positive.saturating_add(o.predicted_positive);
        if self.latency.add(&o.latency).is_err() {
            // Only histograms with other bounds refuse to add (the agent makes them all alike):
            // move the counts over value by value, clamped into this histogram's range.
            for v in o.latency.iter_recorded() {
                self.latency.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.latency_sum_nanos = self.latency_sum_nanos.saturating_add(o.latency_sum_nanos);
        self.confidence.merge(&o.confidence);
        self.feedback_positive.merge(&o.feedback_positive);
        self.feedback_negative.merge(&o.feedback_negative);
        add_named(&mut self.errors, &o.errors);
        self.invalid.add(&o.invalid);
    }

    /// Feedback examples (labelled predictions) received.
    pub fn feedback(&self) -> u64 {
        self.feedback_positive.count() + self.feedback_negative.count()
    }

    /// Errors of all kinds.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|e| e.1).sum()
    }
}

/// Counts of odd inputs. None of them made the hook fail; each is counted here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidCounts {
    /// Latencies that were NaN, infinite or negative (the prediction is still counted).
    pub latency: u64,
    /// Latencies above the tracked maximum, recorded as the maximum.
    pub latency_clamped: u64,
    /// Prediction confidences that were NaN or outside [0, 1].
    pub confidence: u64,
    /// Feedback whose confidence was NaN or outside [0, 1] (not recorded).
    pub feedback_confidence: u64,
    /// Predictions whose feature vector had the wrong length (known positions were kept).
    pub schema: u64,
}

impl InvalidCounts {
    fn add(&mut self, o: &InvalidCounts) {
        self.latency = self.latency.saturating_add(o.latency);
        self.latency_clamped = self.latency_clamped.saturating_add(o.latency_clamped);
        self.confidence = self.confidence.saturating_add(o.confidence);
        self.feedback_confidence = self.feedback_confidence.saturating_add(o.feedback_confidence);
        self.schema = self.schema.saturating_add(o.schema);
    }
}

/// One feature's summary in one segment for an interval.
#[derive(Clone, Debug)]
pub struct FeatureSnapshot {
    /// The segment.
    pub segment: Arc<str>,
    /// The feature.
    pub feature: Arc<str>,
    /// The summary.
    pub stats: FeatureStats,
}

/// A feature summary by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum FeatureStats {
    /// A numeric feature.
    Numeric(NumericSummary),
    /// A categorical feature.
    Categorical(CategoryCounts),
}

impl FeatureStats {
    /// Adds another interval's summary of the same feature (`o` replaces a summary of the
    /// other kind).
    fn merge(&mut self, o: &FeatureStats) {
        match (self, o) {
            (FeatureStats::Numeric(a), FeatureStats::Numeric(b)) => a.merge(b),
            (FeatureStats::Categorical(a), FeatureStats::Categorical(b)) => {
                add_named(&mut a.counts, &b.counts);
                a.missing = a.missing.saturating_add(b.missing);
            }
            (a, b) => *a = b.clone(),
        }
    }
}

/// Counts per category, `other` included, zero counts left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CategoryCounts {
    /// `(category, count)`.
    pub counts: Vec<(Arc<str>, u64)>,
    /// Values that were missing (NaN code, no string).
    pub missing: u64,
}

/// Exact moments plus a sketch of a set of numeric values. Merges exactly (up to floating
/// point rounding of the moments) across threads, intervals and processes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NumericSummary {
    /// Finite values seen.
    pub count: u64,
    /// Missing (NaN) values.
    pub missing: u64,
    /// Infinite values (not included in any other field).
    pub invalid: u64,
    /// Smallest finite value; `None` when `count` is 0. Count, min, max, mean and m2 of an
    /// interval are exact and belong to the same values, even for a value recorded while
    /// the flush ran (the epoch hand-shake of the agent's `shard.rs`).
    pub min: Option<f64>,
    /// Largest finite value (see `min`).
    pub max: Option<f64>,
    /// Mean of the finite values (0 when `count` is 0).
    pub mean: f64,
    /// Sum of squared deviations from the mean (variance = m2 / (count - 1)), computed from
    /// sums shifted by the interval's first value, so an offset or a sentinel in an earlier
    /// interval costs nothing. The worst case is an outlier as the interval's first value:
    /// measured, `1e10` then 20,000 values of 52.52 ± 0.05 gave m2 within 6.2e-10 relative
    /// (the error grows with the count times the outlier's share of the sums). `+inf`
    /// when the squared deviations pass f64's range (values near ±1e300 mixed with small
    /// ones).
    pub m2: f64,
    /// The distribution, see [`crate::sketch`](crate::Sketch). A value recorded while the
    /// flush ran can have its bucket in this interval and its moments in the next, so the
    /// sketch's count can differ from `count` by the values in flight; over a run both agree.
    pub sketch: Sketch,
}

impl NumericSummary {
    /// A summary of the given values computed directly (the oracle for tests, and the way to
    /// summarise a batch outside the hot path).
    pub fn of(values: &[f64]) -> Self {
        let mut s = NumericSummary::default();
        for &x in values {
            s.push(x);
        }
        s
    }

    /// Adds one value (Welford's update), outside the hot path.
    pub fn push(&mut self, x: f64) {
        if x.is_nan() {
            self.missing += 1;
        } else if !x.is_finite() {
            self.invalid += 1;
        } else {
            self.count += 1;
            let d = x - self.mean;
            self.mean += d / self.count as f64;
            self.m2 += d * (x - self.mean);
            self.min = Some(self.min.map_or(x, |m| m.min(x)));
            self.max = Some(self.max.map_or(x, |m| m.max(x)));
            self.sketch.record(x);
        }
    }

    /// The value at quantile `q` from the sketch, kept inside the exact `[min, max]` (so a
    /// constant feature reports its exact value). A summary whose min exceeds its max (built
    /// by hand, or read from a damaged file) is not clamped.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let v = self.sketch.quantile(q)?;
        let (lo, hi) = (self.min.unwrap_or(f64::MIN), self.max.unwrap_or(f64::MAX));
        Some(if lo <= hi { v.clamp(lo, hi) } else { v })
    }

    /// Sample variance, `None` below two values.
    pub fn variance(&self) -> Option<f64> {
        (self.count > 1).then(|| (self.m2 / (self.count - 1) as f64).max(0.0))
    }

    /// Sample standard deviation.
    pub fn std_dev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    /// Merges another summary into this one (Chan et al.'s parallel moments), in a form that
    /// stays finite wherever the inputs' moments are: `d * (d * (n_a n_b / n))` rather than
    /// `d² n_a n_b / n`, and an empty side taken over as it is.
    pub fn merge(&mut self, o: &NumericSummary) {
        if o.count > 0 {
            if self.count == 0 {
                self.mean = o.mean;
                self.m2 = o.m2;
                self.min = o.min;
                self.max = o.max;
            } else {
                let n = self.count.saturating_add(o.count);
                let w = o.count as f64 / n as f64;
                let d = o.mean - self.mean;
                self.mean += d * w;
                self.m2 += o.m2 + d * (d * (self.count as f64 * w));
                self.min = either(self.min, o.min, f64::min);
                self.max = either(self.max, o.max, f64::max);
            }
            self.count = self.count.saturating_add(o.count);
            self.sketch.merge(&o.sketch);
        }
        self.missing = self.missing.saturating_add(o.missing);
        self.invalid = self.invalid.saturating_add(o.invalid);
    }
}

/// Combines two optional values, keeping whichever exists.
fn either(a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

/// A generic metric's value for an interval.
#[derive(Clone, Debug)]
pub struct MetricSnapshot {
    /// Metric name.
    pub name: Arc<str>,
    /// Tags, sorted by key.
    pub tags: Arc<[(Arc<str>, Arc<str>)]>,
    /// The value by kind.
    pub value: MetricValue,
}

/// A generic metric's value by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// Sum of the increments in the interval.
    Counter(f64),
    /// The last value set.
    Gauge(f64),
    /// The values observed in the interval.
    Distribution(NumericSummary),
}

impl MetricValue {
    /// Adds a later interval's value of the same series: counters add, distributions merge,
    /// a gauge keeps the later value (as does a series whose kind differs).
    fn merge(&mut self, later: &MetricValue) {
        match (self, later) {
            (MetricValue::Counter(a), MetricValue::Counter(b)) => *a += b,
            (MetricValue::Distribution(a), MetricValue::Distribution(b)) => a.merge(b),
            (a, b) => *a = b.clone(),
        }
    }
}

/// Model load state, for the loaded-models and model-age gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelState {
    /// Loads minus unloads so far (the loaded-models gauge for this model).
    pub loaded: i64,
    /// When the model was last loaded; the model's age is `end - loaded_at`.
    pub loaded_at: Option<Timestamp>,
}

/// Values that did not reach their own series. Each is counted, none silently dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverflowCounts {
    /// Metric values whose series was past the cardinality limit: they went to the
    /// `__overflow__` series.
    pub metric_series: u64,
    /// Metric values logged under a kind that differs from the series' first kind.
    pub kind_conflicts: u64,
    /// Values recorded during thread teardown when no shard could be had.
    pub dropped: u64,
    /// Counter increments and gauge values that were NaN or infinite: counted here, never
    /// applied (one NaN would otherwise make a counter NaN for good).
    pub metric_invalid: u64,
    /// Metric values that found no cells: the metric share of the memory budget was spent
    /// on this thread's shard and on the shared shard.
    pub metric_over_budget: u64,
    /// Feature and distribution values whose sketch bucket had no memory left in the budget:
    /// their count, moments and extremes are in their summary, their bucket is not in its
    /// sketch.
    pub sketch_over_budget: u64,
    /// Snapshots the agent dropped because a failing sink let its backlog of pending
    /// snapshots, merged, grow past its byte bound (`AgentBuilder::max_pending_bytes`). The
    /// count rides on the next snapshot delivered after the drop.
    pub snapshots_dropped: u64,
    /// Predictions in the snapshots counted in `snapshots_dropped`.
    pub predictions_dropped: u64,
    /// Labels (`feedback_for`) that found the label queue or the flusher's cohort tally
    /// full (`AgentBuilder::max_pending_labels`).
    pub labels_dropped: u64,
    /// Labels whose prediction was older than `AgentBuilder::max_label_delay`: not
    /// recorded, since their cohort's quality has long been reported.
    pub labels_too_late: u64,
    /// Labels whose prediction time was after the clock's now (a clock skew): recorded at now.
    pub labels_future: u64,
    /// Labelled examples (`Handle::example`) that found the example queue full
    /// (`AgentBuilder::max_pending_examples`).
    pub examples_dropped: u64,
    /// Labelled examples refused because their feature vector's width was not the number
    /// of declared features.
    pub examples_wrong_width: u64,
}

impl OverflowCounts {
    fn add(&mut self, o: &OverflowCounts) {
        self.metric_series = self.metric_series.saturating_add(o.metric_series);
        self.kind_conflicts = self.kind_conflicts.saturating_add(o.kind_conflicts);
        self.dropped = self.dropped.saturating_add(o.dropped);
        self.metric_invalid = self.metric_invalid.saturating_add(o.metric_invalid);
        self.metric_over_budget = self.metric_over_budget.saturating_add(o.metric_over_budget);
        self.sketch_over_budget = self.sketch_over_budget.saturating_add(o.sketch_over_budget);
        self.snapshots_dropped = self.snapshots_dropped.saturating_add(o.snapshots_dropped);
        self.predictions_dropped = self.predictions_dropped.saturating_add(o.predictions_dropped);
        self.labels_dropped = self.labels_dropped.saturating_add(o.labels_dropped);
        self.labels_too_late = self.labels_too_late.saturating_add(o.labels_too_late);
        self.labels_future = self.labels_future.saturating_add(o.labels_future);
        self.examples_dropped = self.examples_dropped.saturating_add(o.examples_dropped);
        self.examples_wrong_width = self.examples_wrong_width.saturating_add(o.examples_wrong_width);
    }
}
