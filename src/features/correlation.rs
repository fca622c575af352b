//! Pearson and Spearman correlation between a version's features on its training rows,
//! stored with the version (`correlation` in its `version.json`) for the pruning report.
//!
//! The figures are those of pandas' `DataFrame.corr(method="pearson" | "spearman")`:
//!
//! - **Missing values are dropped pairwise.** A value that is NaN or ±infinite is missing
//!   (pandas masks with `np.isfinite` too); each pair of features is correlated over the
//!   rows where both are present, and Spearman ranks those rows afresh for that pair.
//! - **Ties** take the average of the ranks they span (`rank(method="average")`).
//! - **Undefined is null:** a pair with fewer than two common rows, or in which either
//!   feature has no spread over those rows (every value equal, compared exactly), has no
//!   correlation; nor has the diagonal of such a feature (pandas answers NaN for both).
//! - **No overflow:** each column is scaled by a power of two (exact) to magnitudes of at most 2
//!   and centred before anything is summed, so values of 1e300 correlate as values of 1 do.
//!   pandas sums the raw squares and overflows there (it answers 0 and NaN); scipy's
//!   `pearsonr` does not. `tests/features.rs` checks both.
//! - **No lost spread:** the centring is done twice (see `center`), so a column whose
//!   spread is tiny next to its size (1e9 + 1e-6·noise) correlates as its noise does, to
//!   the exact figure of its doubles; pandas loses it there (off in the second decimal).
//!
//! # Cost, and the row sample
//!
//! Pairs of features without missing values are one matrix product of the standardised
//! columns (ndarray's, cache-blocked, the upper triangle in blocks over the cores): about
//! 0.5 ns a pair and row for both methods. A pair with missing values is a pass over its
//! rows for Pearson and a few for Spearman (ranks within the pair's rows, read off each
//! column's sorted order), pairs spread over the cores: about 12 ns a pair and row
//! ([`MISSING_PAIR_COST`] times as much). The work grows as rows × features², so past
//! [`PAIR_ROW_BUDGET`] a version is correlated on a seeded uniform sample of its rows, never
//! fewer than [`MIN_SAMPLE`]; the sample is recorded with the matrix (`rows`,
//! `training_rows`, `sample_seed`). Above [`MAX_FEATURES`] features no matrix is computed
//! (its stored size alone would be tens of megabytes): the record says so.
//!
//! Measured on 20,000 training rows, a quarter of the columns with 1 % of their values
//! missing (release build, 2 cores; `cargo bench --bench importance -- correlation`,
//! BENCHMARKS.md): 16 features take 0.035 s; 100 features 0.4 s; 1,000 features 31 s on
//! every row, so they are correlated on a sample of 1,000 rows, in 1.6 s (2.7 s of CPU).
//! 1,000 features without missing values take 2.8 s on every row and 0.9 s on their sample
//! of 4,004. pandas' `DataFrame.corr` (both methods) takes 7 to 32 times as long on the
//! same rows.
//!
//! Stored figures are rounded to six decimals; with both methods a 1,000-feature version's
//! `version.json` is still about 17 MB (measured on a registry of 1,000 features).

use crate::demo::Rng;
use modelwatch_store::examples::ExampleSet;
use serde::{Deserialize, Serialize};

/// The most work a matrix may take, in pair-rows: a pair of complete columns over one row
/// costs 1 (a step of the matrix product, for both methods), a pair with missing values
/// [`MISSING_PAIR_COST`]. Past it, a seeded sample of rows.
pub const PAIR_ROW_BUDGET: u64 = 2_000_000_000;
/// What a pair with missing values costs per row against a pair of complete columns:
/// measured, about 12 ns for both methods against 0.5 ns (`cargo bench --bench importance
/// -- correlation`).
pub const MISSING_PAIR_COST: u64 = 25;
/// The fewest rows a sample has (unless the version has fewer): the standard error of a
/// correlation near 0.95 is then about 0.003, and near 0 about 0.03.
pub const MIN_SAMPLE: usize = 1_000;
/// Past this many features no matrix is computed.
pub const MAX_FEATURES: usize = 1_000;
/// The seed of the row sample.
pub const SAMPLE_SEED: u64 = 0x636f_7272;

/// Which correlation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Linear (product-moment) correlation of the values.
    Pearson,
    /// Pearson correlation of the ranks.
    Spearman,
}

