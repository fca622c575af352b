//! The store's row model: what a snapshot becomes, table by table.
//!
//! Three tables (see `docs/storage-format.md`): `distributions` (one row per interval and
//! series holding a full, lossless distribution plus summary columns), `scalars` (counters
//! and gauges) and `events`. A series is identified by [`SeriesKey`].

use crate::examples::{Example, ExampleSet, ModelExamples};
use modelwatch_agent::layout::{CONFIDENCE_BINS, latency_index, latency_lowest_value, sketch_bucket_bounds};
use modelwatch_agent::{ConfidenceHistogram, FeatureStats, Histogram, MetricValue, NumericSummary, Snapshot};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Time resolution of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resolution {
    /// As flushed by the agent.
    Raw,
    /// Rolled up to one minute.
    Minute,
    /// Rolled up to one hour.
    Hour,
}

impl Resolution {
    /// All resolutions, finest first.
    pub const ALL: [Resolution; 3] = [Resolution::Raw, Resolution::Minute, Resolution::Hour];

    /// The name used in paths and columns.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::Minute => "1m",
            Resolution::Hour => "1h",
        }
    }

    /// Parses `raw`, `1m` or `1h`.
    pub fn parse(s: &str) -> Option<Resolution> {
        Resolution::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The roll-up step in milliseconds (`None` for raw).
    pub fn step_ms(self) -> Option<i64> {
        match self {
            Resolution::Raw => None,
            Resolution::Minute => Some(60_000),
            Resolution::Hour => Some(3_600_000),
        }
    }
}

/// How a distribution row's bucket keys are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scheme {
    /// HdrHistogram(1 ns .. 60 s, 2 significant digits); key = HdrHistogram counts index.
    LatencyHdr,
    /// 1,000 fixed bins over [0, 1]; key = bin.
    Confidence,
    /// The agent's log-linear sketch (32 sub-buckets per power of two); key = sketch key.
    Sketch,
}

impl Scheme {
    /// The name stored in the `scheme` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::LatencyHdr => "hdr_ns_2",
            Scheme::Confidence => "confidence_1000",
            Scheme::Sketch => "log_linear_5",
        }
    }

    /// Parses a `scheme` column value.
    pub fn parse(s: &str) -> Option<Scheme> {
        [Scheme::LatencyHdr, Scheme::Confidence, Scheme::Sketch].into_iter().find(|x| x.as_str() == s)
    }

    /// The keys a bucket of this scheme can have (what a decoder accepts).
    pub fn keys(self) -> std::ops::RangeInclusive<i64> {
        match self {
            Scheme::LatencyHdr => 0..=latency_index(modelwatch_agent::layout::LATENCY_MAX) as i64,
            Scheme::Confidence => 0..=CONFIDENCE_BINS as i64 - 1,
            Scheme::Sketch => {
                let max = i64::from(modelwatch_agent::layout::SKETCH_MAX_KEY);
                -max..=max
            }
        }
    }

    /// The `[lower, upper)` value range of a bucket key.
    pub fn bounds(self, key: i64) -> (f64, f64) {
        match self {
            Scheme::LatencyHdr => {
                let i = key.max(0) as usize;
                (latency_lowest_value(i) as f64, latency_lowest_value(i + 1) as f64)
            }
            Scheme::Confidence => {
                let n = CONFIDENCE_BINS as f64;
                (key as f64 / n, (key + 1) as f64 / n)
            }
            Scheme::Sketch => sketch_bucket_bounds(key as i32),
        }
    }
}

/// Identity of a series: the tags every row carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Model name.
    pub model: Arc<str>,
    /// Model version.
    pub version: Arc<str>,
    /// Deployment variant.
    pub variant: Arc<str>,
    /// Recording process or replica.
    pub instance: Arc<str>,
    /// Segment (empty for model-wide series).
    pub segment: Arc<str>,
    /// Metric name: `latency_ns`, `confidence`, `feature`, `predictions`, ... or a generic
    /// metric's own name.
    pub metric: Arc<str>,
    /// Feature name (empty unless the metric is about a feature).
    pub feature: Arc<str>,
    /// Free tags as `k=v` pairs joined by `,`, sorted by key (empty when none).
    pub tags: Arc<str>,
}

