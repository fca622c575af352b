//! Feature importance, stored with every version and compared by the gate's bias-shift
//! criterion: permutation importance for any [`Model`], and exact SHAP values in closed form
//! for linear models.
//!
//! Permutation importance is scikit-learn's `sklearn.inspection.permutation_importance`:
//! the fall of the score when one column is shuffled, mean and standard deviation over the
//! repeats; `scripts/golden_importance.py` makes the goldens `tests/importance.rs` checks
//! against it, on scikit-learn's own permutations and on ours. Each table scores the
//! unpermuted rows once, then shuffles one column at a time of its own copy of the rows,
//! features spread over the cores; the figures do not depend on the number of threads. A
//! linear model is not rescored row by row: its decision moves by `coef_j` times the
//! change of feature `j`'s (imputed) value, which reads two columns instead of every row
//! and differs from the decision summed afresh by about 1e-13 of log-odds at most (rows
//! with terms past 1024 in log-odds are summed afresh). AUC counts the
//! Mann–Whitney U from radix-sorted scores, the same figure as [`auc`](super::auc) to
//! the bit.

use super::linear::sigmoid;
use super::{LinearModel, Model};
use crate::demo::Rng;
use modelwatch_store::examples::ExampleSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The score permutation importance measures the loss of (higher is better for every one:
/// log loss is taken negated, as scikit-learn's `neg_log_loss`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportanceMetric {
    /// The area under the ROC curve (scikit-learn's `roc_auc`).
    #[default]
    Auc,
    /// The negated mean log loss (scikit-learn's `neg_log_loss`).
    NegLogLoss,
    /// The accuracy at the threshold (scikit-learn's `accuracy` at 0.5).
    Accuracy,
}

/// How permutation importance is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportanceConfig {
    /// Permutations of each feature (scikit-learn's `n_repeats`; default 5).
    pub repeats: usize,
    /// The score whose fall is measured (default AUC).
    pub metric: ImportanceMetric,
    /// The seed of the permutations: the same seed, the same figures.
    pub seed: u64,
    /// The score from which a prediction is positive (for accuracy).
    pub threshold: f64,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        ImportanceConfig { repeats: 5, metric: ImportanceMetric::Auc, seed: 0, threshold: 0.5 }
    }
}

/// One feature's permutation importance: the fall of the score when its column is
/// shuffled, over the repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureScore {
    /// The feature.
    pub feature: String,
    /// The mean fall (scikit-learn's `importances_mean`).
    pub mean: f64,
    /// Its standard deviation over the repeats, ddof 0 (scikit-learn's `importances_std`).
    pub std: f64,
}

/// Permutation importance on one set of rows (all of them, or one segment's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportanceTable {
    /// The rows measured on.
    pub rows: usize,
    /// The score before any permutation; `None` where it is undefined (AUC with one class):
    /// then `features` is empty.
    pub baseline: Option<f64>,
    /// One entry per feature, in the model's order.
    pub features: Vec<FeatureScore>,
}

/// Permutation importance overall and per segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PermutationImportance {
    /// The score measured.
    pub metric: ImportanceMetric,
    /// The permutations per feature.
    pub repeats: usize,
    /// Their seed.
    pub seed: u64,
    /// Over every row.
    pub overall: ImportanceTable,
    /// Per segment (each segment's rows permuted among themselves).
    pub segments: BTreeMap<String, ImportanceTable>,
}

/// Exact SHAP values of a linear model, summarised: the mean absolute contribution of each
/// feature to the decision (log-odds), overall and per segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinearShap {
    /// Feature → mean |contribution| over every row.
    pub overall: BTreeMap<String, f64>,
    /// Segment → feature → mean |contribution| over the segment's rows.
    pub segments: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Everything stored with a version as its `feature_importance`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportanceReport {
    /// Permutation importance (any model).
    pub permutation: PermutationImportance,
    /// Exact SHAP summaries, for linear models only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shap: Option<LinearShap>,
}

