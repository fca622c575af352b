//! Evaluates a [`Query`] over the store: windows of `step` over `[from, to)`, rows merged
//! per window and group (exactly: distributions merge bucket by bucket), then the function.

use crate::parse::{Func, Op, Query};
use modelwatch_store::{
    DistributionRow, ReadRequest, Resolution, Rows, ScalarKind, ScalarRow, SeriesKey, Store, StoreError,
    Table,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The time range of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Start (inclusive), ms since the Unix epoch.
    pub from_ms: i64,
    /// End (exclusive), ms.
    pub to_ms: i64,
    /// Window length, ms (> 0).
    pub step_ms: i64,
}

/// Bounds on what one query may cost.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most series in an answer.
    pub max_series: usize,
    /// Most points (series × windows).
    pub max_points: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_series: 10_000, max_points: 2_000_000 }
    }
}

/// One bucket of a merged distribution, for heatmaps.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Lower bound (inclusive).
    pub lower: f64,
    /// Upper bound (exclusive).
    pub upper: f64,
    /// Values in the bucket.
    pub count: u64,
}

/// One answer series: its group's tags and a value per window that has data.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The `by` labels and their values (empty when nothing was grouped).
    pub tags: BTreeMap<String, String>,
    /// `(window start ms, value)`.
    pub points: Vec<(i64, f64)>,
    /// For `buckets(...)`: the distribution of each window, aligned with `points` (whose
    /// value is then the window's count).
    pub buckets: Vec<Vec<Bucket>>,
}

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The function does not apply to the metric's kind.
    #[error("{function} needs a distribution, and {metric} is a {kind}")]
    NotADistribution {
        /// The function.
        function: String,
        /// The metric.
        metric: String,
        /// Counter or gauge.
        kind: &'static str,
    },
    /// The range is empty or the step is not positive.
    #[error("bad range: {0}")]
    BadRange(String),
    /// The answer would exceed a limit.
    #[error("the query is too large: {0}; narrow the range, raise the step or filter more")]
    TooLarge(String),
    /// The caller's deadline passed during evaluation ([`crate::cancel`]).
    #[error("the evaluation was stopped at the caller's time limit")]
    Cancelled,
    /// The query does not fit its use (a grouped query for a detector, which watches one
    /// series).
    #[error("{0}")]
    Unsupported(String),
}

/// The coarsest stored resolution whose rows fit inside every window: the step and the
/// start must both be multiples of it.
pub fn resolution_for(from_ms: i64, step_ms: i64) -> Resolution {
    let fits = |r: i64| step_ms % r == 0 && from_ms.rem_euclid(r) == 0;
    if fits(3_600_000) {
        Resolution::Hour
    } else if fits(60_000) {
        Resolution::Minute
    } else {
        Resolution::Raw
    }
}

/// Windows start at `from` and follow each other every `step` (as Prometheus evaluates a
/// range query at `start + k * step`).
fn window_of(t: i64, range: Range) -> i64 {
    range.from_ms + (t - range.from_ms).div_euclid(range.step_ms) * range.step_ms
}

/// Rows read for a query: each request with the parts the store answered it with (parts
/// can hold rows outside their request; [`for_each`] keeps the right ones), and the time
/// before which the raw rows a roll-up request brought along belong to the answer.
type Parts = Vec<(ReadRequest, Vec<Arc<Rows>>, i64)>;

