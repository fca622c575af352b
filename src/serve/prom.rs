//! `GET /metrics`: Prometheus text exposition (format 0.0.4).
//!
//! The store holds interval deltas; Prometheus wants cumulative counters. The exposition
//! adds up every raw interval row that arrives after the server started (and the five
//! minutes before it, so the first scrape has data), once per stored series: a row counts
//! when it starts at or after the end of the last row counted for its series (instances
//! included). Counters therefore start near zero when the server starts — at the rows of
//! those five minutes, so at zero when the writer was idle longer — which Prometheus'
//! `rate()` treats as a reset. Rows arriving more than ten minutes behind the newest one
//! are not counted.
//!
//! Gauges are levels, not sums: a server started while the writer is idle, however long,
//! still shows the latest values the store holds — those of each series that recorded in
//! the hour before the store's newest row — and how old they are:
//! `modelwatch_last_interval_timestamp_seconds{model, variant}`, the end of the newest
//! interval recorded by a model's variant, is what to alert on (`time() -
//! modelwatch_last_interval_timestamp_seconds > 600`: nothing recorded for ten minutes).
//!
//! Families (labels `model`, `version`, `variant`, `segment`, plus `feature`, `kind`,
//! `category` or free tags where the series has them; instances are summed):
//! - `modelwatch_prediction_latency_seconds` and `modelwatch_prediction_confidence`:
//!   classic histograms; `modelwatch_feedback_confidence{label="positive|negative"}` too.
//!   A stored bucket counts under the first `le` at or above its upper bound, so a latency
//!   can land one Prometheus bucket high when an HDR bucket (1 % wide) straddles a bound.
//!   Latency `_sum` is exact; confidence keeps no sum, so its `_sum` adds each stored bin's
//!   midpoint (within half a bin, 0.0005, of each prediction's confidence).
//! - `modelwatch_feature_observations_total`, `modelwatch_feature_missing_total`, and the
//!   gauge `modelwatch_feature_mean` (the latest complete interval).
//! - Distribution metrics logged with `log_metric`: summaries (`_sum`, `_count`).
//! - Counters: `modelwatch_<name>_total` (`predictions`, `errors{kind}`, `feedback`, ...).
//! - Gauges: `modelwatch_<name>` per recording process (label `replica`), the value of its
//!   latest interval (`model_loaded`, `model_age_seconds`, ...).
//! - `modelwatch_last_interval_end_timestamp_seconds`: the end of the newest interval.
//! - `modelwatch_last_interval_timestamp_seconds{model, variant}`: the end of the newest
//!   interval of each model's variant (all its instances and series).

use super::{ApiError, AppState};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use modelwatch_store::{DistributionRow, ReadRequest, Resolution, ScalarKind, SeriesKey, Store, Table};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;

const LATENCY_BOUNDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const CONFIDENCE_BOUNDS: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
const BACKFILL_MS: i64 = 5 * 60_000;
const LATE_MS: i64 = 10 * 60_000;
/// How far before the store's newest row a starting server looks for the latest gauges.
const GAUGES_LOOKBACK_MS: i64 = 3_600_000;

type Labels = Vec<(String, String)>;

#[derive(Default)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

/// The cumulative state behind `/metrics`.
pub(super) struct Exposition {
    start_ms: i64,
    generation: Option<u64>,
    /// Per stored series: the end of the last interval counted.
    counted_until: HashMap<SeriesKey, i64>,
    newest_end_ms: i64,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    /// Family name → (help, labels → value).
    counters: BTreeMap<String, BTreeMap<Labels, f64>>,
    summaries: BTreeMap<String, BTreeMap<Labels, (u64, f64)>>,
    /// Latest interval's (end, count, sum) per label set.
    feature_means: BTreeMap<Labels, (i64, u64, f64)>,
    /// Latest interval's (end, value) per gauge and label set.
    gauges: BTreeMap<String, BTreeMap<Labels, (i64, f64)>>,
    /// End of the newest interval per (model, variant).
    last_intervals: BTreeMap<Labels, i64>,
}