/// Permutation importance of `model` on `set`: overall, and for each segment on that
/// segment's rows only, permuted among themselves.
///
/// `config.repeats` permutations of the rows are drawn from `config.seed` with
/// [`Rng`] and every feature's column is shuffled by each of them in
/// turn (scikit-learn, too, shuffles every column with the same `n_repeats` permutations);
/// each segment draws its own from the seed and the segment's name. A `repeats` of 0 is
/// taken as 1: a mean over no permutation would be no figure at all.
///
/// Each row is given to the model in the model's feature order, the set's columns found
/// by name where its order differs (a feature the set lacks is missing: NaN).
///
/// Where the metric is undefined on a set of rows (AUC with one class, any metric on no
/// rows) that table has `baseline: None` and no features. NaN or infinite feature values
/// are passed to the model as they are (each model says what it makes of them); a NaN
/// score ranks lowest for AUC, predicts negative for accuracy and costs the clipped
/// maximum for log loss, as in [`figures`](super::figures).
pub fn permutation_importance(
    model: &dyn Model,
    set: &ExampleSet,
    config: &ImportanceConfig,
) -> PermutationImportance {
    let repeats = config.repeats.max(1);
    let all: Vec<usize> = (0..set.rows.len()).collect();
    let overall = {
        let perms = permutations(all.len(), repeats, config.seed);
        measure(model, set, &all, config.metric, config.threshold, &perms)
    };
    let mut by_segment: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, row) in set.rows.iter().enumerate() {
        by_segment.entry(row.segment.as_str()).or_default().push(i);
    }
    let segments = by_segment
        .into_iter()
        .map(|(segment, rows)| {
            let perms = permutations(rows.len(), repeats, config.seed ^ fnv1a(segment));
            (segment.to_string(), measure(model, set, &rows, config.metric, config.threshold, &perms))
        })
        .collect();
    PermutationImportance { metric: config.metric, repeats, seed: config.seed, overall, segments }
}

/// The overall table of permutation importance with the permutations given: for each
/// feature and each permutation `p`, the feature's value on row `i` becomes its value on
/// row `p[i]` (the other columns untouched), and the importance is the baseline score less
/// the score on those rows; mean and standard deviation (ddof 0) over the permutations.
///
/// This is the core [`permutation_importance`] runs on its seeded permutations; given
/// scikit-learn's own (see `scripts/golden_importance.py`) it answers scikit-learn's
/// figures. An error names the permutation that is not one of the set's rows, or says
/// there is none.
pub fn permutation_importance_with(
    model: &dyn Model,
    set: &ExampleSet,
    metric: ImportanceMetric,
    threshold: f64,
    perms: &[Vec<usize>],
) -> Result<ImportanceTable, String> {
    let n = set.rows.len();
    if perms.is_empty() {
        return Err("no permutations: at least one is needed for a mean".into());
    }
    for (k, p) in perms.iter().enumerate() {
        if p.len() != n {
            return Err(format!("permutation {k} has {} indices for the set's {n} rows", p.len()));
        }
        let mut seen = vec![false; n];
        for &i in p {
            if i >= n || std::mem::replace(&mut seen[i], true) {
                return Err(format!(
                    "permutation {k} is not a permutation of the set's {n} rows: index {i} is {}",
                    if i >= n { "out of range" } else { "repeated" }
                ));
            }
        }
    }
    let all: Vec<usize> = (0..n).collect();
    Ok(measure(model, set, &all, metric, threshold, perms))
}

/// `repeats` independent uniform permutations of `0..n` (Fisher–Yates over
/// [`Rng`]), from `seed`: those [`permutation_importance`] applies to
/// the overall table (a segment's are drawn from `seed ^` a hash of its name).
pub fn permutations(n: usize, repeats: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::seeded(seed);
    (0..repeats)
        .map(|_| {
            let mut p: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                p.swap(i, rng.below(i + 1));
            }
            p
        })
        .collect()
}