/// Reads `table` rows for the query: the chosen roll-up where it exists, raw rows after it.
/// Nothing is copied: the parts are shared with the store's cache.
fn read(store: &Store, q: &Query, table: Table, range: Range) -> Result<Parts, QueryError> {
    let eq_tags: Vec<(String, String)> = std::iter::once(("metric".to_string(), q.metric.clone()))
        .chain(q.matchers.iter().filter(|m| m.op == Op::Eq).map(|m| (m.label.clone(), m.value.clone())))
        .collect();
    let req = |res, from, to| ReadRequest {
        table,
        from_ms: from,
        to_ms: to,
        resolution: res,
        tags: eq_tags.clone(),
        unrolled: res != Resolution::Raw,
    };
    let from = range.from_ms;
    let res = resolution_for(range.from_ms, range.step_ms);
    let mut out = Vec::new();
    let mut covered = from;
    if res != Resolution::Raw {
        // The roll-ups, with the raw rows not in them yet (a late label for last week's
        // predictions): before the last rolled-up window those complete the roll-ups; after
        // it, every raw row is read apart below.
        let r = req(res, from, range.to_ms);
        let parts = store.read_parts(&r)?;
        let read = vec![(r, parts, i64::MIN)];
        let covered_by = std::cell::Cell::new(covered);
        let seen = |r: Resolution, end: i64| {
            if r != Resolution::Raw {
                covered_by.set(covered_by.get().max(end))
            }
        };
        for_each(&read, q, range, |d| seen(d.resolution, d.end_ms), |s| seen(s.resolution, s.end_ms))?;
        covered = covered_by.get();
        out.extend(read.into_iter().map(|(r, p, _)| (r, p, covered)));
    }
    if covered < range.to_ms {
        let r = req(Resolution::Raw, covered, range.to_ms);
        let parts = store.read_parts(&r)?;
        out.push((r, parts, i64::MIN));
    }
    Ok(out)
}

