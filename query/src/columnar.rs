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
    Acc, Limits, Merged, Plan, QueryError, Range, Series, check_answer, check_range, distribution_series,
    needs_buckets, plan_reads, refuse_quantiles, scalar_series, tags_of, window_of,
};
use crate::parse::Query;
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
        // How far this roll-up reaches: the end of its last row the query keeps.
        let read = vec![(r.clone(), parts)];
        let mut until: Option<i64> = None;
        let mut groups = Groups::default();
        scan(
            &read,
            q,
            range,
            |_, row, _| row == r.resolution,
            &mut groups,
            |part, i, _| {
                let end = part.common().end[i];
                until = Some(until.map_or(end, |u| u.max(end)));
            },
        )?;
        Ok((read.into_iter().next().map(|p| p.1).unwrap_or_default(), until))
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

/// Calls `visit(part, row, group)` on every row of the parts that its request, the query's
/// matchers and `keeps(request, row resolution, start)` keep and that starts inside the
/// range, in the order the parts were read; stops at the caller's deadline.
fn scan(
    parts: &Parts,
    q: &Query,
    range: Range,
    keeps: impl Fn(&ReadRequest, Resolution, i64) -> bool,
    groups: &mut Groups,
    mut visit: impl FnMut(&Columns, usize, u32),
) -> Result<(), QueryError> {
    let mut ticker = crate::cancel::Ticker::new();
    for (req, cols) in parts {
        let (lo, hi) = (req.from_ms.max(range.from_ms), req.to_ms.min(range.to_ms));
        for part in cols {
            let c = part.common();
            let mut sel = Selector::new(q, req, c);
            for (i, &start) in c.start.iter().enumerate() {
                ticker.tick()?;
                if start < lo || start >= hi || !keeps(req, c.resolution(i), start) {
                    continue;
                }
                if let Some(g) = sel.group(q, req, i, groups) {
                    visit(part, i, g);
                }
            }
        }
    }
    Ok(())
}

fn scan_planned(
    (parts, plan): &(Parts, Plan),
    q: &Query,
    range: Range,
    groups: &mut Groups,
    visit: impl FnMut(&Columns, usize, u32),
) -> Result<(), QueryError> {
    scan(parts, q, range, |req, res, start| plan.keeps(req.resolution, res, start), groups, visit)
}

/// Buckets added up: dense over the keys seen (a feature's keys span a few hundred), sparse
/// past [`DENSE_SPAN`]. Gives what [`DistributionRow::merge_all`] gives: every key seen,
/// ascending, its counts summed.
enum Buckets {
    Dense { base: i64, counts: Vec<u64>, seen: Vec<bool> },
    Sparse(Vec<(i64, u64)>),
}

/// The widest key range added densely.
const DENSE_SPAN: i64 = 1 << 16;

impl Buckets {
    fn new() -> Self {
        Buckets::Dense { base: 0, counts: Vec::new(), seen: Vec::new() }
    }

    fn add(&mut self, keys: &[i64], counts: &[u64]) {
        let (Some(&lo), Some(&hi)) = (keys.iter().min(), keys.iter().max()) else { return };
        if let Buckets::Dense { base, counts: dense, seen } = self {
            let (old_lo, old_hi) =
                if dense.is_empty() { (lo, hi) } else { (*base, *base + dense.len() as i64 - 1) };
            let (new_lo, new_hi) = (old_lo.min(lo), old_hi.max(hi));
            if new_hi - new_lo < DENSE_SPAN {
                if dense.is_empty() || new_lo < *base || new_hi > old_hi {
                    let len = (new_hi - new_lo + 1) as usize;
                    let shift = if dense.is_empty() { 0 } else { (*base - new_lo) as usize };
                    let mut c = vec![0u64; len];
                    let mut s = vec![false; len];
                    c[shift..shift + dense.len()].copy_from_slice(dense);
                    s[shift..shift + seen.len()].copy_from_slice(seen);
                    (*base, *dense, *seen) = (new_lo, c, s);
                }
                for (&k, &n) in keys.iter().zip(counts) {
                    let j = (k - *base) as usize;
                    dense[j] += n;
                    seen[j] = true;
                }
                return;
            }
            let pairs: Vec<(i64, u64)> =
                (0..dense.len()).filter(|&j| seen[j]).map(|j| (*base + j as i64, dense[j])).collect();
            *self = Buckets::Sparse(pairs);
        }
        if let Buckets::Sparse(pairs) = self {
            pairs.extend(keys.iter().copied().zip(counts.iter().copied()));
        }
    }

    fn finish(self) -> Vec<(i64, u64)> {
        match self {
            Buckets::Dense { base, counts, seen } => {
                (0..counts.len()).filter(|&j| seen[j]).map(|j| (base + j as i64, counts[j])).collect()
            }
            Buckets::Sparse(mut pairs) => {
                pairs.sort_unstable_by_key(|p| p.0);
                pairs.dedup_by(|next, kept| {
                    if next.0 == kept.0 {
                        kept.1 += next.1;
                        true
                    } else {
                        false
                    }
                });
                pairs
            }
        }
    }
}

/// One group's (and window's) merged distribution, built row by row in read order.
struct Merge {
    /// The first row's moments merged with the rest (buckets apart).
    row: DistributionRow,
    buckets: Option<Buckets>,
}