/// FNV-1a: a stable hash of a segment's name (the standard library's hasher may change
/// between releases, and the same seed must give the same figures on every build).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The rows' values, row-major, one column per feature of the model in the model's order.
///
/// Columns are found by name where the set's names differ from the model's (a model
/// feature the set lacks is all NaN, i.e. missing); a short row's absent values are NaN.
fn matrix(model: &[String], set: &ExampleSet, rows: &[usize]) -> Vec<f64> {
    let source = super::columns_by_name(model, set).unwrap_or_else(|| (0..model.len()).map(Some).collect());
    let mut data = Vec::with_capacity(rows.len() * model.len());
    for &r in rows {
        let values = &set.rows[r].features;
        data.extend(source.iter().map(|s| s.and_then(|s| values.get(s).copied()).unwrap_or(f64::NAN)));
    }
    data
}

/// Below this many model calls a table is measured on the calling thread: spawning costs
/// more than it saves.
const PARALLEL_FROM: usize = 200_000;

/// The largest decision and term (`coef_j · x_j`, in log-odds) a linear model's shortcut
/// moves a decision by in place: rounding then costs at most a few times 2^10 · 2^-53 ≈
/// 1e-13 of log-odds; any row past it is summed afresh.
const SHORTCUT_BOUND: f64 = 1024.0;

/// One table: the rows `rows` of `set`, each permutation indexing into `rows`.
fn measure(
    model: &dyn Model,
    set: &ExampleSet,
    rows: &[usize],
    metric: ImportanceMetric,
    threshold: f64,
    perms: &[Vec<usize>],
) -> ImportanceTable {
    let names = model.features();
    let (n, d) = (rows.len(), names.len());
    let data = matrix(names, set, rows);
    let labels: Vec<bool> = rows.iter().map(|&r| set.rows[r].label).collect();
    let mut scorer = Scorer::new(metric, threshold, &labels);
    let linear = model.as_linear().filter(|m| m.coef.len() == d);
    // A linear model's score is the logistic of its decision, so its decisions are kept
    // for the shortcut in `Worker::feature`.
    let decisions: Vec<f64> = match linear {
        Some(m) => (0..n).map(|i| m.decision(&data[i * d..(i + 1) * d])).collect(),
        None => Vec::new(),
    };
    let scores: Vec<f64> = match linear {
        Some(_) => decisions.iter().map(|&z| sigmoid(z)).collect(),
        None => (0..n).map(|i| model.score(&data[i * d..(i + 1) * d])).collect(),
    };
    let Some(baseline) = scorer.score(&scores) else {
        return ImportanceTable { rows: n, baseline: None, features: Vec::new() };
    };
    let work = Work {
        model,
        linear: linear.map(|m| (m, decisions.as_slice())),
        data: &data,
        d,
        labels: &labels,
        metric,
        threshold,
        perms,
        baseline,
    };
    let threads = if n * d * perms.len() < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |t| t.get()).min(d)
    };
    let mut falls: Vec<Vec<f64>> = vec![Vec::new(); d];
    if threads <= 1 {
        let mut w = work.worker();
        for (j, f) in falls.iter_mut().enumerate() {
            *f = w.feature(j);
        }
    } else {
        // Features are handed out one at a time, so a thread that finishes early takes the
        // next; each result lands in its feature's place, whichever thread computed it.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done: Vec<Vec<(usize, Vec<f64>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut w = work.worker();
                        let mut out = Vec::new();
                        loop {
                            let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if j >= d {
                                return out;
                            }
                            out.push((j, w.feature(j)));
                        }
                    })
                })
                .collect();
            // A panicking model is the model's bug; its thread's features stay empty (NaN
            // figures) rather than bringing the caller down.
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        for (j, f) in done.into_iter().flatten() {
            falls[j] = f;
        }
    }
    let features = names
        .iter()
        .zip(falls)
        .map(|(name, f)| {
            let k = f.len() as f64;
            let mean = f.iter().sum::<f64>() / k;
            let std = (f.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / k).sqrt();
            FeatureScore { feature: name.clone(), mean, std }
        })
        .collect();
    ImportanceTable { rows: n, baseline: Some(baseline), features }
}

/// What every thread of one table shares.
struct Work<'a> {
    model: &'a dyn Model,
    /// The model as a linear one, with its decision on each row.
    linear: Option<(&'a LinearModel, &'a [f64])>,
    data: &'a [f64],
    d: usize,
    labels: &'a [bool],
    metric: ImportanceMetric,
    threshold: f64,
    perms: &'a [Vec<usize>],
    baseline: f64,
}

