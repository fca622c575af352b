//! The columnar engine: [`run`], [`merged`] and the distribution check of detectors over
//! the store's Arrow columns ([`Store::read_columns`]) instead of per-row structs.
//!
//! Per part (a file, or the rows not yet published), a series is decided once per
//! combination of dictionary keys of the tag columns the query looks at (its filters and
//! its `by` labels), never per row; rows of one series follow each other in a file, so most
//! rows cost a few integer compares. A row's buckets are a slice of two flat arrays, added
//! into a dense array per group and window. Moments merge through
//! [`DistributionRow::merge`] in the order the rows were read, as the row engine
//! ([`crate::engine::run_rows`]) merges them: the two give bit-identical answers, which
//! `query/tests/columnar.rs` checks on random stores.

use crate::engine::{
    Acc, Limits, Merged, Plan, QueryError, Range, Series, check_answer, check_range, needs_buckets,
    plan_reads, push_window, refuse_quantiles, scalar_series, tags_of, window_of,
};
use crate::parse::{Func, Query};
use modelwatch_store::{
    Columns, Common, DistributionColumns, DistributionRow, ReadRequest, Resolution, Scheme, SeriesKey, Store,
    Table, free_tag, tag_column,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Columns read for a query, per request, and the plan saying which resolution answers
/// where.
type Parts = Vec<(ReadRequest, Vec<Arc<Columns>>)>;

/// Reads `table` as columns for the query as its [`Plan`] says (shared with the cache).
fn read(store: &Store, q: &Query, table: Table, range: Range) -> Result<(Parts, Plan), QueryError> {
    plan_reads(q, table, range, |r| {
        let parts = store.read_columns(r)?;
        if r.resolution == Resolution::Raw {
            return Ok((parts, None));
        }
        // How far this roll-up reaches: the end of its last row in the request's span.
        let (lo, hi) = (r.from_ms.max(range.from_ms), r.to_ms.min(range.to_ms));
        // Only a row ending past the furthest so far can move it: that compare first, as
        // most rows (every series after the first) fail it.
        let mut until = i64::MIN;
        for part in &parts {
            let c = part.common();
            for (i, (&start, &end)) in c.start.iter().zip(c.end.iter()).enumerate() {
                if end > until && start >= lo && start < hi && c.resolution(i) == r.resolution {
                    until = end;
                }
            }
        }
        Ok((parts, (until != i64::MIN).then_some(until)))
    })
}

/// The groups of an answer: each distinct list of `by` values, numbered as first seen.
#[derive(Default)]
struct Groups {
    index: HashMap<Vec<String>, u32>,
    keys: Vec<Vec<String>>,
}

impl Groups {
    fn id(&mut self, key: Vec<String>) -> u32 {
        if let Some(&g) = self.index.get(&key) {
            return g;
        }
        let g = self.keys.len() as u32;
        self.keys.push(key.clone());
        self.index.insert(key, g);
        g
    }
}

/// The label of a query as a column: a fixed tag column, or the free tags (`tags`).
fn column_of(label: &str) -> usize {
    tag_column(label).unwrap_or(7)
}

/// A label's value in row `i` of a part, as [`SeriesKey::tag`] gives it.
fn value<'a>(c: &'a Common, i: usize, label: &str) -> Option<&'a str> {
    match tag_column(label) {
        Some(col) => Some(c.tags[col].get(i)),
        None => free_tag(c.tags[7].get(i), label),
    }
}

/// Decides the rows of one part: whether a row's series is kept, and its group. Memoised by
/// the dictionary keys of the columns the query reads, per part.
struct Selector<'a> {
    common: &'a Common,
    columns: Vec<usize>,
    last: Option<([i32; 8], Option<u32>)>,
    seen: HashMap<[i32; 8], Option<u32>>,
}

