//! Evaluates a [`Query`] over the store: windows of `step` over `[from, to)`, rows merged
//! per window and group (exactly: distributions merge bucket by bucket), then the function.
//!
//! This file holds what both engines share (the range, limits and answer types, the plan of
//! which resolution answers where, the functions of a merged window) and the row engine,
//! [`run_rows`] and [`merged_rows`], over decoded rows; [`run`] and [`merged`] are the
//! columnar engine's (`columnar.rs`), which answers the same on Arrow columns.

use crate::parse::{Func, Op, Query};
use modelwatch_store::{
    DistributionRow, ReadRequest, Resolution, Rows, ScalarKind, ScalarRow, SeriesKey, Store, StoreError,
    Table,
};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) use crate::columnar::has_distributions;
pub use crate::columnar::{merged, run, run_each};

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
/// start must both be multiples of it. (Distributions and counters read finer rows only
/// where coarser ones do not fit; see `Plan`.)
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
pub(crate) fn window_of(t: i64, range: Range) -> i64 {
    range.from_ms + (t - range.from_ms).div_euclid(range.step_ms) * range.step_ms
}

/// Where each instant of a query's range is read from: the coarsest roll-up whose row fits
/// inside the instant's window (and inside the range) and that is stored there, else raw
/// rows. Roll-ups are exact merges of raw rows by start time, so any such split of a window
/// gives the window's merged distribution exactly: a 7-day window from 14:37 reads 1h rows
/// for its whole hours, 1m rows for the minutes at its edges, raw rows for the seconds at
/// its edges and after the last roll-up.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    range: Range,
    /// The roll-ups read, coarsest first, each with the end of its last row in the range
    /// (past it, nothing is rolled up yet).
    levels: Vec<(Resolution, i64)>,
}

/// The length of a roll-up's rows, ms.
fn slot_ms(res: Resolution) -> i64 {
    res.step_ms().unwrap_or(1)
}

/// Raw spans closer than this are read as one: fewer reads, and the plan drops the rows
/// between them anyway.
const RAW_GAP_MS: i64 = 6 * 3_600_000;

/// Past this many windows the raw rows are read over the whole range rather than per
/// window. Reading them whole is what costs: a week at a 1-minute step (10,080 windows, all
/// of them rolled up) read every raw row of the week, more than the read cache holds, so
/// each request decoded the week's files again (4 s); working the spans out costs a few
/// nanoseconds per window.
const SPAN_WINDOWS: i64 = 1 << 20;

impl Plan {
    /// The resolution whose rows answer for rows starting at `t`.
    pub(crate) fn source(&self, t: i64) -> Resolution {
        let w = window_of(t, self.range);
        let end = w.saturating_add(self.range.step_ms).min(self.range.to_ms);
        for &(res, until) in &self.levels {
            let r = slot_ms(res);
            let s = t.div_euclid(r) * r;
            if s >= w && s.saturating_add(r) <= end.min(until) {
                return res;
            }
        }
        Resolution::Raw
    }

    /// Whether a row of resolution `row` starting at `start`, from a read at resolution
    /// `read`, belongs to the answer: roll-up rows where their resolution answers, raw rows
    /// a roll-up read brought along (not rolled up yet) there too, other raw rows elsewhere.
    pub(crate) fn keeps(&self, read: Resolution, row: Resolution, start: i64) -> bool {
        (row == read || row == Resolution::Raw) && self.source(start) == read
    }

    /// The time spans where rows of `res` can answer, given the coarser roll-ups already
    /// in the plan: where its rows fit a window (raw rows fit anywhere) and no coarser one
    /// answers. A superset: nearby spans are joined, and past [`SPAN_WINDOWS`] windows the
    /// whole range is one span.
    fn spans(&self, res: Resolution) -> Vec<(i64, i64)> {
        let Range { from_ms: from, to_ms: to, step_ms: step } = self.range;
        let windows = (to - from).div_euclid(step) + 1;
        if windows > SPAN_WINDOWS {
            return vec![(from, to)];
        }
        let ceil = |t: i64, r: i64| t.div_euclid(r) * r + if t.rem_euclid(r) == 0 { 0 } else { r };
        let mut spans: Vec<(i64, i64)> = Vec::new();
        let mut push = |a: i64, b: i64| {
            if a >= b {
                return;
            }
            match spans.last_mut() {
                Some(last) if a - last.1 < RAW_GAP_MS => last.1 = last.1.max(b),
                _ => spans.push((a, b)),
            }
        };
        let mut rolled: Vec<(i64, i64)> = Vec::with_capacity(self.levels.len());
        for k in 0..windows {
            let w = from + k * step;
            if w >= to {
                break;
            }
            let end = w.saturating_add(step).min(to);
            let (lo, hi) = match res.step_ms() {
                None => (w, end),
                Some(r) => (ceil(w, r), end.div_euclid(r) * r),
            };
            // What the coarser roll-ups answer in this window, then the rest of [lo, hi).
            rolled.clear();
            rolled.extend(
                self.levels
                    .iter()
                    .map(|&(l, until)| {
                        let r = slot_ms(l);
                        (ceil(w, r), end.min(until).div_euclid(r) * r)
                    })
                    .filter(|(a, b)| a < b),
            );
            rolled.sort_unstable();
            let mut at = lo;
            for &(a, b) in &rolled {
                push(at, a.min(hi));
                at = at.max(b);
            }
            push(at, hi);
        }
        spans
    }
}