impl<'a> Work<'a> {
    fn worker(&self) -> Worker<'_, 'a> {
        Worker {
            work: self,
            // The linear shortcut reads only the shared rows; any other model is given
            // rows, so each thread shuffles its own copy.
            data: if self.linear.is_some() { Vec::new() } else { self.data.to_vec() },
            scores: vec![0.0; self.labels.len()],
            column: Vec::with_capacity(self.labels.len()),
            scorer: Scorer::new(self.metric, self.threshold, self.labels),
        }
    }
}

/// One thread's own copy of the rows, whose columns it shuffles in place (as scikit-learn
/// shuffles a copy of `X`), and its buffers.
struct Worker<'w, 'a> {
    work: &'w Work<'a>,
    data: Vec<f64>,
    scores: Vec<f64>,
    column: Vec<f64>,
    scorer: Scorer<'a>,
}

impl Worker<'_, '_> {
    /// Feature `j`'s fall of the score under each permutation.
    fn feature(&mut self, j: usize) -> Vec<f64> {
        let Work { model, linear, d, perms, baseline, .. } = *self.work;
        let n = self.scores.len();
        if let Some((m, z)) = linear {
            // The decision moves by coef_j times the change of the (imputed) value: two
            // columns read instead of every row. Where the decision and both terms are
            // within ±SHORTCUT_BOUND this differs from the decision summed afresh by a few
            // ULPs of the bound at most (scikit-learn's BLAS sums differ as much); past it,
            // a cancellation could lose every digit (1e300 replaced by 1), so that row is
            // summed afresh. A zero coefficient or an unmoved value leaves the decision
            // exactly as it was.
            let w = m.coef[j];
            if w == 0.0 {
                // Every permuted score is the baseline's: the falls are exactly 0.
                return vec![0.0; perms.len()];
            }
            let impute = m.impute.get(j).copied().unwrap_or(0.0);
            let data = self.work.data;
            self.column.clear();
            self.column.extend((0..n).map(|i| {
                let x = data[i * d + j];
                if x.is_finite() { x } else { impute }
            }));
            let column = &self.column;
            let mut row = vec![0.0; d];
            let mut falls = Vec::with_capacity(perms.len());
            for p in perms {
                for (i, s) in self.scores.iter_mut().enumerate() {
                    let (from, to) = (column[i], column[p[i]]);
                    let near = |v: f64| v.abs() <= SHORTCUT_BOUND;
                    *s = sigmoid(if from == to {
                        z[i]
                    } else if near(z[i]) && near(w * from) && near(w * to) {
                        z[i] + w * (to - from)
                    } else {
                        row.copy_from_slice(&data[i * d..(i + 1) * d]);
                        row[j] = data[p[i] * d + j];
                        m.decision(&row)
                    });
                }
                falls.push(baseline - self.scorer.score(&self.scores).unwrap_or(f64::NAN));
            }
            return falls;
        }
        self.column.clear();
        self.column.extend((0..n).map(|i| self.data[i * d + j]));
        let mut falls = Vec::with_capacity(perms.len());
        for p in perms {
            for (i, &from) in p.iter().enumerate() {
                self.data[i * d + j] = self.column[from];
            }
            for (i, s) in self.scores.iter_mut().enumerate() {
                *s = model.score(&self.data[i * d..(i + 1) * d]);
            }
            // The labels are the baseline's, so a metric defined there is defined here.
            falls.push(baseline - self.scorer.score(&self.scores).unwrap_or(f64::NAN));
        }
        for i in 0..n {
            self.data[i * d + j] = self.column[i];
        }
        falls
    }
}

/// A metric over scores against fixed labels, with its sorting buffers kept between calls.
struct Scorer<'a> {
    metric: ImportanceMetric,
    threshold: f64,
    labels: &'a [bool],
    positives: usize,
    pos_keys: Vec<u64>,
    neg_keys: Vec<u64>,
    tmp: Vec<u64>,
}