/// The correlation matrices of one version's training rows, as stored with it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// The features, in the version's order.
    pub features: Vec<String>,
    /// The rows correlated: every training row, or a seeded sample of them.
    pub rows: u64,
    /// The version's training rows.
    pub training_rows: u64,
    /// The seed of the row sample; `null` when every row was used.
    pub sample_seed: Option<u64>,
    /// How missing (NaN, ±infinite) values were treated: `pairwise`.
    pub missing: String,
    /// Why no matrix was computed (too many features); the matrices are then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Pearson's r of each pair `i < j`, the upper triangle row by row (`(0,1), (0,2), …,
    /// (1,2), …`), rounded to six decimals; `null` where undefined.
    pub pearson: Vec<Option<f64>>,
    /// Spearman's ρ, laid out as `pearson`.
    pub spearman: Vec<Option<f64>>,
    /// For each feature, whether it has spread (the diagonal: 1, else `null`).
    pub spread: Vec<bool>,
}

impl Correlation {
    /// The full square matrix of `method`, row-major: the diagonal 1 for a feature with
    /// spread, `null` otherwise.
    pub fn matrix(&self, method: Method) -> Vec<Vec<Option<f64>>> {
        let d = self.features.len();
        if self.skipped.is_some() {
            return vec![vec![None; d]; d];
        }
        let tri = match method {
            Method::Pearson => &self.pearson,
            Method::Spearman => &self.spearman,
        };
        (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| match i.cmp(&j) {
                        std::cmp::Ordering::Equal => {
                            self.spread.get(i).copied().unwrap_or(false).then_some(1.0)
                        }
                        _ => tri.get(tri_index(d, i.min(j), i.max(j))).copied().flatten(),
                    })
                    .collect()
            })
            .collect()
    }

    /// The correlation of features `i` and `j` (`i != j`) by `method`.
    pub fn get(&self, method: Method, i: usize, j: usize) -> Option<f64> {
        let d = self.features.len();
        let (i, j) = (i.min(j), i.max(j));
        if i == j || j >= d {
            return None;
        }
        let tri = match method {
            Method::Pearson => &self.pearson,
            Method::Spearman => &self.spearman,
        };
        tri.get(tri_index(d, i, j)).copied().flatten()
    }
}

/// Where pair `i < j` sits in the upper triangle of a `d`-square matrix, row by row.
fn tri_index(d: usize, i: usize, j: usize) -> usize {
    i * (2 * d - i - 1) / 2 + (j - i - 1)
}

/// The rows correlated out of `n` rows of `d` features, `missing` of which have missing
/// values: every one while the work is within [`PAIR_ROW_BUDGET`], else as many as it
/// allows but at least [`MIN_SAMPLE`].
pub fn sample_size(n: usize, d: usize, missing: usize) -> usize {
    let (d, k) = (d as u64, missing.min(d) as u64);
    let complete_pairs = (d - k) * (d - k).saturating_sub(1) / 2;
    let missing_pairs = k * k.saturating_sub(1) / 2 + k * (d - k);
    let per_row = (complete_pairs + MISSING_PAIR_COST * missing_pairs).max(1);
    let allowed = usize::try_from(PAIR_ROW_BUDGET / per_row).unwrap_or(usize::MAX).max(MIN_SAMPLE);
    n.min(allowed)
}

/// The correlation of `set`'s features over its rows (a seeded sample of them when there
/// are many features: see the module docs).
pub fn correlation(set: &ExampleSet) -> Correlation {
    let d = set.features.len();
    let n = set.rows.len();
    let mut out = Correlation {
        features: set.features.clone(),
        training_rows: n as u64,
        missing: "pairwise".into(),
        ..Correlation::default()
    };
    if d > MAX_FEATURES {
        out.skipped = Some(format!("{d} features: correlation is computed for at most {MAX_FEATURES}"));
        return out;
    }
    let missing = (0..d)
        .filter(|&j| set.rows.iter().any(|e| !e.features.get(j).is_some_and(|v| v.is_finite())))
        .count();
    let rows = sample(n, sample_size(n, d, missing), SAMPLE_SEED);
    out.sample_seed = (rows.len() < n).then_some(SAMPLE_SEED);
    out.rows = rows.len() as u64;
    let columns: Vec<Vec<f64>> = (0..d)
        .map(|j| rows.iter().map(|&r| set.rows[r].features.get(j).copied().unwrap_or(f64::NAN)).collect())
        .collect();
    let (pearson, spread) = matrix(&columns, Method::Pearson);
    let (spearman, _) = matrix(&columns, Method::Spearman);
    let round = |v: Vec<Option<f64>>| v.into_iter().map(|r| r.map(round6)).collect();
    out.pearson = round(pearson);
    out.spearman = round(spearman);
    out.spread = spread;
    out
}