impl SeriesKey {
    /// The value of a tag by name: the fixed tags, then the free ones.
    pub fn tag(&self, name: &str) -> Option<&str> {
        Some(match name {
            "model" => &self.model,
            "version" => &self.version,
            "variant" => &self.variant,
            "instance" => &self.instance,
            "segment" => &self.segment,
            "metric" | "__name__" => &self.metric,
            "feature" => &self.feature,
            _ => {
                return self
                    .tags
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == name)
                    .map(|kv| kv.1);
            }
        })
    }
}

/// One distribution over one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistributionRow {
    /// Interval start, ms since the Unix epoch.
    pub start_ms: i64,
    /// Interval end (exclusive).
    pub end_ms: i64,
    /// Resolution of the row.
    pub resolution: Resolution,
    /// The series.
    pub series: SeriesKey,
    /// How to read `buckets`.
    pub scheme: Scheme,
    /// Values in the buckets.
    pub count: u64,
    /// Missing values (features: NaN).
    pub missing: u64,
    /// Invalid values (features: infinite).
    pub invalid: u64,
    /// Exact sum when known.
    pub sum: Option<f64>,
    /// Exact minimum when known.
    pub min: Option<f64>,
    /// Exact maximum when known.
    pub max: Option<f64>,
    /// Exact mean when known.
    pub mean: Option<f64>,
    /// Sum of squared deviations from the mean when known.
    pub m2: Option<f64>,
    /// `(key, count)` by increasing key; lossless.
    pub buckets: Vec<(i64, u64)>,
}

/// Counter or gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScalarKind {
    /// The increase over the interval.
    Counter,
    /// The value at the end of the interval.
    Gauge,
}

impl ScalarKind {
    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ScalarKind::Counter => "counter",
            ScalarKind::Gauge => "gauge",
        }
    }
}

/// One counter increase or gauge value over one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalarRow {
    /// Interval start, ms.
    pub start_ms: i64,
    /// Interval end, ms.
    pub end_ms: i64,
    /// Resolution.
    pub resolution: Resolution,
    /// The series.
    pub series: SeriesKey,
    /// Counter or gauge.
    pub kind: ScalarKind,
    /// The value.
    pub value: f64,
}

/// Something that happened at one moment (a model load, a trigger, a promotion).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// When, ms.
    pub time_ms: i64,
    /// Model name.
    pub model: Arc<str>,
    /// Model version.
    pub version: Arc<str>,
    /// Variant.
    pub variant: Arc<str>,
    /// What kind of event (`model_loaded`, `retrain_triggered`, ...).
    pub kind: Arc<str>,
    /// Human-readable details.
    pub message: String,
}

/// Rows of all three tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rows {
    /// Distribution rows.
    pub distributions: Vec<DistributionRow>,
    /// Scalar rows.
    pub scalars: Vec<ScalarRow>,
    /// Event rows.
    pub events: Vec<EventRow>,
    /// Labelled examples, by model: a sibling dataset rather than a fourth table (see
    /// [`crate::examples`]), carried here so that they take the same acknowledged path (WAL,
    /// buffer, publication, replay) as the rows of the tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<crate::examples::ModelExamples>,
}