impl Merge {
    fn first(d: &DistributionColumns, i: usize, with_buckets: bool) -> Merge {
        let mut m = Merge {
            row: d.row_without_buckets(i, d.common.series(i)),
            buckets: with_buckets.then(Buckets::new),
        };
        m.add_buckets(d, i);
        m
    }

    /// Adds row `i`; rows of another scheme than the first (a metric whose layout changed)
    /// cannot merge and are left out, as the row engine leaves them.
    fn add(&mut self, d: &DistributionColumns, i: usize, scratch: &mut DistributionRow) {
        if d.scheme(i) != self.row.scheme {
            return;
        }
        d.moments_into(i, scratch);
        self.row.merge(scratch);
        self.add_buckets(d, i);
    }

    fn add_buckets(&mut self, d: &DistributionColumns, i: usize) {
        if let Some(b) = &mut self.buckets {
            let r = d.buckets(i);
            b.add(&d.bucket_keys[r.clone()], &d.bucket_counts[r]);
        }
    }

    fn finish(mut self) -> DistributionRow {
        self.row.buckets = self.buckets.map(Buckets::finish).unwrap_or_default();
        self.row
    }
}

fn scratch() -> DistributionRow {
    DistributionRow::empty(0, 0, Resolution::Raw, SeriesKey::default(), Scheme::Sketch)
}

/// Whether the query's metric has distribution rows in the range (a latency, confidence,
/// feature or distribution metric), as [`run`] decides; else its rows are scalars.
pub(crate) fn has_distributions(store: &Store, q: &Query, range: Range) -> Result<bool, QueryError> {
    let parts = read(store, q, Table::Distributions, range)?;
    let mut any = false;
    scan_planned(&parts, q, range, &mut Groups::default(), |_, _, _| any = true)?;
    Ok(any)
}

/// Runs a parsed query: windows of `step` over `[from, to)`, each part of a window read at
/// the coarsest resolution that fits it, rows filtered by the matchers, grouped by the `by`
/// labels and merged per window exactly (a quantile is the quantile of the merged
/// distribution), then the function.
pub fn run(store: &Store, q: &Query, range: Range, limits: Limits) -> Result<Vec<Series>, QueryError> {
    check_range(range, limits)?;
    let parts = read(store, q, Table::Distributions, range)?;
    let mut groups = Groups::default();
    let with_buckets = needs_buckets(&q.func);
    let mut index: HashMap<(u32, i64), usize> = HashMap::new();
    let mut merges: Vec<(u32, i64, Merge)> = Vec::new();
    let mut tmp = scratch();
    scan_planned(&parts, q, range, &mut groups, |part, i, g| {
        let Columns::Distributions(d) = part else { return };
        let w = window_of(d.common.start[i], range);
        match index.get(&(g, w)) {
            Some(&m) => merges[m].2.add(d, i, &mut tmp),
            None => {
                index.insert((g, w), merges.len());
                merges.push((g, w, Merge::first(d, i, with_buckets)));
            }
        }
    })?;
    let out = if !merges.is_empty() {
        let mut windows: Vec<BTreeMap<i64, DistributionRow>> = vec![BTreeMap::new(); groups.keys.len()];
        for (g, w, m) in merges {
            crate::cancel::check()?;
            windows[g as usize].insert(w, m.finish());
        }
        let mut by_key: Vec<(Vec<String>, BTreeMap<i64, DistributionRow>)> =
            groups.keys.into_iter().zip(windows).collect();
        by_key.sort_by(|a, b| a.0.cmp(&b.0));
        by_key.into_iter().map(|(key, w)| distribution_series(q, range, tags_of(q, &key), w)).collect()
    } else {
        let parts = read(store, q, Table::Scalars, range)?;
        let mut groups = Groups::default();
        let mut first = None;
        let mut windows: Vec<BTreeMap<i64, Acc>> = Vec::new();
        scan_planned(&parts, q, range, &mut groups, |part, i, g| {
            let Columns::Scalars(s) = part else { return };
            first.get_or_insert(s.kind(i));
            if windows.len() <= g as usize {
                windows.resize_with(g as usize + 1, BTreeMap::new);
            }
            let w = window_of(s.common.start[i], range);
            windows[g as usize].entry(w).or_insert(Acc::EMPTY).add(s.value[i]);
        })?;
        refuse_quantiles(q, first)?;
        let mut by_key: Vec<(Vec<String>, BTreeMap<i64, Acc>)> =
            groups.keys.into_iter().zip(windows).collect();
        by_key.sort_by(|a, b| a.0.cmp(&b.0));
        by_key.into_iter().map(|(key, w)| scalar_series(q, range, tags_of(q, &key), w)).collect()
    };
    check_answer(out, limits)
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
    scan_planned(&parts, q, range, &mut groups, |part, i, g| {
        let Columns::Distributions(d) = part else { return };
        if merges.len() <= g as usize {
            merges.resize_with(g as usize + 1, || None);
        }
        match &mut merges[g as usize] {
            Some(m) => m.add(d, i, &mut tmp),
            slot => *slot = Some(Merge::first(d, i, true)),
        }
    })?;
    let mut out: Vec<(Vec<String>, DistributionRow)> =
        groups.keys.into_iter().zip(merges).filter_map(|(key, m)| m.map(|m| (key, m.finish()))).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(key, d)| (tags_of(q, &key), d)).collect())
}