/// Six decimals: what is stored.
fn round6(r: f64) -> f64 {
    (r * 1e6).round() / 1e6
}

/// `k` of the indices `0..n`, sorted: all of them when `k >= n`, else a seeded uniform
/// choice (a partial Fisher–Yates shuffle).
fn sample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if k >= n {
        return idx;
    }
    let mut rng = Rng::seeded(seed);
    for i in 0..k {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

/// One column made ready: its values scaled and centred (Pearson) or its ranks centred
/// (Spearman), NaN where missing; unit-norm copies for the matrix product when complete.
struct Prepared {
    /// The transformed values, NaN where the original is missing.
    values: Vec<f64>,
    /// Whether each row's value is present.
    present: Vec<bool>,
    /// Every value present.
    complete: bool,
    /// At least two present values, not all equal.
    spread: bool,
    /// Spearman's: the rows of the present values sorted by value, and those values
    /// (pairwise re-ranking walks them in this order); empty for Pearson.
    order: Vec<u32>,
    /// See `order`.
    sorted: Vec<f64>,
}

/// The upper triangle of the correlation matrix of `columns` and each column's spread.
pub fn matrix(columns: &[Vec<f64>], method: Method) -> (Vec<Option<f64>>, Vec<bool>) {
    let d = columns.len();
    let prepared: Vec<Prepared> = columns.iter().map(|c| prepare(c, method)).collect();
    let spread: Vec<bool> = prepared.iter().map(|p| p.spread).collect();
    let mut tri = vec![None; d * d.saturating_sub(1) / 2];
    // Complete columns with spread: one product of their unit-norm columns.
    let full: Vec<usize> = (0..d).filter(|&j| prepared[j].complete && prepared[j].spread).collect();
    if full.len() > 1 {
        let n = columns[0].len();
        let mut z = ndarray::Array2::<f64>::zeros((n, full.len()));
        for (k, &j) in full.iter().enumerate() {
            let v = &prepared[j].values;
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            z.column_mut(k).iter_mut().zip(v).for_each(|(z, x)| *z = x / norm);
        }
        // The upper triangle only, in blocks of columns of about equal area, one per core:
        // block [s, e) is z[:, ..e]ᵀ · z[:, s..e].
        let m = full.len();
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(m);
        let mut bounds: Vec<usize> = (0..=threads)
            .map(|t| ((m as f64) * (t as f64 / threads as f64).sqrt()).round() as usize)
            .collect();
        bounds.dedup();
        let blocks: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        let products = parallel(
            &blocks,
            || (),
            |_, &(s, e)| {
                let columns =
                    |r: std::ops::Range<usize>| z.slice_axis(ndarray::Axis(1), ndarray::Slice::from(r));
                columns(0..e).t().dot(&columns(s..e))
            },
        );
        for (&(s, e), r) in blocks.iter().zip(products) {
            for b in s..e {
                for a in 0..b {
                    tri[tri_index(d, full[a], full[b])] = Some(r[(a, b - s)].clamp(-1.0, 1.0));
                }
            }
        }
    }
    // Every other pair with spread on both sides: over the rows both have.
    let pairs: Vec<(usize, usize)> = (0..d)
        .flat_map(|i| (i + 1..d).map(move |j| (i, j)))
        .filter(|&(i, j)| {
            let (a, b) = (&prepared[i], &prepared[j]);
            a.spread && b.spread && !(a.complete && b.complete)
        })
        .collect();
    let n = columns.first().map_or(0, Vec::len);
    let results = parallel(
        &pairs,
        || Scratch::new(n),
        |scratch, &(i, j)| match method {
            Method::Pearson => pearson_pair(columns, &prepared, i, j),
            Method::Spearman => spearman_pair(&prepared, i, j, scratch),
        },
    );
    for (&(i, j), r) in pairs.iter().zip(results) {
        tri[tri_index(d, i, j)] = r;
    }
    (tri, spread)
}

/// `f` of each item with a scratch of its thread's, the items split over the available
/// cores; the answers in order.
fn parallel<T: Sync, S, R: Send>(
    items: &[T],
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len().max(1));
    let run = |c: &[T]| {
        let mut s = scratch();
        c.iter().map(|t| f(&mut s, t)).collect::<Vec<R>>()
    };
    if threads <= 1 || items.len() < 2 {
        return run(items);
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| run(c))).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// What a thread reuses from pair to pair: one column's ranks within the common rows (by
/// row), and the other's common rows and values in sorted order.
struct Scratch {
    ranks: Vec<f64>,
    rows: Vec<u32>,
    values: Vec<f64>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch { ranks: vec![0.0; n], rows: Vec::with_capacity(n), values: Vec::with_capacity(n) }
    }

    /// Keeps the rows of `p`'s sorted order where `other` is present, with their values.
    fn keep(&mut self, p: &Prepared, other: &[bool]) {
        self.rows.clear();
        self.values.clear();
        for (&r, &v) in p.order.iter().zip(&p.sorted) {
            if other[r as usize] {
                self.rows.push(r);
                self.values.push(v);
            }
        }
    }
}