impl Exposition {
    pub(super) fn new(start_ms: i64) -> Self {
        Exposition {
            start_ms,
            generation: None,
            counted_until: HashMap::new(),
            newest_end_ms: 0,
            histograms: BTreeMap::new(),
            counters: BTreeMap::new(),
            summaries: BTreeMap::new(),
            feature_means: BTreeMap::new(),
            gauges: BTreeMap::new(),
            last_intervals: BTreeMap::new(),
        }
    }

    /// Adds the rows that arrived since the last update.
    fn update(&mut self, store: &Store) -> Result<(), ApiError> {
        let generation = store.generation();
        if self.generation == Some(generation) {
            return Ok(());
        }
        // The first read also reaches back for the latest gauges: to the hour before the
        // store's newest row when the writer has been idle longer than the backfill.
        let first = self.newest_end_ms == 0;
        let counting_from = self.start_ms - BACKFILL_MS;
        let from = if first {
            let newest = store
                .manifest()
                .files
                .iter()
                .filter(|f| f.resolution == Resolution::Raw && f.table != Table::Events)
                .map(|f| f.max_ms)
                .max();
            newest.map_or(counting_from, |n| counting_from.min(n - GAUGES_LOOKBACK_MS))
        } else {
            self.newest_end_ms - LATE_MS
        };
        let d = store.read(&ReadRequest::new(Table::Distributions, from, i64::MAX, Resolution::Raw))?;
        let s = store.read(&ReadRequest::new(Table::Scalars, from, i64::MAX, Resolution::Raw))?;
        let mut dist = d.distributions;
        let mut scalars = s.scalars;
        dist.sort_by_key(|r| r.start_ms);
        scalars.sort_by_key(|r| r.start_ms);
        // A row before the counting window is read by the first read alone: it sets levels
        // (once), never counts.
        let before = |start_ms: i64| first && start_ms < counting_from;
        for r in &dist {
            let counted = self.fresh(&r.series, r.start_ms, r.end_ms);
            if counted {
                self.add_distribution(r);
            }
            if counted || before(r.start_ms) {
                self.note_level(&r.series, r.end_ms);
                if &*r.series.metric == "feature" {
                    self.note_feature_mean(r);
                }
            }
        }
        for r in &scalars {
            let counted = self.fresh(&r.series, r.start_ms, r.end_ms);
            if !counted && !before(r.start_ms) {
                continue;
            }
            self.note_level(&r.series, r.end_ms);
            let labels = labels_of(&r.series, &[]);
            match r.kind {
                ScalarKind::Counter if counted => {
                    *self
                        .counters
                        .entry(format!("modelwatch_{}_total", sanitize(&r.series.metric)))
                        .or_default()
                        .entry(labels)
                        .or_default() += r.value;
                }
                ScalarKind::Counter => {}
                ScalarKind::Gauge => {
                    let mut labels = labels;
                    labels.push(("replica".into(), r.series.instance.to_string()));
                    labels.sort();
                    let g = self
                        .gauges
                        .entry(format!("modelwatch_{}", sanitize(&r.series.metric)))
                        .or_default()
                        .entry(labels)
                        .or_insert((i64::MIN, 0.0));
                    if r.end_ms >= g.0 {
                        *g = (r.end_ms, r.value);
                    }
                }
            }
        }
        self.generation = Some(generation);
        Ok(())
    }

    /// A row's interval end: the newest interval overall and of its model's variant.
    fn note_level(&mut self, series: &SeriesKey, end_ms: i64) {
        self.newest_end_ms = self.newest_end_ms.max(end_ms);
        let key =
            vec![("model".into(), series.model.to_string()), ("variant".into(), series.variant.to_string())];
        let last = self.last_intervals.entry(key).or_insert(end_ms);
        *last = (*last).max(end_ms);
    }

    /// A feature row's part of the latest interval's mean (instances of one interval add up).
    fn note_feature_mean(&mut self, r: &DistributionRow) {
        let sum = r.sum.or(r.mean.map(|m| m * r.count as f64)).unwrap_or(0.0);
        let m = self.feature_means.entry(labels_of(&r.series, &[])).or_insert((i64::MIN, 0, 0.0));
        if r.end_ms > m.0 {
            *m = (r.end_ms, r.count, sum);
        } else if r.end_ms == m.0 {
            m.1 += r.count;
            m.2 += sum;
        }
    }