impl Rows {
    /// Rows of all tables together.
    pub fn len(&self) -> usize {
        self.distributions.len()
            + self.scalars.len()
            + self.events.len()
            + self.examples.iter().map(|e| e.set.len()).sum::<usize>()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves `other`'s rows into this set.
    pub fn append(&mut self, other: &mut Rows) {
        self.distributions.append(&mut other.distributions);
        self.scalars.append(&mut other.scalars);
        self.events.append(&mut other.events);
        self.examples.append(&mut other.examples);
    }

    /// The rows of one snapshot.
    pub fn from_snapshot(s: &Snapshot) -> Rows {
        let (start_ms, end_ms) = (s.start.as_millis() as i64, s.end.as_millis() as i64);
        let m = &s.model;
        let key = |segment: &Arc<str>, metric: &str, feature: &Arc<str>, tags: Arc<str>| SeriesKey {
            model: m.name.clone(),
            version: m.version.clone(),
            variant: m.variant.clone(),
            instance: m.instance.clone(),
            segment: segment.clone(),
            metric: metric.into(),
            feature: feature.clone(),
            tags,
        };
        let none: Arc<str> = "".into();
        let mut rows = Rows::default();
        let dist = |series: SeriesKey, scheme, count, buckets: Vec<(i64, u64)>| DistributionRow {
            count,
            buckets,
            ..DistributionRow::empty(start_ms, end_ms, Resolution::Raw, series, scheme)
        };
        let scalar = |series: SeriesKey, kind, value: f64| ScalarRow {
            start_ms,
            end_ms,
            resolution: Resolution::Raw,
            series,
            kind,
            value,
        };
        for g in &s.segments {
            let seg = &g.segment;
            if !g.latency.is_empty() {
                let mut d = dist(
                    key(seg, "latency_ns", &none, none.clone()),
                    Scheme::LatencyHdr,
                    g.latency.len(),
                    latency_buckets(&g.latency),
                );
                d.sum = Some(g.latency_sum_nanos as f64);
                d.min = Some(g.latency.min() as f64);
                d.max = Some(g.latency.max() as f64);
                d.mean = DistributionRow::latency_mean(d.sum, d.count);
                d.invalid = g.invalid.latency;
                rows.distributions.push(d);
            }
            for (metric, h) in [
                ("confidence", &g.confidence),
                ("confidence_positive", &g.feedback_positive),
                ("confidence_negative", &g.feedback_negative),
            ] {
                if !h.is_empty() {
                    rows.distributions.push(dist(
                        key(seg, metric, &none, none.clone()),
                        Scheme::Confidence,
                        h.count(),
                        confidence_buckets(h),
                    ));
                }
            }
            let counters = [
                ("predictions", g.predictions),
                ("predicted_positive", g.predicted_positive),
                ("feedback", g.feedback()),
                ("invalid_latency", g.invalid.latency),
                ("latency_clamped", g.invalid.latency_clamped),
                ("invalid_confidence", g.invalid.confidence),
                ("invalid_feedback", g.invalid.feedback_confidence),
                ("schema_errors", g.invalid.schema),
            ];
            for (metric, v) in counters {
                if v > 0 || metric == "predictions" {
                    rows.scalars.push(scalar(
                        key(seg, metric, &none, none.clone()),
                        ScalarKind::Counter,
                        v as f64,
                    ));
                }
            }
            for (kind, n) in &g.errors {
                let tags: Arc<str> = format!("kind={kind}").into();
                rows.scalars.push(scalar(key(seg, "errors", &none, tags), ScalarKind::Counter, *n as f64));
            }
        }
        // Labels for earlier predictions go to their prediction's interval (a late row the
        // store merges); the `feedback` counter stays at arrival, for the labels trigger.
        let mut arrived: Vec<(&Arc<str>, u64)> = Vec::new();
        for c in &s.cohorts {
            let (from, to) = (c.start.as_millis() as i64, c.end.as_millis() as i64);
            for (metric, bins) in [("confidence_positive", &c.positive), ("confidence_negative", &c.negative)]
            {
                if !bins.is_empty() {
                    rows.distributions.push(DistributionRow {
                        count: bins.iter().map(|b| b.1).sum(),
                        buckets: bins.iter().map(|&(k, n)| (i64::from(k), n)).collect(),
                        ..DistributionRow::empty(
                            from,
                            to,
                            Resolution::Raw,
                            key(&c.segment, metric, &none, none.clone()),
                            Scheme::Confidence,
                        )
                    });
                }
            }
            if c.delay.count > 0 {
                rows.distributions.push(summary_row(
                    &c.delay,
                    key(&c.segment, "label_delay_seconds", &none, none.clone()),
                    from,
                    to,
                ));
            }
            match arrived.iter_mut().find(|a| a.0 == &c.segment) {
                Some(a) => a.1 += c.count(),
                None => arrived.push((&c.segment, c.count())),
            }
        }
        for (seg, n) in arrived {
            rows.scalars.push(scalar(
                key(seg, "feedback", &none, none.clone()),
                ScalarKind::Counter,
                n as f64,
            ));
        }
        for f in &s.features {
            match &f.stats {
                FeatureStats::Numeric(n) => {
                    rows.distributions.push(summary_row(
                        n,
                        key(&f.segment, "feature", &f.feature, none.clone()),
                        start_ms,
                        end_ms,
                    ));
                }
                FeatureStats::Categorical(c) => {
                    for (category, n) in &c.counts {
                        let tags: Arc<str> = format!("category={category}").into();
                        rows.scalars.push(scalar(
                            key(&f.segment, "feature_category", &f.feature, tags),
                            ScalarKind::Counter,
                            *n as f64,
                        ));
                    }
                    if c.missing > 0 {
                        rows.scalars.push(scalar(
                            key(&f.segment, "feature_missing", &f.feature, none.clone()),
                            ScalarKind::Counter,
                            c.missing as f64,
                        ));
                    }
                }
            }
        }
        for mt in &s.metrics {
            let tags: Arc<str> =
                mt.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",").into();
            let k = key(&none, &mt.name, &none, tags);
            match &mt.value {
                MetricValue::Counter(v) => rows.scalars.push(scalar(k, ScalarKind::Counter, *v)),
                MetricValue::Gauge(v) => rows.scalars.push(scalar(k, ScalarKind::Gauge, *v)),
                MetricValue::Distribution(d) => rows.distributions.push(summary_row(d, k, start_ms, end_ms)),
            }
        }
        let ms = s.model_state;
        if ms.loaded != 0 || ms.loaded_at.is_some() {
            rows.scalars.push(scalar(
                key(&none, "model_loaded", &none, none.clone()),
                ScalarKind::Gauge,
                ms.loaded as f64,
            ));
        }
        if let Some(at) = ms.loaded_at {
            let age = s.end.saturating_duration_since(at).as_secs_f64();
            rows.scalars.push(scalar(
                key(&none, "model_age_seconds", &none, none.clone()),
                ScalarKind::Gauge,
                age,
            ));
        }
        let o = s.overflow;
        for (metric, v) in [
            ("overflow_metric_series", o.metric_series),
            ("overflow_kind_conflicts", o.kind_conflicts),
            ("overflow_dropped", o.dropped),
            ("overflow_metric_invalid", o.metric_invalid),
            ("overflow_metric_over_budget", o.metric_over_budget),
            ("overflow_sketch_over_budget", o.sketch_over_budget),
            ("overflow_snapshots_dropped", o.snapshots_dropped),
            ("overflow_predictions_dropped", o.predictions_dropped),
            ("overflow_labels_dropped", o.labels_dropped),
            ("overflow_labels_too_late", o.labels_too_late),
            ("overflow_labels_future", o.labels_future),
            ("overflow_examples_dropped", o.examples_dropped),
            ("overflow_examples_wrong_width", o.examples_wrong_width),
        ] {
            if v > 0 {
                rows.scalars.push(scalar(
                    key(&none, metric, &none, none.clone()),
                    ScalarKind::Counter,
                    v as f64,
                ));
            }
        }
        if !s.examples.is_empty() {
            let mut set = ExampleSet::new(s.example_features.iter().map(|f| f.to_string()).collect());
            set.rows = s
                .examples
                .iter()
                .map(|e| Example {
                    prediction_id: e.prediction_id.clone(),
                    predicted_ms: e.predicted_at.as_millis() as i64,
                    label_ms: e.labelled_at.as_millis() as i64,
                    segment: e.segment.to_string(),
                    features: e.features.clone(),
                    confidence: e.confidence,
                    label: e.label,
                })
                .collect();
            rows.examples.push(ModelExamples { model: m.name.clone(), set });
        }
        rows
    }
}

