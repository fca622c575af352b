//! Plain, immutable values the flusher hands to a [`crate::Sink`]: one [`Snapshot`] per
//! interval, holding interval deltas (not running totals) for every series that changed.

use crate::clock::Timestamp;
use crate::confidence::ConfidenceHistogram;
use crate::schema::ModelIdentity;
use crate::sketch::Sketch;
use hdrhistogram::Histogram;
use std::sync::Arc;

/// Everything recorded in one interval `[start, end)`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Position of this snapshot in the agent's sequence, from 0, without gaps.
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
}

impl Snapshot {
    /// Predictions in this interval, over all segments.
    pub fn predictions(&self) -> u64 {
        self.segments.iter().map(|s| s.predictions).sum()
    }

    /// Whether the snapshot holds no recorded value.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
            && self.features.is_empty()
            && self.metrics.is_empty()
            && self.overflow == OverflowCounts::default()
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
            if x.is_nan() {
                s.missing += 1;
            } else if !x.is_finite() {
                s.invalid += 1;
            } else {
                s.count += 1;
                let d = x - s.mean;
                s.mean += d / s.count as f64;
                s.m2 += d * (x - s.mean);
                s.min = Some(s.min.map_or(x, |m| m.min(x)));
                s.max = Some(s.max.map_or(x, |m| m.max(x)));
                s.sketch.record(x);
            }
        }
        s
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
}