/// Calls `f(rows, average rank)` for each run of tied `values` (sorted), ranks from 1.
fn tie_groups(values: &[f64], mut f: impl FnMut(std::ops::Range<usize>, f64)) {
    let mut start = 0;
    while start < values.len() {
        let mut end = start + 1;
        while end < values.len() && values[end] == values[start] {
            end += 1;
        }
        f(start..end, (start + 1 + end) as f64 / 2.0);
        start = end;
    }
}

/// Scales a column by a power of two to magnitudes at most 2 (exactly), then centres its
/// present values (Pearson) or replaces them by their centred average ranks (Spearman).
fn prepare(column: &[f64], method: Method) -> Prepared {
    let present_rows: Vec<u32> =
        (0..column.len() as u32).filter(|&i| column[i as usize].is_finite()).collect();
    let present: Vec<bool> = column.iter().map(|v| v.is_finite()).collect();
    let complete = present_rows.len() == column.len();
    let first = present_rows.first().map(|&i| column[i as usize]);
    let spread = present_rows.len() >= 2 && present_rows.iter().any(|&i| Some(column[i as usize]) != first);
    let mut values = vec![f64::NAN; column.len()];
    let (mut order, mut sorted) = (Vec::new(), Vec::new());
    match method {
        Method::Pearson => {
            let scale = power_of_two_scale(present_rows.iter().map(|&i| column[i as usize]));
            for &i in &present_rows {
                values[i as usize] = column[i as usize] * scale;
            }
        }
        Method::Spearman => {
            order = present_rows.clone();
            order.sort_by(|&a, &b| column[a as usize].total_cmp(&column[b as usize]));
            sorted = order.iter().map(|&i| column[i as usize]).collect();
            let ranks = average_ranks(&order, |i| column[i as usize]);
            for (&i, r) in order.iter().zip(ranks) {
                values[i as usize] = r;
            }
        }
    }
    center(&mut values, &present_rows);
    // Values apart by less than the scaled magnitudes resolve are no spread either.
    let spread = spread && present_rows.iter().any(|&i| values[i as usize] != 0.0);
    Prepared { values, present, complete, spread, order, sorted }
}

/// The power of two that brings the largest magnitude of `values` to at most 2 (1 when
/// there is none or it is 0); multiplying by it is exact for normal numbers.
fn power_of_two_scale(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0_f64, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        return 1.0;
    }
    // 2^-e with 2^(e-1) < max ≤ 2^e, kept a power of two a double holds: past 2^1023 the
    // values come to at most 2, below 2^-1022 (subnormal) to less than 1.
    let e = max.log2().ceil() as i32;
    2f64.powi(-e.clamp(-1022, 1023))
}

/// Subtracts the mean of the values at `present` from them, then the mean of what is left
/// (the corrected two-pass algorithm). A column whose spread is tiny next to its size
/// (1e9 + 1e-6·noise, -1e300 + 1e284·noise) needs the second: the first mean is off by
/// rounding errors of the size's order, which can be as large as the spread, and a column
/// left off centre by that much correlates with nothing (0.01 where the exact figure is
/// 0.91). The values minus a mean that close to them are exact (Sterbenz), so the second
/// mean is the error of the first to the precision of the spread itself.
fn center(values: &mut [f64], present: &[u32]) {
    if present.is_empty() {
        return;
    }
    for _ in 0..2 {
        let mean = present.iter().map(|&i| values[i as usize]).sum::<f64>() / present.len() as f64;
        for &i in present {
            values[i as usize] -= mean;
        }
    }
}