fn summary_row(n: &NumericSummary, series: SeriesKey, start_ms: i64, end_ms: i64) -> DistributionRow {
    DistributionRow {
        start_ms,
        end_ms,
        resolution: Resolution::Raw,
        series,
        scheme: Scheme::Sketch,
        count: n.count,
        missing: n.missing,
        invalid: n.invalid,
        sum: (n.count > 0).then_some(n.mean * n.count as f64),
        min: n.min,
        max: n.max,
        mean: (n.count > 0).then_some(n.mean),
        m2: (n.count > 0).then_some(n.m2),
        buckets: n.sketch.buckets().iter().map(|&(k, c)| (i64::from(k), c)).collect(),
    }
}

/// `(HdrHistogram index, count)` of every non-empty bucket.
pub fn latency_buckets(h: &Histogram<u64>) -> Vec<(i64, u64)> {
    h.iter_recorded().map(|v| (latency_index(v.value_iterated_to()) as i64, v.count_at_value())).collect()
}

fn confidence_buckets(h: &ConfidenceHistogram) -> Vec<(i64, u64)> {
    h.bins().iter().enumerate().filter(|b| *b.1 > 0).map(|(i, &c)| (i as i64, c)).collect()
}

impl DistributionRow {
    /// A row with no values, to merge others into.
    pub fn empty(
        start_ms: i64,
        end_ms: i64,
        resolution: Resolution,
        series: SeriesKey,
        scheme: Scheme,
    ) -> Self {
        DistributionRow {
            start_ms,
            end_ms,
            resolution,
            series,
            scheme,
            count: 0,
            missing: 0,
            invalid: 0,
            sum: None,
            min: None,
            max: None,
            mean: None,
            m2: None,
            buckets: Vec::new(),
        }
    }