impl<'a> Selector<'a> {
    fn new(q: &Query, req: &ReadRequest, common: &'a Common) -> Self {
        let mut columns: Vec<usize> = req
            .tags
            .iter()
            .map(|t| column_of(&t.0))
            .chain(q.matchers.iter().map(|m| column_of(&m.label)))
            .chain(q.by.iter().map(|l| column_of(l)))
            .collect();
        columns.sort_unstable();
        columns.dedup();
        Selector { common, columns, last: None, seen: HashMap::new() }
    }

    /// Row `i`'s group, `None` when the request's tags or the matchers leave it out.
    fn group(&mut self, q: &Query, req: &ReadRequest, i: usize, groups: &mut Groups) -> Option<u32> {
        let mut k = [0i32; 8];
        for &c in &self.columns {
            k[c] = self.common.tags[c].keys()[i];
        }
        if let Some((last, g)) = self.last
            && last == k
        {
            return g;
        }
        let common = self.common;
        let g = *self.seen.entry(k).or_insert_with(|| {
            let kept = req.tags.iter().all(|(l, v)| value(common, i, l) == Some(v.as_str()))
                && q.matchers.iter().all(|m| m.matches(value(common, i, &m.label).unwrap_or("")));
            kept.then(|| {
                groups.id(q.by.iter().map(|l| value(common, i, l).unwrap_or("").to_string()).collect())
            })
        });
        self.last = Some((k, g));
        g
    }
}

/// Calls `visit(part, part number, row, group)` on every row of the parts that its request, the query's
/// matchers and `keeps(request, row resolution, start)` keep and that starts inside the
/// range, in the order the parts were read; stops at the caller's deadline.
fn scan(
    parts: &Parts,
    q: &Query,
    range: Range,
    keeps: impl Fn(&ReadRequest, Resolution, i64) -> bool,
    groups: &mut Groups,
    mut visit: impl FnMut(&Columns, u32, usize, u32),
) -> Result<(), QueryError> {
    let mut ticker = crate::cancel::Ticker::new();
    let mut pid = 0u32;
    for (req, cols) in parts {
        let (lo, hi) = (req.from_ms.max(range.from_ms), req.to_ms.min(range.to_ms));
        // Every request names its metric: only that metric's runs of rows are read.
        let metric = req.tags.iter().find(|t| t.0 == "metric").map(|t| t.1.as_str());
        for part in cols {
            let c = part.common();
            let mut sel = Selector::new(q, req, c);
            let ranges: Vec<std::ops::Range<usize>> = match metric {
                Some(m) => c.rows_of_metric(m).collect(),
                None => std::iter::once(0..c.len()).collect(),
            };
            for i in ranges.into_iter().flatten() {
                ticker.tick()?;
                let start = c.start[i];
                if start < lo || start >= hi || !keeps(req, c.resolution(i), start) {
                    continue;
                }
                if let Some(g) = sel.group(q, req, i, groups) {
                    visit(part, pid, i, g);
                }
            }
            pid += 1;
        }
    }
    Ok(())
}

fn scan_planned(
    (parts, plan): &(Parts, Plan),
    q: &Query,
    range: Range,
    groups: &mut Groups,
    visit: impl FnMut(&Columns, u32, usize, u32),
) -> Result<(), QueryError> {
    scan(parts, q, range, |req, res, start| plan.keeps(req.resolution, res, start), groups, visit)
}

/// The parts in the order [`scan`] numbers them.
fn numbered(parts: &Parts) -> Vec<&Columns> {
    parts.iter().flat_map(|(_, cols)| cols.iter().map(|c| &**c)).collect()
}

/// Adds up the buckets of a merge's rows: into one dense array over the keys the query
/// meets (reused from merge to merge; a bit per key says which were touched, so they are
/// read back in ascending order a word of 64 keys at a time, and cleared, without
/// sorting), or by sorting where keys span more than [`DENSE_SPAN`]. Gives what
/// [`DistributionRow::merge_all`] gives: every key seen, ascending, its counts summed.
#[derive(Default)]
struct Adder {
    base: i64,
    counts: Vec<u64>,
    /// Bit `j` of the array: key `base + j` was added in this merge (even with a count of 0,
    /// which a stored bucket can have and the merged list then keeps).
    touched: Vec<u64>,
}