    /// Whether a row is new for its series (and marks it counted).
    fn fresh(&mut self, series: &SeriesKey, start_ms: i64, end_ms: i64) -> bool {
        let until = self.counted_until.get(series).copied().unwrap_or(i64::MIN);
        if start_ms < until || start_ms < self.start_ms - BACKFILL_MS {
            return false;
        }
        self.counted_until.insert(series.clone(), end_ms);
        true
    }

    fn add_distribution(&mut self, r: &DistributionRow) {
        let metric = &*r.series.metric;
        let hist = |family: &'static str, bounds: &[f64], scale: f64, extra: &[(&str, &str)]| {
            let labels = labels_of(&r.series, extra);
            let mut buckets = vec![0u64; bounds.len()];
            for &(key, count) in &r.buckets {
                let upper = r.scheme.bounds(key).1 * scale;
                // Tolerance for bin edges computed in floating point (0.1 as 100/1000).
                let i = bounds.partition_point(|&le| le < upper - 1e-9);
                if let Some(b) = buckets.get_mut(i) {
                    *b += count;
                }
            }
            // Confidence rows keep no sum: their bins' midpoints stand in for it.
            let sum = r.sum.or_else(|| r.bucket_mean().map(|m| m * r.count as f64)).unwrap_or(0.0);
            (family, labels, buckets, r.count, sum * scale)
        };
        let (family, labels, buckets, count, sum) = match metric {
            "latency_ns" => hist("modelwatch_prediction_latency_seconds", &LATENCY_BOUNDS, 1e-9, &[]),
            "confidence" => hist("modelwatch_prediction_confidence", &CONFIDENCE_BOUNDS, 1.0, &[]),
            "confidence_positive" => {
                hist("modelwatch_feedback_confidence", &CONFIDENCE_BOUNDS, 1.0, &[("label", "positive")])
            }
            "confidence_negative" => {
                hist("modelwatch_feedback_confidence", &CONFIDENCE_BOUNDS, 1.0, &[("label", "negative")])
            }
            "feature" => {
                let labels = labels_of(&r.series, &[]);
                let add = |c: &mut BTreeMap<String, BTreeMap<Labels, f64>>, name: &str, v: u64| {
                    *c.entry(name.to_string()).or_default().entry(labels.clone()).or_default() += v as f64;
                };
                add(&mut self.counters, "modelwatch_feature_observations_total", r.count);
                add(&mut self.counters, "modelwatch_feature_missing_total", r.missing);
                return;
            }
            other => {
                let s = self
                    .summaries
                    .entry(format!("modelwatch_{}", sanitize(other)))
                    .or_default()
                    .entry(labels_of(&r.series, &[]))
                    .or_default();
                s.0 += r.count;
                s.1 += r.sum.unwrap_or(0.0);
                return;
            }
        };
        let h = self.histograms.entry((family, labels)).or_default();
        if h.buckets.is_empty() {
            h.buckets = vec![0; buckets.len()];
        }
        for (a, b) in h.buckets.iter_mut().zip(buckets) {
            *a += b;
        }
        h.count += count;
        h.sum += sum;
    }

    fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let mut last = "";
        for ((name, labels), h) in &self.histograms {
            if *name != last {
                let help = match *name {
                    "modelwatch_prediction_latency_seconds" => "Prediction latency.",
                    "modelwatch_prediction_confidence" => "Confidence score of predictions.",
                    _ => "Confidence the model gave to predictions later labelled by feedback.",
                };
                family(&mut out, name, "histogram", help);
                last = name;
            }
            let bounds: &[f64] = if *name == "modelwatch_prediction_latency_seconds" {
                &LATENCY_BOUNDS
            } else {
                &CONFIDENCE_BOUNDS
            };
            let mut cumulative = 0;
            for (le, n) in bounds.iter().zip(&h.buckets) {
                cumulative += n;
                let _ =
                    writeln!(out, "{name}_bucket{} {cumulative}", fmt_labels(labels, Some(&le.to_string())));
            }
            let _ = writeln!(out, "{name}_bucket{} {}", fmt_labels(labels, Some("+Inf")), h.count);
            let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
            let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.count);
        }
        for (name, series) in &self.counters {
            family(&mut out, name, "counter", &format!("Total of {name}, from interval increases."));
            for (labels, v) in series {
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
            }
        }
        for (name, series) in &self.summaries {
            family(&mut out, name, "summary", "A distribution logged with log_metric.");
            for (labels, (count, sum)) in series {
                let _ = writeln!(out, "{name}_sum{} {sum}", fmt_labels(labels, None));
                let _ = writeln!(out, "{name}_count{} {count}", fmt_labels(labels, None));
            }
        }
        if !self.feature_means.is_empty() {
            family(
                &mut out,
                "modelwatch_feature_mean",
                "gauge",
                "Mean of a feature over the latest complete interval.",
            );
            for (labels, (_, count, sum)) in &self.feature_means {
                if *count > 0 {
                    let _ = writeln!(
                        out,
                        "modelwatch_feature_mean{} {}",
                        fmt_labels(labels, None),
                        sum / *count as f64
                    );
                }
            }
        }
        for (name, series) in &self.gauges {
            family(
                &mut out,
                name,
                "gauge",
                "Value at the end of the latest interval, per recording process.",
            );
            for (labels, (_, v)) in series {
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
            }
        }
        if !self.last_intervals.is_empty() {
            family(
                &mut out,
                "modelwatch_last_interval_timestamp_seconds",
                "gauge",
                "End of the newest interval a model's variant recorded (alert on its age).",
            );
            for (labels, end_ms) in &self.last_intervals {
                let _ = writeln!(
                    out,
                    "modelwatch_last_interval_timestamp_seconds{} {}",
                    fmt_labels(labels, None),
                    *end_ms as f64 / 1e3
                );
            }
        }
        if self.newest_end_ms > 0 {
            family(
                &mut out,
                "modelwatch_last_interval_end_timestamp_seconds",
                "gauge",
                "End of the newest interval.",
            );
            let _ = writeln!(
                out,
                "modelwatch_last_interval_end_timestamp_seconds {}",
                self.newest_end_ms as f64 / 1e3
            );
        }
        out
    }
}