    /// Adds another row's distribution of the same scheme (buckets add; moments merge
    /// exactly), for roll-ups and queries over windows.
    pub fn merge(&mut self, o: &DistributionRow) {
        self.buckets = merge_buckets(&self.buckets, &o.buckets);
        self.merge_moments(o);
    }

    /// The merge of many rows of one scheme at once: like folding [`Self::merge`], with the
    /// buckets added in one pass instead of one list per step.
    pub fn merge_all(rows: &[&DistributionRow]) -> Option<DistributionRow> {
        let (first, rest) = rows.split_first()?;
        let mut pairs: Vec<(i64, u64)> = Vec::with_capacity(rows.iter().map(|r| r.buckets.len()).sum());
        let mut acc =
            DistributionRow { buckets: Vec::new(), ..DistributionRow::clone_without_buckets(first) };
        pairs.extend_from_slice(&first.buckets);
        for r in rest {
            acc.merge_moments(r);
            pairs.extend_from_slice(&r.buckets);
        }
        sum_buckets(&mut pairs);
        acc.buckets = pairs;
        Some(acc)
    }

    fn clone_without_buckets(r: &DistributionRow) -> DistributionRow {
        DistributionRow {
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            resolution: r.resolution,
            series: r.series.clone(),
            scheme: r.scheme,
            count: r.count,
            missing: r.missing,
            invalid: r.invalid,
            sum: r.sum,
            min: r.min,
            max: r.max,
            mean: r.mean,
            m2: r.m2,
            buckets: Vec::new(),
        }
    }

