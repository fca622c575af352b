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
//!
//! # Cost, and the row sample
//!
//! Pairs of features without missing values are one matrix product of the standardised
//! columns (ndarray's, cache-blocked); a pair with missing values is a pass over its rows
//! (two for Spearman's ranks, read from each column's sorted order), the pairs spread over
//! the cores. The work grows as rows × features², so a version with many features is
//! correlated on a seeded uniform sample of its rows: at most [`ROW_BUDGET`] / features²
//! rows, never fewer than [`MIN_SAMPLE`]. The sample is recorded with the matrix (`rows`,
//! `training_rows`, `sample_seed`). Above [`MAX_FEATURES`] features no matrix is computed
//! (its stored size alone would be tens of megabytes): the record says so.
//!
//! Stored figures are rounded to six decimals (a 1,000-feature matrix is then about 9 MB
//! of JSON, half of it each method, as the upper triangle only).

use crate::demo::Rng;
use modelwatch_store::examples::ExampleSet;
use serde::{Deserialize, Serialize};

/// The largest rows × features² correlated in full; past it, a seeded sample of rows.
pub const ROW_BUDGET: u64 = 4_000_000_000;
/// The fewest rows a sample has (unless the version has fewer).
pub const MIN_SAMPLE: usize = 2_000;
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

/// The rows correlated out of `n` with `d` features: every one while `n · d²` is within
/// [`ROW_BUDGET`], else as many as it allows but at least [`MIN_SAMPLE`].
pub fn sample_size(n: usize, d: usize) -> usize {
    let d2 = (d as u64).saturating_mul(d as u64).max(1);
    let allowed = usize::try_from(ROW_BUDGET / d2).unwrap_or(usize::MAX).max(MIN_SAMPLE);
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
    let rows = sample(n, sample_size(n, d), SAMPLE_SEED);
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
    /// Every value present.
    complete: bool,
    /// At least two present values, not all equal.
    spread: bool,
    /// Row indices of the present values, sorted by the original value (Spearman's
    /// pairwise re-ranking reads them in this order).
    order: Vec<u32>,
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
        let r = z.t().dot(&z);
        for (a, &i) in full.iter().enumerate() {
            for (b, &j) in full.iter().enumerate().skip(a + 1) {
                tri[tri_index(d, i, j)] = Some(r[(a, b)].clamp(-1.0, 1.0));
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
    let results = parallel(&pairs, |&(i, j)| pairwise(columns, &prepared, i, j, method));
    for (&(i, j), r) in pairs.iter().zip(results) {
        tri[tri_index(d, i, j)] = r;
    }
    (tri, spread)
}

/// `f` of each item, the items split over the available cores; the answers in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len().max(1));
    if threads <= 1 || items.len() < 64 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> =
            items.chunks(chunk).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Scales a column by a power of two to magnitudes at most 2 (exactly), then centres its
/// present values (Pearson) or replaces them by their centred average ranks (Spearman).
fn prepare(column: &[f64], method: Method) -> Prepared {
    let present: Vec<u32> = (0..column.len() as u32).filter(|&i| column[i as usize].is_finite()).collect();
    let complete = present.len() == column.len();
    let first = present.first().map(|&i| column[i as usize]);
    let spread = present.len() >= 2 && present.iter().any(|&i| Some(column[i as usize]) != first);
    let mut order = present.clone();
    order.sort_by(|&a, &b| column[a as usize].total_cmp(&column[b as usize]));
    let mut values = vec![f64::NAN; column.len()];
    match method {
        Method::Pearson => {
            let scale = power_of_two_scale(present.iter().map(|&i| column[i as usize]));
            for &i in &present {
                values[i as usize] = column[i as usize] * scale;
            }
        }
        Method::Spearman => {
            let ranks = average_ranks(&order, |i| column[i as usize]);
            for (&i, r) in order.iter().zip(ranks) {
                values[i as usize] = r;
            }
        }
    }
    center(&mut values, &present);
    // Values apart by less than the scaled magnitudes resolve are no spread either.
    let spread = spread && present.iter().any(|&i| values[i as usize] != 0.0);
    Prepared { values, complete, spread, order }
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

/// Subtracts the mean of the values at `present` from them (two passes, so the mean is
/// the mean of values already at most 2 in magnitude).
fn center(values: &mut [f64], present: &[u32]) {
    if present.is_empty() {
        return;
    }
    let mean = present.iter().map(|&i| values[i as usize]).sum::<f64>() / present.len() as f64;
    for &i in present {
        values[i as usize] -= mean;
    }
}

/// The average ranks (from 1) of the rows `order` lists, sorted by `value`: tied values
/// share the mean of the ranks they span.
fn average_ranks(order: &[u32], value: impl Fn(u32) -> f64) -> Vec<f64> {
    let mut ranks = vec![0.0; order.len()];
    let mut start = 0;
    while start < order.len() {
        let v = value(order[start]);
        let mut end = start + 1;
        while end < order.len() && value(order[end]) == v {
            end += 1;
        }
        // Ranks start+1 ..= end, averaged.
        let avg = (start + 1 + end) as f64 / 2.0;
        ranks[start..end].iter_mut().for_each(|r| *r = avg);
        start = end;
    }
    ranks
}

/// The correlation of columns `i` and `j` over the rows where both are present: two-pass
/// Pearson on the prepared (scaled) values, or Pearson of the ranks within those rows.
fn pairwise(columns: &[Vec<f64>], p: &[Prepared], i: usize, j: usize, method: Method) -> Option<f64> {
    let both = |r: usize| columns[i][r].is_finite() && columns[j][r].is_finite();
    let (x, y): (Vec<f64>, Vec<f64>) = match method {
        Method::Pearson => {
            // Spread is judged on the values themselves: centring may round two apart.
            let rows: Vec<usize> = (0..columns[i].len()).filter(|&r| both(r)).collect();
            let constant = |c: &[f64]| rows.iter().all(|&r| c[r] == c[rows[0]]);
            if rows.len() < 2 || constant(&columns[i]) || constant(&columns[j]) {
                return None;
            }
            let (a, b) = (&p[i].values, &p[j].values);
            rows.iter().map(|&r| (a[r], b[r])).unzip()
        }
        Method::Spearman => {
            // Ranks within the common rows, read off each column's sorted order.
            let n = columns[i].len();
            let mut x = vec![f64::NAN; n];
            let mut y = vec![f64::NAN; n];
            for (col, out) in [(i, &mut x), (j, &mut y)] {
                let kept: Vec<u32> = p[col].order.iter().copied().filter(|&r| both(r as usize)).collect();
                let ranks = average_ranks(&kept, |r| columns[col][r as usize]);
                for (&r, rank) in kept.iter().zip(ranks) {
                    out[r as usize] = rank;
                }
            }
            (0..n).filter(|&r| both(r)).map(|r| (x[r], y[r])).unzip()
        }
    };
    pearson_two_pass(&x, &y)
}

/// Two-pass Pearson r of paired values already of moderate magnitude; `None` with fewer
/// than two pairs or no spread on a side.
fn pearson_two_pass(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || x.iter().all(|&v| v == x[0]) || y.iter().all(|&v| v == y[0]) {
        return None;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n as f64, y.iter().sum::<f64>() / n as f64);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
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
        assert_eq!(sample_size(20_000, 16), 20_000);
        assert_eq!(sample_size(20_000, 100), 20_000);
        assert_eq!(sample_size(20_000, 1_000), 4_000);
        assert_eq!(sample_size(500, 1_000), 500);
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