/// Rows read for a query: each request with the parts the store answered it with (parts
/// can hold rows outside their request; [`for_each`] keeps the right ones), and the plan
/// that says which resolution answers where.
type Parts = Vec<(ReadRequest, Vec<Arc<Rows>>)>;

/// The roll-ups a query may read, coarsest first. Distributions merge exactly at any split,
/// and so do counters (they add); a gauge keeps its latest value per roll-up and a scalar's
/// mean, min and max count rows, so their other functions read one resolution throughout,
/// the one the windows' start and step fit, as they always did.
pub(crate) fn levels(q: &Query, table: Table, range: Range) -> Vec<Resolution> {
    let exact = table == Table::Distributions || matches!(q.func, Func::Count | Func::Sum | Func::Rate);
    if exact {
        return vec![Resolution::Hour, Resolution::Minute];
    }
    match resolution_for(range.from_ms, range.step_ms) {
        Resolution::Raw => Vec::new(),
        r => vec![r],
    }
}

/// The equality tags a query's reads filter by (the metric and its `=` matchers).
pub(crate) fn eq_tags(q: &Query) -> Vec<(String, String)> {
    std::iter::once(("metric".to_string(), q.metric.clone()))
        .chain(q.matchers.iter().filter(|m| m.op == Op::Eq).map(|m| (m.label.clone(), m.value.clone())))
        .collect()
}

/// The requests a query's plan reads: per roll-up, over the spans where it can answer (with
/// the raw rows not in it yet, [`ReadRequest::unrolled`]), then raw rows over the spans
/// left. `read(request)` reads a request's parts and, for a roll-up, returns the end of
/// its last row starting in the request's span (`None`: no such row), whatever its series:
/// a maintenance pass rolls up every series of its days at once, so that is how far the
/// roll-up reaches; past it, raw rows answer.
pub(crate) fn plan_reads<P>(
    q: &Query,
    table: Table,
    range: Range,
    mut read: impl FnMut(&ReadRequest) -> Result<(P, Option<i64>), QueryError>,
) -> Result<(Vec<(ReadRequest, P)>, Plan), QueryError> {
    let tags = eq_tags(q);
    let req = |res, from, to| ReadRequest {
        table,
        from_ms: from,
        to_ms: to,
        resolution: res,
        tags: tags.clone(),
        unrolled: res != Resolution::Raw,
    };
    let mut plan = Plan { range, levels: Vec::new() };
    let mut out = Vec::new();
    for res in levels(q, table, range) {
        let r = slot_ms(res);
        if range.step_ms < r || range.to_ms - range.from_ms < r {
            continue; // no row of it fits a window
        }
        // Only where this roll-up can answer: a window on the hour reads no minutes.
        let mut until: Option<i64> = None;
        let mut reads = Vec::new();
        for (from, to) in plan.spans(res) {
            let request = req(res, from, to);
            let (parts, u) = read(&request)?;
            until = until.max(u);
            reads.push((request, parts));
        }
        if let Some(until) = until {
            plan.levels.push((res, until));
            out.extend(reads);
        }
    }
    for (from, to) in plan.spans(Resolution::Raw) {
        let request = req(Resolution::Raw, from, to);
        let (parts, _) = read(&request)?;
        out.push((request, parts));
    }
    Ok((out, plan))
}