    /// Everything of [`Self::merge`] but the buckets.
    fn merge_moments(&mut self, o: &DistributionRow) {
        self.start_ms = self.start_ms.min(o.start_ms);
        self.end_ms = self.end_ms.max(o.end_ms);
        // Moments survive only when both sides have them (an empty side has nothing to add).
        let has_moments = |r: &DistributionRow| r.count == 0 || r.mean.is_some();
        let keep_moments = has_moments(self) && has_moments(o);
        // Chan's parallel formula (what NumericSummary::merge does, without its sketch).
        let (n1, n2) = (self.count as f64, o.count as f64);
        let (mean1, m2_1) = (self.mean.unwrap_or(0.0), self.m2.unwrap_or(0.0));
        let (mean, m2) = if o.count == 0 {
            (mean1, m2_1)
        } else {
            let d = o.mean.unwrap_or(0.0) - mean1;
            let n = n1 + n2;
            (mean1 + d * n2 / n, m2_1 + o.m2.unwrap_or(0.0) + d * d * n1 * n2 / n)
        };
        let either = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        let (min, max) = if o.count == 0 {
            (self.min, self.max)
        } else {
            (either(self.min, o.min, f64::min), either(self.max, o.max, f64::max))
        };
        self.sum = match (self.sum, o.sum) {
            (Some(x), Some(y)) => Some(x + y),
            (x, None) if o.count == 0 => x,
            (None, y) if self.count == 0 => y,
            _ => None,
        };
        self.count += o.count;
        self.missing += o.missing;
        self.invalid += o.invalid;
        self.min = min;
        self.max = max;
        (self.mean, self.m2) =
            if keep_moments && self.count > 0 { (Some(mean), Some(m2)) } else { (None, None) };
        if self.scheme == Scheme::LatencyHdr {
            // Latency rows carry an exact sum but no M2: the mean comes from the sum.
            self.mean = Self::latency_mean(self.sum, self.count);
            self.m2 = None;
        }
    }

    /// A latency row's mean: its exact sum over its count, by definition (format 2 stores
    /// no latency mean; its decoders put this back).
    pub fn latency_mean(sum: Option<f64>, count: u64) -> Option<f64> {
        sum.map(|s| s / count.max(1) as f64)
    }

    /// The mean from the buckets' midpoints, for rows without exact moments (confidence:
    /// within half a bin, 0.0005).
    pub fn bucket_mean(&self) -> Option<f64> {
        let n: u64 = self.buckets.iter().map(|b| b.1).sum();
        (n > 0).then(|| {
            let s: f64 = self
                .buckets
                .iter()
                .map(|&(k, c)| {
                    let (lo, hi) = self.scheme.bounds(k);
                    let mid = if hi.is_finite() { (lo + hi) / 2.0 } else { lo };
                    c as f64 * mid
                })
                .sum();
            s / n as f64
        })
    }

    /// The value at quantile `q` from the buckets (the bucket's representative value,
    /// kept within the exact min and max when known).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n: u64 = self.buckets.iter().map(|b| b.1).sum();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        let mut key = self.buckets[0].0;
        for &(k, c) in &self.buckets {
            seen += c;
            key = k;
            if seen >= rank {
                break;
            }
        }
        let v = match self.scheme {
            Scheme::Sketch => modelwatch_agent::layout::sketch_representative(key as i32),
            // HdrHistogram reports the highest value equivalent to the bucket.
            Scheme::LatencyHdr => self.scheme.bounds(key).1 - 1.0,
            Scheme::Confidence => {
                let (lo, hi) = self.scheme.bounds(key);
                (lo + hi) / 2.0
            }
        };
        Some(v.clamp(self.min.unwrap_or(f64::MIN), self.max.unwrap_or(f64::MAX)))
    }
}

/// Adds two sorted `(key, count)` lists.
pub fn merge_buckets(a: &[(i64, u64)], b: &[(i64, u64)]) -> Vec<(i64, u64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Sorts `(key, count)` bucket pairs by key and adds the counts of equal keys: several
/// rows' buckets merged into one list.
pub fn sum_buckets(pairs: &mut Vec<(i64, u64)>) {
    pairs.sort_unstable_by_key(|p| p.0);
    pairs.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
}