impl<'a> Scorer<'a> {
    fn new(metric: ImportanceMetric, threshold: f64, labels: &'a [bool]) -> Scorer<'a> {
        let positives = labels.iter().filter(|&&y| y).count();
        Scorer {
            metric,
            threshold,
            labels,
            positives,
            pos_keys: Vec::new(),
            neg_keys: Vec::new(),
            tmp: Vec::new(),
        }
    }

    /// The metric (higher is better), `None` where undefined.
    fn score(&mut self, scores: &[f64]) -> Option<f64> {
        let n = self.labels.len();
        if n == 0 {
            return None;
        }
        match self.metric {
            ImportanceMetric::Auc => self.auc(scores),
            ImportanceMetric::NegLogLoss => {
                // `figures`' log loss, term for term, so the two agree to the bit.
                let mut loss = 0.0;
                for (&s, &y) in scores.iter().zip(self.labels) {
                    let q = if s.is_nan() { if y { 0.0 } else { 1.0 } } else { s }
                        .clamp(f64::EPSILON, 1.0 - f64::EPSILON);
                    loss -= if y { q.ln() } else { (1.0 - q).ln() };
                }
                Some(-(loss / n as f64))
            }
            ImportanceMetric::Accuracy => {
                let right =
                    scores.iter().zip(self.labels).filter(|&(&s, &y)| (s >= self.threshold) == y).count();
                Some(right as f64 / n as f64)
            }
        }
    }

    /// [`auc`](super::auc)'s statistic to the bit, faster: the Mann–Whitney U counted in
    /// integers (every positive wins over each lower negative and half of each equal one)
    /// from the positives' and the negatives' scores radix-sorted apart. `auc` computes the
    /// same U exactly (its rank sums are integers and halves far below 2^53) and both divide
    /// once by the same product, so the two agree in every bit.
    fn auc(&mut self, scores: &[f64]) -> Option<f64> {
        let pos = self.positives;
        let neg = self.labels.len() - pos;
        if pos == 0 || neg == 0 {
            return None;
        }
        let (p, n, tmp) = (&mut self.pos_keys, &mut self.neg_keys, &mut self.tmp);
        p.clear();
        n.clear();
        for (&s, &y) in scores.iter().zip(self.labels) {
            if y { p.push(order_key(s)) } else { n.push(order_key(s)) }
        }
        radix_sort(p, tmp);
        radix_sort(n, tmp);
        // Twice U: for each positive, 2 per lower negative and 1 per equal one.
        let (mut u2, mut below, mut upto) = (0u64, 0usize, 0usize);
        for &k in p.iter() {
            while below < n.len() && n[below] < k {
                below += 1;
            }
            upto = upto.max(below);
            while upto < n.len() && n[upto] == k {
                upto += 1;
            }
            u2 += (2 * below + (upto - below)) as u64;
        }
        Some(u2 as f64 / 2.0 / (pos as f64 * neg as f64))
    }
}

/// A score as a key whose unsigned order is the order of the scores: NaN as −∞ (it ranks
/// lowest, as in [`auc`](super::auc)) and −0 as +0 (they are equal scores).
fn order_key(s: f64) -> u64 {
    let s = if s.is_nan() { f64::NEG_INFINITY } else { s + 0.0 };
    let bits = s.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// Least-significant-digit radix sort, a byte a pass; a pass whose byte is the same in
/// every key (the high bytes of scores in [0, 1]) is skipped.
fn radix_sort(keys: &mut Vec<u64>, tmp: &mut Vec<u64>) {
    let mut counts = [[0usize; 256]; 8];
    for &k in keys.iter() {
        for (b, c) in counts.iter_mut().enumerate() {
            c[(k >> (8 * b)) as usize & 0xff] += 1;
        }
    }
    tmp.clear();
    tmp.resize(keys.len(), 0);
    for (b, c) in counts.iter().enumerate() {
        if c.contains(&keys.len()) {
            continue;
        }
        let mut at = [0usize; 256];
        let mut sum = 0;
        for (a, &count) in at.iter_mut().zip(c) {
            *a = sum;
            sum += count;
        }
        for &k in keys.iter() {
            let d = (k >> (8 * b)) as usize & 0xff;
            tmp[at[d]] = k;
            at[d] += 1;
        }
        std::mem::swap(keys, tmp);
    }
}

/// Exact SHAP values of a linear model on each row of a set, in log-odds.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapValues {
    /// The background mean of each feature (its imputed values' mean over the set).
    pub means: Vec<f64>,
    /// The expected decision, `intercept + Σ coef_i · means_i`: what the values of a row
    /// add up from to its decision.
    pub expected: f64,
    /// Per row of the set, one value per feature of the model, in the model's order.
    pub values: Vec<Vec<f64>>,
}

/// The exact (interventional) SHAP values of `model` on every row of `set`, in log-odds:
/// `φ_i(x) = coef_i · (x_i − mean_i)`, the background being the set itself (as shap's
/// `LinearExplainer` with `maskers.Independent(X)` on the same `X`). A NaN or infinite
/// value takes the model's impute value first, as [`LinearModel::decision`] does, both in
/// the row and in the means. For every row `expected + Σ φ_i = decision(x)` up to
/// rounding. `None` for an empty set: there is no background to explain against.
pub fn linear_shap_values(model: &LinearModel, set: &ExampleSet) -> Option<ShapValues> {
    let n = set.rows.len();
    if n == 0 {
        return None;
    }
    let d = model.features.len();
    let all: Vec<usize> = (0..n).collect();
    let mut data = matrix(&model.features, set, &all);
    for (k, x) in data.iter_mut().enumerate() {
        if !x.is_finite() {
            *x = model.impute.get(k % d).copied().unwrap_or(0.0);
        }
    }
    let means: Vec<f64> = (0..d).map(|j| (0..n).map(|i| data[i * d + j]).sum::<f64>() / n as f64).collect();
    let expected = model.intercept + model.coef.iter().zip(&means).map(|(w, m)| w * m).sum::<f64>();
    let values =
        (0..n).map(|i| (0..d).map(|j| model.coef[j] * (data[i * d + j] - means[j])).collect()).collect();
    Some(ShapValues { means, expected, values })
}

/// Exact SHAP summaries of a linear model on `set`: each feature's mean |φ_i| (see
/// [`linear_shap_values`]) over every row, and over each segment's rows. The background
/// is the whole set for the segments too, so a segment's figure says how far its rows
/// sit from the population on that feature, in log-odds. Empty maps for an empty set.
pub fn linear_shap(model: &LinearModel, set: &ExampleSet) -> LinearShap {
    let Some(shap) = linear_shap_values(model, set) else {
        return LinearShap::default();
    };
    let summary = |rows: &[usize]| -> BTreeMap<String, f64> {
        model
            .features
            .iter()
            .enumerate()
            .map(|(j, f)| {
                let total: f64 = rows.iter().map(|&i| shap.values[i][j].abs()).sum();
                (f.clone(), total / rows.len() as f64)
            })
            .collect()
    };
    let mut by_segment: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, row) in set.rows.iter().enumerate() {
        by_segment.entry(row.segment.as_str()).or_default().push(i);
    }
    let all: Vec<usize> = (0..set.rows.len()).collect();
    LinearShap {
        overall: summary(&all),
        segments: by_segment.into_iter().map(|(s, rows)| (s.to_string(), summary(&rows))).collect(),
    }
}

/// Both, as stored with a version.
pub fn importance(model: &dyn Model, set: &ExampleSet, config: &ImportanceConfig) -> ImportanceReport {
    ImportanceReport {
        permutation: permutation_importance(model, set, config),
        shap: model.as_linear().map(|m| linear_shap(m, set)),
    }
}

impl ImportanceTable {
    /// Each feature's share of the total importance: its mean fall, floored at zero,
    /// over the sum of them (every share 0 when no feature matters).
    pub fn shares(&self) -> BTreeMap<String, f64> {
        let pos = |m: f64| if m.is_finite() && m > 0.0 { m } else { 0.0 };
        let total: f64 = self.features.iter().map(|f| pos(f.mean)).sum();
        self.features
            .iter()
            .map(|f| (f.feature.clone(), if total > 0.0 { pos(f.mean) / total } else { 0.0 }))
            .collect()
    }
}