/// The average ranks (from 1) of the rows `order` lists, sorted by `value`: tied values
/// share the mean of the ranks they span.
fn average_ranks(order: &[u32], value: impl Fn(u32) -> f64) -> Vec<f64> {
    let values: Vec<f64> = order.iter().map(|&i| value(i)).collect();
    let mut ranks = vec![0.0; order.len()];
    tie_groups(&values, |g, avg| ranks[g].iter_mut().for_each(|r| *r = avg));
    ranks
}

/// Pearson's r of columns `i` and `j` over the rows where both are present: two passes over
/// the prepared (scaled, centred) values. A side whose values there are all equal (judged
/// on the values themselves: centring may round two apart) has no spread.
fn pearson_pair(columns: &[Vec<f64>], p: &[Prepared], i: usize, j: usize) -> Option<f64> {
    let (a, b) = (&p[i].values, &p[j].values);
    let (ci, cj) = (&columns[i], &columns[j]);
    let (mut k, mut sa, mut sb) = (0usize, 0.0, 0.0);
    let (mut lo_i, mut hi_i, mut lo_j, mut hi_j) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for r in 0..a.len() {
        // Prepared values are NaN exactly where the column is missing.
        if a[r].is_nan() || b[r].is_nan() {
            continue;
        }
        k += 1;
        sa += a[r];
        sb += b[r];
        (lo_i, hi_i) = (lo_i.min(ci[r]), hi_i.max(ci[r]));
        (lo_j, hi_j) = (lo_j.min(cj[r]), hi_j.max(cj[r]));
    }
    if k < 2 || lo_i == hi_i || lo_j == hi_j {
        return None;
    }
    let (ma, mb) = (sa / k as f64, sb / k as f64);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        if x.is_nan() || y.is_nan() {
            continue;
        }
        let (dx, dy) = (x - ma, y - mb);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let div = (sxx * syy).sqrt();
    (div > 0.0).then(|| (sxy / div).clamp(-1.0, 1.0))
}