/// The exposition labels of a series: the fixed ones, the feature, free tags.
fn labels_of(s: &SeriesKey, extra: &[(&str, &str)]) -> Labels {
    let mut l: Labels = vec![
        ("model".into(), s.model.to_string()),
        ("version".into(), s.version.to_string()),
        ("variant".into(), s.variant.to_string()),
        ("segment".into(), s.segment.to_string()),
    ];
    if !s.feature.is_empty() {
        l.push(("feature".into(), s.feature.to_string()));
    }
    for (k, v) in s.tags.split(',').filter_map(|kv| kv.split_once('=')) {
        let k = sanitize(k);
        let k = if matches!(k.as_str(), "le" | "quantile" | "replica" | "instance" | "job") {
            format!("tag_{k}")
        } else {
            k
        };
        l.push((k, v.to_string()));
    }
    l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l.sort();
    l
}

/// A valid Prometheus name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn sanitize(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    if let Some(le) = le {
        if !labels.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "le=\"{le}\"");
    }
    out.push('}');
    if out == "{}" { String::new() } else { out }
}

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let s = state.clone();
    let body = state
        .blocking(state.deadline(), move |store| {
            let mut e = s.exposition.lock().unwrap_or_else(|p| p.into_inner());
            e.update(store)?;
            Ok(e.render())
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_escaped_for_the_text_format() {
        assert_eq!(sanitize("p95.latency-ms"), "p95_latency_ms");
        assert_eq!(sanitize("9lives"), "_9lives");
        let l = vec![("model".to_string(), "a\"b\\c\nd".to_string())];
        assert_eq!(fmt_labels(&l, Some("0.5")), r#"{model="a\"b\\c\nd",le="0.5"}"#);
        assert_eq!(fmt_labels(&Vec::new(), None), "");
    }
}