/// Calls `f` on every distribution and scalar row of the parts that its request and the
/// query's matchers keep and that starts inside the range; stops at the caller's deadline
/// ([`crate::cancel`]).
fn for_each<'a>(
    parts: &'a Parts,
    q: &Query,
    range: Range,
    mut dist: impl FnMut(&'a DistributionRow),
    mut scalar: impl FnMut(&'a ScalarRow),
) -> Result<(), QueryError> {
    let mut ticker = crate::cancel::Ticker::new();
    // The tag checks are the per-row cost; rows of one series follow each other (files sort
    // by series) and share their tag strings, so one decision serves a run of rows.
    let series_ok = |req: &ReadRequest, s: &SeriesKey| {
        req.tags.iter().all(|(k, v)| s.tag(k) == Some(v.as_str()))
            && q.matchers.iter().all(|m| m.matches(s.tag(&m.label).unwrap_or("")))
    };
    for (req, rows, raw_before) in parts {
        let in_range = |res: modelwatch_store::Resolution, start: i64| {
            (res == req.resolution || (res == Resolution::Raw && start < *raw_before))
                && start >= req.from_ms.max(range.from_ms)
                && start < req.to_ms.min(range.to_ms)
        };
        for p in rows {
            let mut memo: Option<(&SeriesKey, bool)> = None;
            let mut keep = |s: &'a SeriesKey| match memo {
                Some((last, ok)) if same_series(last, s) => ok,
                _ => {
                    let ok = series_ok(req, s);
                    memo = Some((s, ok));
                    ok
                }
            };
            // A request reads one table: one of the two loops runs.
            if req.table == Table::Distributions {
                for r in &p.distributions {
                    ticker.tick()?;
                    if in_range(r.resolution, r.start_ms) && keep(&r.series) {
                        dist(r);
                    }
                }
            }
            if req.table == Table::Scalars {
                for r in &p.scalars {
                    ticker.tick()?;
                    if in_range(r.resolution, r.start_ms) && keep(&r.series) {
                        scalar(r);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The same series by identity of its tag strings (rows decoded together share them): a
/// few pointer compares instead of eight string compares. `false` only costs a recheck.
fn same_series(a: &SeriesKey, b: &SeriesKey) -> bool {
    Arc::ptr_eq(&a.metric, &b.metric)
        && Arc::ptr_eq(&a.feature, &b.feature)
        && Arc::ptr_eq(&a.model, &b.model)
        && Arc::ptr_eq(&a.variant, &b.variant)
        && Arc::ptr_eq(&a.version, &b.version)
        && Arc::ptr_eq(&a.segment, &b.segment)
        && Arc::ptr_eq(&a.instance, &b.instance)
        && Arc::ptr_eq(&a.tags, &b.tags)
}

fn group_key<'a>(q: &Query, s: &'a modelwatch_store::SeriesKey) -> Vec<&'a str> {
    q.by.iter().map(|l| s.tag(l).unwrap_or("")).collect()
}

/// Whether the query's metric has distribution rows in the range (a latency, confidence,
/// feature or distribution metric), as [`run`] decides; else its rows are scalars.
pub(crate) fn has_distributions(store: &Store, q: &Query, range: Range) -> Result<bool, QueryError> {
    let parts = read(store, q, Table::Distributions, range)?;
    let mut any = false;
    for_each(&parts, q, range, |_| any = true, |_| {})?;
    Ok(any)
}

/// Runs a parsed query.
pub fn run(store: &Store, q: &Query, range: Range, limits: Limits) -> Result<Vec<Series>, QueryError> {
    if range.step_ms <= 0 {
        return Err(QueryError::BadRange(format!("step must be positive, got {} ms", range.step_ms)));
    }
    if range.to_ms <= range.from_ms {
        return Err(QueryError::BadRange("the end must be after the start".into()));
    }
    let windows = ((range.to_ms - range.from_ms) / range.step_ms + 1) as usize;
    if windows > limits.max_points {
        return Err(QueryError::TooLarge(format!("{windows} windows, at most {}", limits.max_points)));
    }
    let parts = read(store, q, Table::Distributions, range)?;
    let mut rows: Vec<&DistributionRow> = Vec::new();
    for_each(&parts, q, range, |r| rows.push(r), |_| {})?;
    let mut out = if !rows.is_empty() {
        distributions(q, range, &rows)?
    } else {
        let parts = read(store, q, Table::Scalars, range)?;
        let mut rows: Vec<&ScalarRow> = Vec::new();
        for_each(&parts, q, range, |_| {}, |r| rows.push(r))?;
        scalars(q, range, &rows)?
    };
    if out.len() > limits.max_series {
        return Err(QueryError::TooLarge(format!("{} series, at most {}", out.len(), limits.max_series)));
    }
    let points: usize = out.iter().map(|s| s.points.len()).sum();
    if points > limits.max_points {
        return Err(QueryError::TooLarge(format!("{points} points, at most {}", limits.max_points)));
    }
    out.sort_by(|a, b| a.tags.cmp(&b.tags));
    Ok(out)
}

/// A group's tags and its distribution merged over a range.
pub type Merged = (BTreeMap<String, String>, DistributionRow);

/// Every group's distribution merged over the whole of `[from_ms, to_ms)` (one window; the
/// query's function is ignored): what drift and quality reports compare. Reads the coarsest
/// resolution that fits the range's start and length.
pub fn merged(store: &Store, q: &Query, from_ms: i64, to_ms: i64) -> Result<Vec<Merged>, QueryError> {
    if to_ms <= from_ms {
        return Err(QueryError::BadRange("the end must be after the start".into()));
    }
    let range = Range { from_ms, to_ms, step_ms: to_ms - from_ms };
    let parts = read(store, q, Table::Distributions, range)?;
    let mut groups: BTreeMap<Vec<&str>, Vec<&DistributionRow>> = BTreeMap::new();
    for_each(&parts, q, range, |r| groups.entry(group_key(q, &r.series)).or_default().push(r), |_| {})?;
    Ok(groups
        .into_iter()
        .filter_map(|(key, mut rows)| {
            let scheme = rows[0].scheme;
            rows.retain(|r| r.scheme == scheme);
            DistributionRow::merge_all(&rows).map(|d| (tags_of(q, &key), d))
        })
        .collect())
}

fn tags_of(q: &Query, key: &[&str]) -> BTreeMap<String, String> {
    q.by.iter().cloned().zip(key.iter().map(|v| v.to_string())).collect()
}

fn distributions(q: &Query, range: Range, rows: &[&DistributionRow]) -> Result<Vec<Series>, QueryError> {
    // Group index per row (looked up once per run of one series), then one sort by group
    // and window instead of a map entry per row.
    let mut index: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
    let mut keyed: Vec<(usize, i64, &DistributionRow)> = Vec::with_capacity(rows.len());
    let mut last: Option<(&SeriesKey, usize)> = None;
    for &r in rows {
        let g = match last {
            Some((s, g)) if same_series(s, &r.series) => g,
            _ => {
                let n = index.len();
                let g = *index.entry(group_key(q, &r.series)).or_insert(n);
                last = Some((&r.series, g));
                g
            }
        };
        keyed.push((g, window_of(r.start_ms, range), r));
    }
    keyed.sort_unstable_by_key(|k| (k.0, k.1));
    let mut keys: Vec<Vec<&str>> = vec![Vec::new(); index.len()];
    for (k, g) in index {
        keys[g] = k;
    }
    let mut merged: Vec<BTreeMap<i64, DistributionRow>> = vec![BTreeMap::new(); keys.len()];
    for chunk in keyed.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        crate::cancel::check()?;
        let (g, w) = (chunk[0].0, chunk[0].1);
        // Rows of another scheme than the first (a metric whose layout changed) cannot
        // merge and are left out.
        let scheme = chunk[0].2.scheme;
        let same: Vec<&DistributionRow> = chunk.iter().map(|k| k.2).filter(|r| r.scheme == scheme).collect();
        if let Some(d) = DistributionRow::merge_all(&same) {
            merged[g].insert(w, d);
        }
    }
    let mut groups: Vec<(Vec<&str>, BTreeMap<i64, DistributionRow>)> = keys.into_iter().zip(merged).collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let groups = groups.into_iter();
    let secs = range.step_ms as f64 / 1e3;
    Ok(groups
        .map(|(key, windows)| {
            let mut s = Series { tags: tags_of(q, &key), points: Vec::new(), buckets: Vec::new() };
            for (w, d) in windows {
                let v = match q.func {
                    Func::Count => Some(d.count as f64),
                    Func::Rate => Some(d.count as f64 / secs),
                    Func::Sum => d.sum,
                    Func::Mean => d
                        .mean
                        .or_else(|| d.sum.map(|x| x / d.count.max(1) as f64))
                        .or_else(|| d.bucket_mean()),
                    Func::Min => d.min,
                    Func::Max => d.max,
                    Func::Quantile(p) => d.quantile(p),
                    Func::Buckets => {
                        s.buckets.push(
                            d.buckets
                                .iter()
                                .map(|&(k, count)| {
                                    let (lower, upper) = d.scheme.bounds(k);
                                    Bucket { lower, upper, count }
                                })
                                .collect(),
                        );
                        Some(d.count as f64)
                    }
                };
                if let Some(v) = v {
                    s.points.push((w, v));
                }
            }
            s
        })
        .collect())
}

fn scalars(q: &Query, range: Range, rows: &[&ScalarRow]) -> Result<Vec<Series>, QueryError> {
    if let Some(r) = rows.first()
        && matches!(q.func, Func::Quantile(_) | Func::Buckets)
    {
        return Err(QueryError::NotADistribution {
            function: format!("{:?}", q.func).to_lowercase(),
            metric: q.metric.clone(),
            kind: if r.kind == ScalarKind::Gauge { "gauge" } else { "counter" },
        });
    }
    // Per group and window: sum, count of rows, min, max, and the latest gauge value.
    #[derive(Clone, Copy)]
    struct Acc {
        sum: f64,
        n: u64,
        min: f64,
        max: f64,
    }
    let mut groups: BTreeMap<Vec<&str>, BTreeMap<i64, Acc>> = BTreeMap::new();
    for r in rows {
        let w = window_of(r.start_ms, range);
        let a = groups.entry(group_key(q, &r.series)).or_default().entry(w).or_insert(Acc {
            sum: 0.0,
            n: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        });
        a.sum += r.value;
        a.n += 1;
        a.min = a.min.min(r.value);
        a.max = a.max.max(r.value);
    }
    let secs = range.step_ms as f64 / 1e3;
    Ok(groups
        .into_iter()
        .map(|(key, windows)| Series {
            tags: tags_of(q, &key),
            points: windows
                .into_iter()
                .map(|(w, a)| {
                    let v = match q.func {
                        Func::Count | Func::Sum => a.sum,
                        Func::Rate => a.sum / secs,
                        Func::Mean => a.sum / a.n as f64,
                        Func::Min => a.min,
                        Func::Max => a.max,
                        Func::Quantile(_) | Func::Buckets => f64::NAN,
                    };
                    (w, v)
                })
                .collect(),
            buckets: Vec::new(),
        })
        .collect())
}