/// Spearman's ρ of columns `i` and `j` over the rows where both are present, each ranked
/// afresh within those rows (as pandas does for a pair with missing values). The ranks are
/// read off each column's sorted order: `j`'s are laid out by row, then `i`'s are walked
/// in order and paired with them, so a pair costs a few passes over its rows.
fn spearman_pair(p: &[Prepared], i: usize, j: usize, s: &mut Scratch) -> Option<f64> {
    s.keep(&p[j], &p[i].present);
    let Scratch { ranks, rows, values } = s;
    tie_groups(values, |g, avg| rows[g].iter().for_each(|&r| ranks[r as usize] = avg));
    s.keep(&p[i], &p[j].present);
    let k = s.rows.len();
    if k < 2 {
        return None;
    }
    // The ranks' mean is (k + 1) / 2 exactly.
    let m = (k + 1) as f64 / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    let Scratch { ranks, rows, values } = s;
    tie_groups(values, |g, avg| {
        let dx = avg - m;
        for &r in &rows[g] {
            let dy = ranks[r as usize] - m;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }
    });
    // All tied on a side: every rank is the mean, exactly.
    let div = (sxx * syy).sqrt();
    (div > 0.0).then(|| (sxy / div).clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_store::examples::Example;

    fn set(columns: &[(&str, Vec<f64>)]) -> ExampleSet {
        let n = columns[0].1.len();
        let mut s = ExampleSet::new(columns.iter().map(|c| c.0.to_string()).collect());
        for r in 0..n {
            s.rows.push(Example {
                prediction_id: String::new(),
                predicted_ms: 0,
                label_ms: 0,
                segment: "s".into(),
                features: columns.iter().map(|c| c.1[r]).collect(),
                confidence: 0.5,
                label: r % 2 == 0,
            });
        }
        s
    }

    #[test]
    fn the_triangle_is_laid_out_row_by_row() {
        let d = 4;
        let mut k = 0;
        for i in 0..d {
            for j in i + 1..d {
                assert_eq!(tri_index(d, i, j), k);
                k += 1;
            }
        }
        assert_eq!(k, d * (d - 1) / 2);
    }

    #[test]
    fn ties_take_average_ranks() {
        let v = [3.0_f64, 1.0, 3.0, 2.0, 3.0];
        let mut order: Vec<u32> = (0..5).collect();
        order.sort_by(|&a, &b| v[a as usize].total_cmp(&v[b as usize]));
        let ranks = average_ranks(&order, |i| v[i as usize]);
        let mut by_row = [0.0; 5];
        for (&r, x) in order.iter().zip(ranks) {
            by_row[r as usize] = x;
        }
        assert_eq!(by_row, [4.0, 1.0, 4.0, 2.0, 4.0]);
    }

    #[test]
    fn a_constant_column_one_row_and_no_common_rows_are_null() {
        let nan = f64::NAN;
        let c = correlation(&set(&[
            ("x", vec![1.0, 2.0, 3.0, 4.0]),
            ("k", vec![0.1, 0.1, 0.1, 0.1]),
            ("y", vec![2.0, 4.0, 6.0, 9.0]),
            ("a", vec![1.0, 2.0, nan, nan]),
            ("b", vec![nan, nan, 5.0, 6.0]),
        ]));
        let m = c.matrix(Method::Pearson);
        assert_eq!(m[1], vec![None; 5], "a constant column has no correlation, not even with itself");
        assert_eq!(m[0][0], Some(1.0));
        assert!(m[0][2].unwrap() > 0.98);
        assert_eq!(c.get(Method::Pearson, 3, 4), None, "no common row");
        assert_eq!(c.get(Method::Spearman, 3, 4), None);
        // a and x share two rows: perfectly correlated there.
        assert_eq!(c.get(Method::Pearson, 0, 3), Some(1.0));
        let one = correlation(&set(&[("x", vec![1.0]), ("y", vec![2.0])]));
        assert_eq!(one.matrix(Method::Pearson), vec![vec![None, None], vec![None, None]]);
        assert_eq!((one.rows, one.sample_seed), (1, None));
        let none = correlation(&set(&[("x", vec![]), ("y", vec![])]));
        assert_eq!(none.get(Method::Spearman, 0, 1), None);
        let single = correlation(&set(&[("x", vec![1.0, 2.0, 3.0])]));
        assert_eq!((single.matrix(Method::Pearson), single.pearson.len()), (vec![vec![Some(1.0)]], 0));
    }

    #[test]
    fn huge_values_correlate_as_small_ones_do() {
        let x: Vec<f64> = (0..50).map(|i| ((i * 7) % 13) as f64).collect();
        let y: Vec<f64> = (0..50).map(|i| ((i * 5) % 11) as f64 * 0.3 + x[i]).collect();
        let small = correlation(&set(&[("x", x.clone()), ("y", y.clone())]));
        let huge = |v: &[f64], s: f64| v.iter().map(|a| a * s).collect::<Vec<_>>();
        let big = correlation(&set(&[("x", huge(&x, 1e300)), ("y", huge(&y, -1.7e308 / 20.0))]));
        let r = small.get(Method::Pearson, 0, 1).unwrap();
        assert!(r > 0.8, "{r}");
        // 1e300 is no power of two: the values differ in their last bits, the figures in
        // their last stored decimal at most.
        assert!((big.get(Method::Pearson, 0, 1).unwrap() + r).abs() <= 1e-6);
        assert_eq!(big.get(Method::Spearman, 0, 1), small.get(Method::Spearman, 0, 1).map(|r| -r));
    }

    #[test]
    fn many_features_are_correlated_on_a_recorded_sample() {
        assert_eq!(sample_size(20_000, 16, 16), 20_000);
        assert_eq!(sample_size(20_000, 100, 0), 20_000);
        // A quarter of the columns with missing values: their pairs cost 25 times as much.
        assert_eq!(sample_size(20_000, 100, 25), 20_000);
        assert_eq!(sample_size(100_000, 100, 25), 34_995);
        assert_eq!(sample_size(20_000, 1_000, 0), 4_004);
        assert_eq!(sample_size(20_000, 1_000, 250), MIN_SAMPLE);
        assert_eq!(sample_size(500, 1_000, 1_000), 500);
        let s = sample(100, 10, 1);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s[9] < 100);
        assert_eq!(s, sample(100, 10, 1), "seeded");
        let wide = set(&(0..MAX_FEATURES + 1).map(|_| ("f", vec![1.0, 2.0])).collect::<Vec<_>>());
        let c = correlation(&wide);
        assert!(c.skipped.as_deref().unwrap().contains("at most 1000"), "{c:?}");
        assert!(c.pearson.is_empty() && c.matrix(Method::Pearson)[0][0].is_none());
    }
}