/// The widest key range added densely.
const DENSE_SPAN: i64 = 1 << 16;

/// Buckets added by sorting rather than densely, at most (the dense array's read-back is a
/// walk of its touched bits, so it is cheaper than a sort of more than a few).
const SMALL_MERGE: usize = 16;

impl Adder {
    /// The buckets of `rows` (part number, row) of `parts`, added up into `out`.
    fn add_up(&mut self, parts: &[&Columns], rows: &[(u32, u32)], out: &mut Vec<(i64, u64)>) {
        out.clear();
        let slices = rows.iter().filter_map(|&(p, i)| match parts[p as usize] {
            Columns::Distributions(d) => {
                let r = d.buckets(i as usize);
                Some((&d.bucket_keys[r.clone()], &d.bucket_counts[r]))
            }
            Columns::Scalars(_) => None,
        });
        // A few buckets (a short window): sorting them costs less than the dense array.
        if slices.clone().map(|(k, _)| k.len()).sum::<usize>() <= SMALL_MERGE {
            for (k, c) in slices {
                out.extend(k.iter().copied().zip(c.iter().copied()));
            }
            if !out.is_sorted_by(|a, b| a.0 < b.0) {
                modelwatch_store::sum_buckets(out);
            }
            return;
        }
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (keys, _) in slices.clone() {
            for &k in keys {
                lo = lo.min(k);
                hi = hi.max(k);
            }
        }
        if lo > hi {
            return;
        }
        if hi - lo >= DENSE_SPAN {
            out.extend(slices.flat_map(|(k, c)| k.iter().copied().zip(c.iter().copied())));
            modelwatch_store::sum_buckets(out);
            return;
        }
        self.cover(lo, hi);
        for (keys, counts) in slices {
            for (&k, &n) in keys.iter().zip(counts) {
                let j = (k - self.base) as usize;
                self.touched[j >> 6] |= 1 << (j & 63);
                self.counts[j] += n;
            }
        }
        let (first, last) = ((lo - self.base) as usize >> 6, (hi - self.base) as usize >> 6);
        for w in first..=last {
            let mut word = std::mem::take(&mut self.touched[w]);
            while word != 0 {
                let j = w * 64 + word.trailing_zeros() as usize;
                out.push((self.base + j as i64, std::mem::take(&mut self.counts[j])));
                word &= word - 1;
            }
        }
    }

    /// Makes the dense array span `[lo, hi]` (growing it, with room, when it does not).
    fn cover(&mut self, lo: i64, hi: i64) {
        let end = self.base + self.counts.len() as i64;
        if !self.counts.is_empty() && lo >= self.base && hi < end {
            return;
        }
        // Between merges every count is zero and every bit clear (each is taken when read
        // back), so a new array needs nothing of the old one: the union of both ranges, or
        // these keys alone where the union would be too wide.
        let (mut new_lo, mut new_hi) =
            if self.counts.is_empty() { (lo, hi) } else { (lo.min(self.base), hi.max(end - 1)) };
        if new_hi - new_lo >= 2 * DENSE_SPAN {
            (new_lo, new_hi) = (lo, hi);
        }
        let pad = (new_hi - new_lo + 1).min(DENSE_SPAN);
        let len = (new_hi - new_lo + 1 + pad) as usize;
        (self.base, self.counts, self.touched) = (new_lo - pad / 2, vec![0; len], vec![0; len.div_ceil(64)]);
    }
}

/// One group's merged distribution over a whole range (for [`merged`]): moments merged row
/// by row in read order, the rows kept to add their buckets up at the end.
struct Merge {
    /// The first row's moments merged with the rest (buckets apart).
    row: DistributionRow,
    /// The rows merged, (part number, row).
    rows: Vec<(u32, u32)>,
}

impl Merge {
    fn first(d: &DistributionColumns, pid: u32, i: usize) -> Merge {
        Merge { row: d.row_without_buckets(i, d.common.series(i)), rows: vec![(pid, i as u32)] }
    }