/// Reads `table` rows for the query as its [`Plan`] says. Nothing is copied: the parts
/// are shared with the store's cache.
fn read(store: &Store, q: &Query, table: Table, range: Range) -> Result<(Parts, Plan), QueryError> {
    plan_reads(q, table, range, |r| {
        let parts = store.read_parts(r)?;
        if r.resolution == Resolution::Raw {
            return Ok((parts, None));
        }
        let (lo, hi) = (r.from_ms.max(range.from_ms), r.to_ms.min(range.to_ms));
        let ends = parts.iter().flat_map(|p| {
            let d = p.distributions.iter().map(|d| (d.resolution, d.start_ms, d.end_ms));
            d.chain(p.scalars.iter().map(|s| (s.resolution, s.start_ms, s.end_ms)))
        });
        let until = ends
            .filter(|&(res, start, _)| res == r.resolution && start >= lo && start < hi)
            .map(|e| e.2)
            .max();
        Ok((parts, until))
    })
}

/// Calls `f` on every distribution and scalar row of the parts that its request, the
/// query's matchers and `keeps(request, row resolution, start)` keep and that starts inside
/// the range; stops at the caller's deadline ([`crate::cancel`]).
fn for_each<'a>(
    parts: &'a Parts,
    q: &Query,
    range: Range,
    keeps: impl Fn(&ReadRequest, Resolution, i64) -> bool,
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
    for (req, rows) in parts {
        let in_range = |res: Resolution, start: i64| {
            start >= req.from_ms.max(range.from_ms)
                && start < req.to_ms.min(range.to_ms)
                && keeps(req, res, start)
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

/// The rows of a query's plan: [`for_each`] with the plan's choice of resolution.
fn for_each_planned<'a>(
    (parts, plan): &'a (Parts, Plan),
    q: &Query,
    range: Range,
    dist: impl FnMut(&'a DistributionRow),
    scalar: impl FnMut(&'a ScalarRow),
) -> Result<(), QueryError> {
    for_each(parts, q, range, |req, res, start| plan.keeps(req.resolution, res, start), dist, scalar)
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

/// A range a query can be evaluated over, within the limits.
pub fn check_range(range: Range, limits: Limits) -> Result<(), QueryError> {
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
    Ok(())
}

/// An answer within the limits, its series in order.
pub(crate) fn check_answer(mut out: Vec<Series>, limits: Limits) -> Result<Vec<Series>, QueryError> {
    check_limits(&out, limits)?;
    out.sort_by(|a, b| a.tags.cmp(&b.tags));
    Ok(out)
}

/// Refuses an answer of more series or points than `limits` allow, as [`run`] refuses
/// one: for a caller that evaluated several functions at once ([`run_each`]) under the
/// limits of the first and spends what each leaves for the next.
pub fn check_limits(out: &[Series], limits: Limits) -> Result<(), QueryError> {
    if out.len() > limits.max_series {
        return Err(QueryError::TooLarge(format!("{} series, at most {}", out.len(), limits.max_series)));
    }
    let points: usize = out.iter().map(|s| s.points.len()).sum();
    if points > limits.max_points {
        return Err(QueryError::TooLarge(format!("{points} points, at most {}", limits.max_points)));
    }
    Ok(())
}

/// Runs a parsed query on the row engine: the store's rows decoded into per-row structs.
/// [`run`](crate::run) (the columnar engine) answers the same; this one stays until the
/// property test that compares them (`query/tests/columnar.rs`) is retired with it.
pub fn run_rows(store: &Store, q: &Query, range: Range, limits: Limits) -> Result<Vec<Series>, QueryError> {
    check_range(range, limits)?;
    let parts = read(store, q, Table::Distributions, range)?;
    let mut rows: Vec<&DistributionRow> = Vec::new();
    for_each_planned(&parts, q, range, |r| rows.push(r), |_| {})?;
    let out = if !rows.is_empty() {
        distributions(q, range, &rows)?
    } else {
        let parts = read(store, q, Table::Scalars, range)?;
        let mut rows: Vec<&ScalarRow> = Vec::new();
        for_each_planned(&parts, q, range, |_| {}, |r| rows.push(r))?;
        scalars(q, range, &rows)?
    };
    check_answer(out, limits)
}

/// A group's tags and its distribution merged over a range.
pub type Merged = (BTreeMap<String, String>, DistributionRow);

/// [`merged`](crate::merged) on the row engine (see [`run_rows`]).
pub fn merged_rows(store: &Store, q: &Query, from_ms: i64, to_ms: i64) -> Result<Vec<Merged>, QueryError> {
    if to_ms <= from_ms {
        return Err(QueryError::BadRange("the end must be after the start".into()));
    }
    let range = Range { from_ms, to_ms, step_ms: to_ms - from_ms };
    let parts = read(store, q, Table::Distributions, range)?;
    let mut groups: BTreeMap<Vec<&str>, Vec<&DistributionRow>> = BTreeMap::new();
    for_each_planned(
        &parts,
        q,
        range,
        |r| groups.entry(group_key(q, &r.series)).or_default().push(r),
        |_| {},
    )?;
    Ok(groups
        .into_iter()
        .filter_map(|(key, mut rows)| {
            let scheme = rows[0].scheme;
            rows.retain(|r| r.scheme == scheme);
            DistributionRow::merge_all(&rows).map(|d| (tags_of(q, &key), d))
        })
        .collect())
}

pub(crate) fn tags_of<S: AsRef<str>>(q: &Query, key: &[S]) -> BTreeMap<String, String> {
    q.by.iter().cloned().zip(key.iter().map(|v| v.as_ref().to_string())).collect()
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
    // Stable: rows merge in the order they were read, as the columnar engine merges them.
    keyed.sort_by_key(|k| (k.0, k.1));
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
    Ok(groups
        .into_iter()
        .map(|(key, windows)| distribution_series(q, range, tags_of(q, &key), windows))
        .collect())
}

/// A group's series from its merged distribution per window: the query's function of each.
pub(crate) fn distribution_series(
    q: &Query,
    range: Range,
    tags: BTreeMap<String, String>,
    windows: impl IntoIterator<Item = (i64, DistributionRow)>,
) -> Series {
    let mut s = Series { tags, points: Vec::new(), buckets: Vec::new() };
    for (w, d) in windows {
        push_window(&q.func, range, &mut s, w, &d);
    }
    s
}

/// Adds window `w`'s point (and, for `buckets(...)`, its buckets) to a series: the query's
/// function of the window's merged distribution.
pub(crate) fn push_window(func: &Func, range: Range, s: &mut Series, w: i64, d: &DistributionRow) {
    let secs = range.step_ms as f64 / 1e3;
    let v = match *func {
        Func::Count => Some(d.count as f64),
        Func::Rate => Some(d.count as f64 / secs),
        Func::Sum => d.sum,
        Func::Mean => d.mean.or_else(|| d.sum.map(|x| x / d.count.max(1) as f64)).or_else(|| d.bucket_mean()),
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

/// Whether a function reads a merged distribution's buckets (a mean does where the rows
/// have no exact moments, as confidence rows).
pub(crate) fn needs_buckets(func: &Func) -> bool {
    matches!(func, Func::Quantile(_) | Func::Buckets | Func::Mean)
}

/// A scalar query's refusal of a function that needs a distribution, by its first row's
/// kind.
pub(crate) fn refuse_quantiles(q: &Query, first: Option<ScalarKind>) -> Result<(), QueryError> {
    match first {
        Some(kind) if matches!(q.func, Func::Quantile(_) | Func::Buckets) => {
            Err(QueryError::NotADistribution {
                function: format!("{:?}", q.func).to_lowercase(),
                metric: q.metric.clone(),
                kind: if kind == ScalarKind::Gauge { "gauge" } else { "counter" },
            })
        }
        _ => Ok(()),
    }
}

/// Per group and window of scalar rows: their sum, their number, min and max.
#[derive(Clone, Copy)]
pub(crate) struct Acc {
    sum: f64,
    n: u64,
    min: f64,
    max: f64,
}

impl Acc {
    /// Nothing added yet.
    pub(crate) const EMPTY: Acc = Acc { sum: 0.0, n: 0, min: f64::INFINITY, max: f64::NEG_INFINITY };

    /// Adds a row's value.
    pub(crate) fn add(&mut self, v: f64) {
        self.sum += v;
        self.n += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// A group's series from its scalar windows.
pub(crate) fn scalar_series(
    q: &Query,
    range: Range,
    tags: BTreeMap<String, String>,
    windows: impl IntoIterator<Item = (i64, Acc)>,
) -> Series {
    let secs = range.step_ms as f64 / 1e3;
    Series {
        tags,
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
    }
}

fn scalars(q: &Query, range: Range, rows: &[&ScalarRow]) -> Result<Vec<Series>, QueryError> {
    refuse_quantiles(q, rows.first().map(|r| r.kind))?;
    let mut groups: BTreeMap<Vec<&str>, BTreeMap<i64, Acc>> = BTreeMap::new();
    for r in rows {
        let w = window_of(r.start_ms, range);
        groups.entry(group_key(q, &r.series)).or_default().entry(w).or_insert(Acc::EMPTY).add(r.value);
    }
    Ok(groups.into_iter().map(|(key, windows)| scalar_series(q, range, tags_of(q, &key), windows)).collect())
}