    /// Adds row `i`; rows of another scheme than the first (a metric whose layout changed)
    /// cannot merge and are left out, as the row engine leaves them.
    fn add(&mut self, d: &DistributionColumns, pid: u32, i: usize, scratch: &mut DistributionRow) {
        if d.scheme(i) != self.row.scheme {
            return;
        }
        d.moments_into(i, scratch);
        self.row.merge(scratch);
        self.rows.push((pid, i as u32));
    }

    fn finish(mut self, parts: &[&Columns], adder: &mut Adder) -> DistributionRow {
        adder.add_up(parts, &self.rows, &mut self.row.buckets);
        self.row
    }
}

/// One group's window in [`run`]: its merged moments (all of them for sum and mean, else
/// the count and the extremes, which merge the same in any order).
struct Slot {
    g: u32,
    w: i64,
    moments: Moments,
}

enum Moments {
    Light { scheme: Scheme, count: u64, min: Option<f64>, max: Option<f64> },
    Full(Box<DistributionRow>),
}

impl Slot {
    fn first((g, w): (u32, i64), d: &DistributionColumns, i: usize, full: bool) -> Slot {
        let moments = if full {
            Moments::Full(Box::new(d.row_without_buckets(i, SeriesKey::default())))
        } else {
            Moments::Light { scheme: d.scheme(i), count: d.count[i], min: d.min(i), max: d.max(i) }
        };
        Slot { g, w, moments }
    }

    /// Adds row `i` as [`DistributionRow::merge`] would; `false` (and nothing added) for a
    /// row of another scheme than the first, which cannot merge.
    fn add(&mut self, d: &DistributionColumns, i: usize, scratch: &mut DistributionRow) -> bool {
        match &mut self.moments {
            Moments::Full(row) => {
                if d.scheme(i) != row.scheme {
                    return false;
                }
                d.moments_into(i, scratch);
                row.merge(scratch);
            }
            Moments::Light { scheme, count, min, max } => {
                if d.scheme(i) != *scheme {
                    return false;
                }
                let either = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64| match (a, b) {
                    (Some(a), Some(b)) => Some(f(a, b)),
                    (a, b) => a.or(b),
                };
                if d.count[i] != 0 {
                    *min = either(*min, d.min(i), f64::min);
                    *max = either(*max, d.max(i), f64::max);
                }
                *count += d.count[i];
            }
        }
        true
    }
}

/// The series of [`run_each`] from its windows: per function, per group (ordered by its
/// `by` values), per window in time order, the function of the merged distribution. Each
/// window is merged once whatever the number of functions taken from it.
fn windows_to_series(
    q: &Query,
    funcs: &[Func],
    range: Range,
    parts: &Parts,
    groups: Groups,
    slots: Vec<Slot>,
    rows: Vec<(u32, u32, u32)>,
) -> Result<Vec<Vec<Series>>, QueryError> {
    // The rows of each slot, together (a counting sort by slot).
    let mut starts = vec![0usize; slots.len() + 1];
    for &(m, ..) in &rows {
        starts[m as usize + 1] += 1;
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let mut fill = starts.clone();
    let mut by_slot = vec![(0u32, 0u32); rows.len()];
    for (m, p, i) in rows {
        by_slot[fill[m as usize]] = (p, i);
        fill[m as usize] += 1;
    }
    let mut per_group: Vec<Vec<u32>> = vec![Vec::new(); groups.keys.len()];
    for (m, slot) in slots.iter().enumerate() {
        per_group[slot.g as usize].push(m as u32);
    }
    let mut order: Vec<usize> = (0..groups.keys.len()).collect();
    order.sort_by(|&a, &b| groups.keys[a].cmp(&groups.keys[b]));
    let numbered = numbered(parts);
    let mut adder = Adder::default();
    let mut row = scratch();
    let mut slots: Vec<Option<Slot>> = slots.into_iter().map(Some).collect();
    let mut out: Vec<Vec<Series>> = funcs.iter().map(|_| Vec::with_capacity(order.len())).collect();
    for g in order {
        crate::cancel::check()?;
        let mine = &mut per_group[g];
        mine.sort_by_key(|&m| slots[m as usize].as_ref().map_or(0, |s| s.w));
        let tags = tags_of(q, &groups.keys[g]);
        let mut series: Vec<Series> = funcs
            .iter()
            .map(|_| Series {
                tags: tags.clone(),
                points: Vec::with_capacity(mine.len()),
                buckets: Vec::new(),
            })
            .collect();
        for &m in mine.iter() {
            let Some(slot) = slots[m as usize].take() else { continue };
            let rows = &by_slot[starts[m as usize]..starts[m as usize + 1]];
            // Every slot of an evaluation holds the same kind of moments, so nothing of
            // one window's row is left in the next.
            match slot.moments {
                Moments::Full(full) => {
                    let buckets = std::mem::take(&mut row.buckets);
                    row = DistributionRow { buckets, ..*full };
                }
                Moments::Light { scheme, count, min, max } => {
                    (row.scheme, row.count, row.min, row.max) = (scheme, count, min, max);
                }
            }
            // A mean reads the buckets only where the window has no exact moments.
            let buckets = funcs.iter().any(|f| match f {
                Func::Mean => row.mean.is_none() && row.sum.is_none(),
                f => needs_buckets(f),
            });
            if buckets {
                adder.add_up(&numbered, rows, &mut row.buckets);
            } else {
                row.buckets.clear();
            }
            for (func, s) in funcs.iter().zip(series.iter_mut()) {
                push_window(func, range, s, slot.w, &row);
            }
        }
        for (o, s) in out.iter_mut().zip(series) {
            o.push(s);
        }
    }
    Ok(out)
}

/// A hasher for small integer keys (FxHash's multiply and rotate): the (group, window) map
/// is looked up per row, where SipHash would cost more than the row.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.write_u64(u64::from(b)));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type BuildFx = std::hash::BuildHasherDefault<Fx>;

fn scratch() -> DistributionRow {
    DistributionRow::empty(0, 0, Resolution::Raw, SeriesKey::default(), Scheme::Sketch)
}

/// Whether the query's metric has distribution rows in the range (a latency, confidence,
/// feature or distribution metric), as [`run`] decides; else its rows are scalars.
pub(crate) fn has_distributions(store: &Store, q: &Query, range: Range) -> Result<bool, QueryError> {
    let parts = read(store, q, Table::Distributions, range)?;
    let mut any = false;
    scan_planned(&parts, q, range, &mut Groups::default(), |_, _, _, _| any = true)?;
    Ok(any)
}

/// Runs a parsed query: windows of `step` over `[from, to)`, each part of a window read at
/// the coarsest resolution that fits it, rows filtered by the matchers, grouped by the `by`
/// labels and merged per window exactly (a quantile is the quantile of the merged
/// distribution), then the function.
pub fn run(store: &Store, q: &Query, range: Range, limits: Limits) -> Result<Vec<Series>, QueryError> {
    run_each(store, q, std::slice::from_ref(&q.func), range, limits)?.remove(0)
}

/// [`run`] of `q` with each of `funcs` in its place (`q.func` is ignored), the store read
/// and every window merged once for all of them: a panel's p50, p95 and p99 of one
/// selector cost one evaluation and three walks of the merged buckets. Answer `k` is what
/// [`run`] answers for `funcs[k]`, bit for bit, each checked against `limits` on its own.
/// The outer error is one that [`run`] would give for every function (a bad range, a
/// store failure, the deadline); the inner ones are a function's own (a quantile of a
/// counter, an answer past the limits).
pub fn run_each(
    store: &Store,
    q: &Query,
    funcs: &[Func],
    range: Range,
    limits: Limits,
) -> Result<Vec<Result<Vec<Series>, QueryError>>, QueryError> {
    Ok(match distributions_each(store, q, funcs, range, limits)? {
        Some(answers) => answers.into_iter().map(|a| check_answer(a, limits)).collect(),
        // No distribution rows: the metric is a counter or a gauge (or absent), read
        // per function (a quantile of it is refused, a sum is not).
        None => funcs
            .iter()
            .map(|f| scalars(store, &Query { func: f.clone(), ..q.clone() }, range, limits))
            .collect(),
    })
}

/// The distribution answers of [`run_each`], `None` when the range holds no distribution
/// row of the query's series.
fn distributions_each(
    store: &Store,
    q: &Query,
    funcs: &[Func],
    range: Range,
    limits: Limits,
) -> Result<Option<Vec<Vec<Series>>>, QueryError> {
    check_range(range, limits)?;
    let parts = read(store, q, Table::Distributions, range)?;
    let mut groups = Groups::default();
    let with_buckets = funcs.iter().any(needs_buckets);
    // Sum and mean read the merged moments; the other functions only the count, the
    // extremes and the buckets, which merge the same in any order.
    let full = funcs.iter().any(|f| matches!(f, Func::Sum | Func::Mean));
    // Sized for a group's windows, as most answers have a few groups: fewer rehashes.
    let windows = ((range.to_ms - range.from_ms) / range.step_ms + 1).clamp(0, 1 << 16) as usize;
    let mut index: HashMap<(u32, i64), u32, BuildFx> =
        HashMap::with_capacity_and_hasher(windows, BuildFx::default());
    let mut last: Option<((u32, i64), u32)> = None;
    let mut slots: Vec<Slot> = Vec::with_capacity(windows);
    // (slot, part number, row) of every row merged, for the buckets.
    let mut merged_rows: Vec<(u32, u32, u32)> = Vec::new();
    let mut tmp = scratch();
    scan_planned(&parts, q, range, &mut groups, |part, pid, i, g| {
        let Columns::Distributions(d) = part else { return };
        let key = (g, window_of(d.common.start[i], range));
        let found = match last {
            Some((k, m)) if k == key => Some(m),
            _ => index.get(&key).copied(),
        };
        let m = match found {
            Some(m) => {
                if !slots[m as usize].add(d, i, &mut tmp) {
                    return;
                }
                m
            }
            None => {
                let m = slots.len() as u32;
                slots.push(Slot::first(key, d, i, full));
                index.insert(key, m);
                m
            }
        };
        last = Some((key, m));
        if with_buckets {
            merged_rows.push((m, pid, i as u32));
        }
    })?;
    if slots.is_empty() {
        return Ok(None);
    }
    windows_to_series(q, funcs, range, &parts.0, groups, slots, merged_rows).map(Some)
}

/// A counter's or a gauge's answer (the query's metric has no distribution rows).
fn scalars(store: &Store, q: &Query, range: Range, limits: Limits) -> Result<Vec<Series>, QueryError> {
    let parts = read(store, q, Table::Scalars, range)?;
    let mut groups = Groups::default();
    let mut first = None;
    let mut windows: Vec<BTreeMap<i64, Acc>> = Vec::new();
    scan_planned(&parts, q, range, &mut groups, |part, _, i, g| {
        let Columns::Scalars(s) = part else { return };
        first.get_or_insert(s.kind(i));
        if windows.len() <= g as usize {
            windows.resize_with(g as usize + 1, BTreeMap::new);
        }
        let w = window_of(s.common.start[i], range);
        windows[g as usize].entry(w).or_insert(Acc::EMPTY).add(s.value[i]);
    })?;
    refuse_quantiles(q, first)?;
    let mut by_key: Vec<(Vec<String>, BTreeMap<i64, Acc>)> = groups.keys.into_iter().zip(windows).collect();
    by_key.sort_by(|a, b| a.0.cmp(&b.0));
    check_answer(
        by_key.into_iter().map(|(key, w)| scalar_series(q, range, tags_of(q, &key), w)).collect(),
        limits,
    )
}

/// Every group's distribution merged over the whole of `[from_ms, to_ms)` (one window; the
/// query's function is ignored): what drift and quality reports compare. Each part of the
/// range is read at the coarsest resolution that fits it: whole hours from 1h roll-ups, the
/// minutes at the edges from 1m, the rest (and what is not rolled up yet) raw.
pub fn merged(store: &Store, q: &Query, from_ms: i64, to_ms: i64) -> Result<Vec<Merged>, QueryError> {
    if to_ms <= from_ms {
        return Err(QueryError::BadRange("the end must be after the start".into()));
    }
    let range = Range { from_ms, to_ms, step_ms: to_ms - from_ms };
    let parts = read(store, q, Table::Distributions, range)?;
    let mut groups = Groups::default();
    let mut merges: Vec<Option<Merge>> = Vec::new();
    let mut tmp = scratch();
    scan_planned(&parts, q, range, &mut groups, |part, pid, i, g| {
        let Columns::Distributions(d) = part else { return };
        if merges.len() <= g as usize {
            merges.resize_with(g as usize + 1, || None);
        }
        match &mut merges[g as usize] {
            Some(m) => m.add(d, pid, i, &mut tmp),
            slot => *slot = Some(Merge::first(d, pid, i)),
        }
    })?;
    let numbered = numbered(&parts.0);
    let mut adder = Adder::default();
    let mut out: Vec<(Vec<String>, DistributionRow)> = groups
        .keys
        .into_iter()
        .zip(merges)
        .filter_map(|(key, m)| m.map(|m| (key, m.finish(&numbered, &mut adder))))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(key, d)| (tags_of(q, &key), d)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_store::Rows;

    /// The adder gives every key seen, ascending, its counts summed, whatever keys merge
    /// after which: a few, many in a narrow range, keys a trillion apart, one wide span.
    #[test]
    fn buckets_add_up_as_sorted_pairs_whatever_their_keys() {
        let lists: Vec<Vec<(i64, u64)>> = vec![
            vec![(3, 1), (5, 2)],
            (0..200).map(|k| (k * 3 - 100, 1 + k as u64 % 4)).collect(),
            (0..200).map(|k| (k * 5 - 90, 2)).collect(),
            (0..100).map(|k| (1_000_000_000_000 + k, 1)).collect(),
            vec![(-5, 1), (0, 0), (1 << 40, 3)],
            (0..100).map(|k| (k * 1_000, 1)).collect(),
        ];
        let rows: Vec<DistributionRow> = lists
            .iter()
            .map(|b| DistributionRow {
                buckets: b.clone(),
                count: b.iter().map(|p| p.1).sum(),
                ..DistributionRow::empty(0, 1, Resolution::Raw, SeriesKey::default(), Scheme::Sketch)
            })
            .collect();
        let part = Columns::from_rows(Table::Distributions, &Rows { distributions: rows, ..Rows::default() });
        let part = part.unwrap();
        let parts = [&part];
        let mut adder = Adder::default();
        let mut out = Vec::new();
        // Each merge alone, then pairs of them, then all: against a sort of the pairs.
        let mut merges: Vec<Vec<u32>> = (0..lists.len() as u32).map(|i| vec![i]).collect();
        merges.extend([
            vec![1, 2],
            vec![1, 2, 1],
            vec![0, 3],
            vec![2, 4, 5],
            (0..lists.len() as u32).collect(),
        ]);
        for m in merges {
            let rows: Vec<(u32, u32)> = m.iter().map(|&i| (0, i)).collect();
            adder.add_up(&parts, &rows, &mut out);
            let mut want: Vec<(i64, u64)> = m.iter().flat_map(|&i| lists[i as usize].clone()).collect();
            modelwatch_store::sum_buckets(&mut want);
            assert_eq!(out, want, "merge of {m:?}");
            assert!(adder.counts.len() as i64 <= 4 * DENSE_SPAN, "dense array of {}", adder.counts.len());
            assert!(adder.counts.iter().all(|&c| c == 0) && adder.touched.iter().all(|&w| w == 0));
        }
    }
}
