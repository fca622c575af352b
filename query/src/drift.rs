//! Drift between a reference and a current window, computed from stored distributions
//! (mergeable over any window, so a 7-day reference costs one read of hourly roll-ups).
//!
//! Numeric features and the confidence score get, per feature:
//! - **PSI** over bins cut at the reference's quantiles (default 10 bins; an empty bin
//!   counts as 0.0001 of its side, as Evidently does). Thresholds 0.1 (warning), 0.2 (drift).
//! - **Kolmogorov–Smirnov** statistic D (the largest gap between the two CDFs, read at every
//!   bucket) and its asymptotic p-value from the counts (`kstwobign.sf(√(nm/(n+m))·D)`), with
//!   an optional Bonferroni or Benjamini–Hochberg correction across features; p < 0.05.
//! - **Jensen–Shannon distance** (natural log, as scipy and Evidently) and **Hellinger
//!   distance** over the PSI bins; 0.1 each.
//! - **Wasserstein distance** (W1) divided by the reference's standard deviation; 0.1.
//! - The change in mean, median and standard deviation.
//!
//! Categorical features get the chi-squared test (current counts against the reference's
//! proportions; p < 0.05), and the Jensen–Shannon distance (0.1), PSI and Hellinger
//! distance of the category shares.
//!
//! A feature drifts when its **effect size** crosses its threshold: normed Wasserstein for
//! numeric features (as Evidently does past 1,000 rows), JS distance for categorical ones.
//! The p-values are reported beside it as evidence, not as the verdict: at production
//! volumes every test is significant (see ARCHITECTURE.md, "Drift verdicts"). The dataset
//! drifts when the share of drifting features reaches 0.5.
//!
//! The sketch's buckets are 1.5 % wide, so statistics read from them differ from those of
//! the raw values by at most the mass of one bucket (D) or a bucket's width (Wasserstein,
//! quantile cut points); mean and standard deviation are exact.

use crate::engine::QueryError;
use crate::parse::{Func, Matcher, Op, Query};
use crate::stats::{chi2_sf, ks_p_value};
use modelwatch_store::{DistributionRow, Scheme, Store};
use std::collections::BTreeMap;

/// How p-values are corrected for testing many features at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correction {
    /// Each feature on its own.
    None,
    /// Multiply by the number of features.
    Bonferroni,
    /// Benjamini–Hochberg false discovery rate.
    Fdr,
}

/// Thresholds and options, with the common defaults.
#[derive(Clone, Debug)]
pub struct DriftConfig {
    /// PSI bins, cut at the reference's quantiles.
    pub psi_bins: usize,
    /// PSI warning threshold.
    pub psi_warning: f64,
    /// PSI drift threshold.
    pub psi_drift: f64,
    /// Significance level of the KS and chi-squared tests.
    pub alpha: f64,
    /// Correction of the p-values across features.
    pub correction: Correction,
    /// Jensen–Shannon distance threshold.
    pub js: f64,
    /// Normed Wasserstein threshold.
    pub wasserstein: f64,
    /// Hellinger distance threshold.
    pub hellinger: f64,
    /// Share of drifting features from which the whole dataset drifts.
    pub drift_share: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            psi_bins: 10,
            psi_warning: 0.1,
            psi_drift: 0.2,
            alpha: 0.05,
            correction: Correction::None,
            js: 0.1,
            wasserstein: 0.1,
            hellinger: 0.1,
            drift_share: 0.5,
        }
    }
}

/// A statistic's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Below every threshold.
    Ok,
    /// Past the warning threshold.
    Warning,
    /// Past the drift threshold.
    Drift,
}

impl Verdict {
    /// `ok`, `warning` or `drift`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Drift => "drift",
        }
    }
}

/// One statistic of one feature.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StatRow {
    /// The feature (`confidence` for the confidence score).
    pub feature: String,
    /// `psi`, `ks`, `js`, `wasserstein_norm`, `hellinger`, `chi2`, or `mean`, `median`,
    /// `std` (changes, reported without a verdict).
    pub statistic: &'static str,
    /// The value (for tests: the statistic; see `p_value`).
    pub value: f64,
    /// The p-value of a test (corrected when asked).
    pub p_value: Option<f64>,
    /// The threshold the verdict compares with.
    pub threshold: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Reference and current values (for `mean`, `median`, `std`), else NaN.
    pub reference: f64,
    /// See `reference`.
    pub current: f64,
}

/// The drift of one feature: its statistics and the verdict of its effect size.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FeatureDrift {
    /// The feature.
    pub feature: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// Values in the reference and current windows.
    pub reference_count: u64,
    /// See `reference_count`.
    pub current_count: u64,
    /// Every statistic.
    pub stats: Vec<StatRow>,
    /// The verdict of the effect size (normed Wasserstein or JS).
    pub verdict: Verdict,
}

/// A whole report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DriftReport {
    /// Per feature, in name order.
    pub features: Vec<FeatureDrift>,
    /// Share of features whose verdict is drift.
    pub drifting_share: f64,
    /// Whether the share reaches the threshold.
    pub dataset_drift: bool,
}

impl DriftReport {
    /// Every statistic of every feature, most severe first (verdict, then how far past its
    /// threshold).
    pub fn rows_by_severity(&self) -> Vec<&StatRow> {
        let mut rows: Vec<&StatRow> = self.features.iter().flat_map(|f| &f.stats).collect();
        let excess = |r: &StatRow| match (r.p_value, r.threshold) {
            (Some(p), Some(a)) => a / p.max(1e-300),
            (None, Some(t)) if t > 0.0 => r.value / t,
            _ => 0.0,
        };
        rows.sort_by(|a, b| b.verdict.cmp(&a.verdict).then(excess(b).total_cmp(&excess(a))));
        rows
    }
}

/// A numeric distribution as sorted (value, count) points: each bucket at its
/// representative value, the one quantiles report.
pub fn points(r: &DistributionRow) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = r
        .buckets
        .iter()
        .map(|&(k, c)| {
            let x = match r.scheme {
                Scheme::Sketch => modelwatch_agent::layout::sketch_representative(k as i32),
                s => {
                    let (lo, hi) = s.bounds(k);
                    if hi.is_finite() { (lo + hi) / 2.0 } else { lo }
                }
            };
            (x, c as f64)
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The reference's quantile cut points (`bins - 1` of them, distinct), as np.quantile would
/// place them on the bucketed values.
fn quantile_edges(reference: &[(f64, f64)], bins: usize) -> Vec<f64> {
    let total: f64 = reference.iter().map(|p| p.1).sum();
    let mut edges = Vec::new();
    let mut cum = 0.0;
    let mut j = 1;
    for &(x, c) in reference {
        cum += c;
        while j < bins && cum >= total * j as f64 / bins as f64 {
            edges.push(x);
            j += 1;
        }
    }
    edges.dedup();
    edges
}

/// Counts of each side in the bins `(-inf, e1), [e1, e2), ... [ek, inf)`.
fn binned(points: &[(f64, f64)], edges: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; edges.len() + 1];
    for &(x, c) in points {
        out[edges.partition_point(|&e| e <= x)] += c;
    }
    out
}

fn shares(counts: &[f64]) -> Vec<f64> {
    let n: f64 = counts.iter().sum();
    // Evidently's smoothing: an empty bin holds 0.0001 of its side.
    counts.iter().map(|&c| if c > 0.0 { c / n.max(1.0) } else { 1e-4 }).collect()
}

/// PSI of two sets of bin shares.
pub fn psi(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).map(|(&p, &q)| (q - p) * (q / p).ln()).sum()
}

/// Jensen–Shannon distance (natural log) of two sets of shares (each normalised first).
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let kl = |a: &[f64], b: &[f64], sa: f64, sb: f64| -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let (x, y) = (x / sa, y / sb);
                if x > 0.0 { x * (x / y).ln() } else { 0.0 }
            })
            .sum()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(&x, &y)| (x / sp + y / sq) / 2.0).collect();
    ((kl(p, &m, sp, 1.0) + kl(q, &m, sq, 1.0)) / 2.0).max(0.0).sqrt()
}

/// Hellinger distance of two sets of shares.
pub fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    (p.iter().zip(q).map(|(&x, &y)| ((x / sp).sqrt() - (y / sq).sqrt()).powi(2)).sum::<f64>() / 2.0).sqrt()
}

/// KS statistic and W1 distance of two point sets.
fn ks_and_wasserstein(a: &[(f64, f64)], b: &[(f64, f64)]) -> (f64, f64) {
    let (na, nb): (f64, f64) = (a.iter().map(|p| p.1).sum(), b.iter().map(|p| p.1).sum());
    if na == 0.0 || nb == 0.0 {
        return (0.0, 0.0);
    }
    let (mut i, mut j) = (0, 0);
    let (mut fa, mut fb) = (0.0f64, 0.0f64);
    let (mut d, mut w) = (0.0f64, 0.0);
    let mut last: Option<f64> = None;
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(p), Some(q)) => p.0.min(q.0),
            (Some(p), None) => p.0,
            (None, Some(q)) => q.0,
            (None, None) => break,
        };
        if let Some(prev) = last {
            w += (fa - fb).abs() * (x - prev);
        }
        while i < a.len() && a[i].0 == x {
            fa += a[i].1 / na;
            i += 1;
        }
        while j < b.len() && b[j].0 == x {
            fb += b[j].1 / nb;
            j += 1;
        }
        d = d.max((fa - fb).abs());
        last = Some(x);
    }
    (d, w)
}

fn verdict(value: f64, warning: f64, drift: f64) -> Verdict {
    if value >= drift {
        Verdict::Drift
    } else if value >= warning {
        Verdict::Warning
    } else {
        Verdict::Ok
    }
}

fn row(feature: &str, statistic: &'static str, value: f64, threshold: f64, v: Verdict) -> StatRow {
    StatRow {
        feature: feature.to_string(),
        statistic,
        value,
        p_value: None,
        threshold: Some(threshold),
        verdict: v,
        reference: f64::NAN,
        current: f64::NAN,
    }
}

fn change(feature: &str, statistic: &'static str, reference: f64, current: f64) -> StatRow {
    StatRow {
        feature: feature.to_string(),
        statistic,
        value: current - reference,
        p_value: None,
        threshold: None,
        verdict: Verdict::Ok,
        reference,
        current,
    }
}

/// The shares of the reference and the current distribution in the PSI bins (cut at the
/// reference's quantiles), smoothed as PSI, JS and Hellinger read them.
pub fn binned_shares(
    reference: &DistributionRow,
    current: &DistributionRow,
    bins: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (r, c) = (points(reference), points(current));
    let edges = quantile_edges(&r, bins.max(2));
    (shares(&binned(&r, &edges)), shares(&binned(&c, &edges)))
}

/// The drift of one numeric distribution (a feature or the confidence score).
pub fn numeric_drift(
    feature: &str,
    reference: &DistributionRow,
    current: &DistributionRow,
    cfg: &DriftConfig,
) -> FeatureDrift {
    let (r, c) = (points(reference), points(current));
    let (p, q) = binned_shares(reference, current, cfg.psi_bins);
    let psi_v = psi(&p, &q);
    let js_v = js_distance(&p, &q);
    let h_v = hellinger(&p, &q);
    let (d, w) = ks_and_wasserstein(&r, &c);
    let std = |x: &DistributionRow| match (x.m2, x.count) {
        (Some(m2), n) if n > 0 => (m2 / n as f64).sqrt(),
        _ => {
            // Confidence rows keep no moments: from the buckets.
            let pts = points(x);
            let n: f64 = pts.iter().map(|p| p.1).sum();
            let mean = pts.iter().map(|p| p.0 * p.1).sum::<f64>() / n.max(1.0);
            (pts.iter().map(|p| p.1 * (p.0 - mean).powi(2)).sum::<f64>() / n.max(1.0)).sqrt()
        }
    };
    let mean = |x: &DistributionRow| x.mean.or_else(|| x.bucket_mean()).unwrap_or(f64::NAN);
    let (sr, sc) = (std(reference), std(current));
    let w_norm = if sr > 0.0 {
        w / sr
    } else if w > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let ks_p = ks_p_value(d, reference.count, current.count);
    let mut ks =
        row(feature, "ks", d, cfg.alpha, if ks_p < cfg.alpha { Verdict::Drift } else { Verdict::Ok });
    ks.p_value = Some(ks_p);
    let wv = verdict(w_norm, cfg.wasserstein, cfg.wasserstein);
    let stats = vec![
        row(feature, "wasserstein_norm", w_norm, cfg.wasserstein, wv),
        row(feature, "psi", psi_v, cfg.psi_drift, verdict(psi_v, cfg.psi_warning, cfg.psi_drift)),
        ks,
        row(feature, "js", js_v, cfg.js, verdict(js_v, cfg.js, cfg.js)),
        row(feature, "hellinger", h_v, cfg.hellinger, verdict(h_v, cfg.hellinger, cfg.hellinger)),
        change(feature, "mean", mean(reference), mean(current)),
        change(
            feature,
            "median",
            reference.quantile(0.5).unwrap_or(f64::NAN),
            current.quantile(0.5).unwrap_or(f64::NAN),
        ),
        change(feature, "std", sr, sc),
    ];
    FeatureDrift {
        feature: feature.to_string(),
        kind: "numeric",
        reference_count: reference.count,
        current_count: current.count,
        stats,
        verdict: wv,
    }
}

/// The drift of a categorical feature from its category counts.
pub fn categorical_drift(
    feature: &str,
    reference: &BTreeMap<String, f64>,
    current: &BTreeMap<String, f64>,
    cfg: &DriftConfig,
) -> FeatureDrift {
    let keys: Vec<&String> = reference
        .keys()
        .chain(current.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let r: Vec<f64> = keys.iter().map(|k| reference.get(*k).copied().unwrap_or(0.0)).collect();
    let c: Vec<f64> = keys.iter().map(|k| current.get(*k).copied().unwrap_or(0.0)).collect();
    let (nr, nc): (f64, f64) = (r.iter().sum(), c.iter().sum());
    // scipy.stats.chisquare(f_obs=current, f_exp=reference shares × current total); a
    // category never seen in the reference makes it infinite (p = 0).
    let chi2: f64 = r
        .iter()
        .zip(&c)
        .map(|(&r, &c)| {
            let e = r / nr.max(1.0) * nc;
            if e > 0.0 {
                (c - e).powi(2) / e
            } else if c > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .sum();
    let df = (keys.len().max(2) - 1) as f64;
    let p = chi2_sf(chi2, df);
    let mut chi =
        row(feature, "chi2", chi2, cfg.alpha, if p < cfg.alpha { Verdict::Drift } else { Verdict::Ok });
    chi.p_value = Some(p);
    let (ps, qs) = (shares(&r), shares(&c));
    let js_v = js_distance(&ps, &qs);
    let jv = verdict(js_v, cfg.js, cfg.js);
    FeatureDrift {
        feature: feature.to_string(),
        kind: "categorical",
        reference_count: nr as u64,
        current_count: nc as u64,
        stats: vec![
            row(feature, "js", js_v, cfg.js, jv),
            chi,
            row(
                feature,
                "psi",
                psi(&ps, &qs),
                cfg.psi_drift,
                verdict(psi(&ps, &qs), cfg.psi_warning, cfg.psi_drift),
            ),
            row(
                feature,
                "hellinger",
                hellinger(&ps, &qs),
                cfg.hellinger,
                verdict(hellinger(&ps, &qs), cfg.hellinger, cfg.hellinger),
            ),
        ],
        verdict: jv,
    }
}

/// Corrects the test p-values across features (in place) and redoes their verdicts.
fn correct(features: &mut [FeatureDrift], cfg: &DriftConfig) {
    let mut tests: Vec<(usize, usize, f64)> = Vec::new();
    for (i, f) in features.iter().enumerate() {
        for (j, s) in f.stats.iter().enumerate() {
            if let Some(p) = s.p_value {
                tests.push((i, j, p));
            }
        }
    }
    let m = tests.len() as f64;
    match cfg.correction {
        Correction::None => {}
        Correction::Bonferroni => {
            for t in &mut tests {
                t.2 = (t.2 * m).min(1.0);
            }
        }
        Correction::Fdr => {
            tests.sort_by(|a, b| a.2.total_cmp(&b.2));
            let mut running = 1.0f64;
            for k in (0..tests.len()).rev() {
                running = running.min(tests[k].2 * m / (k + 1) as f64);
                tests[k].2 = running.min(1.0);
            }
        }
    }
    for (i, j, p) in tests {
        let s = &mut features[i].stats[j];
        s.p_value = Some(p);
        s.verdict = if p < cfg.alpha { Verdict::Drift } else { Verdict::Ok };
    }
}

/// A report from per-feature drifts.
pub fn report(mut features: Vec<FeatureDrift>, cfg: &DriftConfig) -> DriftReport {
    correct(&mut features, cfg);
    features.sort_by(|a, b| a.feature.cmp(&b.feature));
    let n = features.len().max(1) as f64;
    let drifting_share = features.iter().filter(|f| f.verdict == Verdict::Drift).count() as f64 / n;
    DriftReport {
        dataset_drift: !features.is_empty() && drifting_share >= cfg.drift_share,
        drifting_share,
        features,
    }
}

/// The distributions and category counts of one window, per feature, read through the query
/// engine (`confidence` for the confidence score).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Profile {
    /// Numeric features (and `confidence`): the merged distribution of the window.
    pub numeric: BTreeMap<String, DistributionRow>,
    /// Categorical features: count per category.
    pub categorical: BTreeMap<String, BTreeMap<String, f64>>,
    /// Missing values per categorical feature.
    pub categorical_missing: BTreeMap<String, f64>,
    /// Feature vectors of the wrong length in the window.
    #[serde(default)]
    pub schema_errors: f64,
}

/// Reads the profile of `[from_ms, to_ms)` for the series the matchers select (a model, a
/// version, a segment...).
pub fn profile(store: &Store, matchers: &[Matcher], from_ms: i64, to_ms: i64) -> Result<Profile, QueryError> {
    let q = |metric: &str, by: &[&str]| Query {
        func: Func::Count,
        explicit: true,
        metric: metric.to_string(),
        matchers: matchers.to_vec(),
        by: by.iter().map(|s| s.to_string()).collect(),
    };
    let mut out = Profile::default();
    for (tags, row) in crate::engine::merged(store, &q("feature", &["feature"]), from_ms, to_ms)? {
        out.numeric.insert(tags.get("feature").cloned().unwrap_or_default(), row);
    }
    if let Some((_, row)) =
        crate::engine::merged(store, &q("confidence", &[]), from_ms, to_ms)?.into_iter().next()
    {
        out.numeric.insert("confidence".into(), row);
    }
    let range = crate::engine::Range { from_ms, to_ms, step_ms: (to_ms - from_ms).max(1) };
    let limits = crate::engine::Limits::default();
    let cats = crate::engine::run(
        store,
        &Query { func: Func::Sum, ..q("feature_category", &["feature", "category"]) },
        range,
        limits,
    )?;
    for s in cats {
        let (Some(f), Some(c)) = (s.tags.get("feature"), s.tags.get("category")) else { continue };
        let n: f64 = s.points.iter().map(|p| p.1).sum();
        *out.categorical.entry(f.clone()).or_default().entry(c.clone()).or_default() += n;
    }
    let missing = crate::engine::run(
        store,
        &Query { func: Func::Sum, ..q("feature_missing", &["feature"]) },
        range,
        limits,
    )?;
    for s in missing {
        if let Some(f) = s.tags.get("feature") {
            *out.categorical_missing.entry(f.clone()).or_default() +=
                s.points.iter().map(|p| p.1).sum::<f64>();
        }
    }
    let errors =
        crate::engine::run(store, &Query { func: Func::Sum, ..q("schema_errors", &[]) }, range, limits)?;
    out.schema_errors = errors.iter().flat_map(|s| &s.points).map(|p| p.1).sum();
    Ok(out)
}

/// Data-quality thresholds.
#[derive(Clone, Debug)]
pub struct QualityThresholds {
    /// Missing rate (missing / all values) from which a feature warns.
    pub missing_rate: f64,
    /// Share of values outside the reference's [min, max] from which a feature warns.
    pub out_of_range: f64,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        QualityThresholds { missing_rate: 0.05, out_of_range: 0.01 }
    }
}

/// One data-quality check of one feature (or of the whole window, for schema errors).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QualityCheck {
    /// The feature (empty for schema errors).
    pub feature: String,
    /// `missing_rate`, `out_of_range`, `unseen_categories` or `schema_errors`.
    pub check: &'static str,
    /// The current window's value.
    pub value: f64,
    /// The reference's value.
    pub reference: f64,
    /// The threshold.
    pub threshold: f64,
    /// `Warning` past the threshold.
    pub verdict: Verdict,
    /// For unseen categories: which.
    pub detail: String,
}

/// Data quality of the current window against the reference: missing rates, values outside
/// the reference's range (read from the buckets: values less than a bucket's width, 1.5 %,
/// past a bound are not counted), categories the reference never had (the agent
/// counts strings outside the vocabulary as `other`), and wrong-length feature vectors.
pub fn data_quality(reference: &Profile, current: &Profile, t: &QualityThresholds) -> Vec<QualityCheck> {
    let mut out = Vec::new();
    let check =
        |feature: &str, check, value: f64, reference: f64, threshold: f64, detail: String| QualityCheck {
            feature: feature.to_string(),
            check,
            value,
            reference,
            threshold,
            verdict: if value > threshold { Verdict::Warning } else { Verdict::Ok },
            detail,
        };
    let rate = |missing: f64, present: f64| {
        if missing + present > 0.0 { missing / (missing + present) } else { 0.0 }
    };
    for (name, c) in current.numeric.iter().filter(|(n, _)| *n != "confidence") {
        let r = reference.numeric.get(name);
        let miss = rate((c.missing + c.invalid) as f64, c.count as f64);
        let miss_ref = r.map_or(0.0, |r| rate((r.missing + r.invalid) as f64, r.count as f64));
        out.push(check(name, "missing_rate", miss, miss_ref, t.missing_rate, String::new()));
        if let Some(r) = r
            && let (Some(lo), Some(hi)) = (r.min, r.max)
        {
            // Whole buckets outside the range: a bucket straddling a bound counts as inside.
            let outside: f64 = c
                .buckets
                .iter()
                .filter(|&&(k, _)| {
                    let (lower, upper) = c.scheme.bounds(k);
                    upper <= lo || lower > hi
                })
                .map(|b| b.1 as f64)
                .sum();
            let share = if c.count > 0 { outside / c.count as f64 } else { 0.0 };
            out.push(check(
                name,
                "out_of_range",
                share,
                0.0,
                t.out_of_range,
                format!("reference range [{lo}, {hi}]"),
            ));
        }
    }
    for (name, c) in &current.categorical {
        let r = reference.categorical.get(name);
        let present: f64 = c.values().sum();
        let miss = rate(current.categorical_missing.get(name).copied().unwrap_or(0.0), present);
        let miss_ref = rate(
            reference.categorical_missing.get(name).copied().unwrap_or(0.0),
            r.map_or(0.0, |r| r.values().sum()),
        );
        out.push(check(name, "missing_rate", miss, miss_ref, t.missing_rate, String::new()));
        let unseen: Vec<&String> = c
            .iter()
            .filter(|(k, n)| **n > 0.0 && r.is_none_or(|r| r.get(*k).copied().unwrap_or(0.0) == 0.0))
            .map(|(k, _)| k)
            .collect();
        let share = unseen.iter().map(|k| c[*k]).sum::<f64>() / present.max(1.0);
        out.push(check(
            name,
            "unseen_categories",
            share,
            0.0,
            0.0,
            unseen.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
        ));
    }
    out.push(check("", "schema_errors", current.schema_errors, reference.schema_errors, 0.0, String::new()));
    out
}

/// The drift report between two profiles (features present in both).
pub fn compare(reference: &Profile, current: &Profile, cfg: &DriftConfig) -> DriftReport {
    let mut features = Vec::new();
    for (name, r) in &reference.numeric {
        if let Some(c) = current.numeric.get(name)
            && r.scheme == c.scheme
            && r.count > 0
            && c.count > 0
        {
            features.push(numeric_drift(name, r, c, cfg));
        }
    }
    for (name, r) in &reference.categorical {
        if let Some(c) = current.categorical.get(name) {
            features.push(categorical_drift(name, r, c, cfg));
        }
    }
    report(features, cfg)
}

/// An equality matcher (for callers building profile filters).
pub fn eq(label: &str, value: &str) -> Matcher {
    Matcher { label: label.to_string(), op: Op::Eq, value: value.to_string(), regex: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_windows_do_not_drift_and_shifted_ones_do() {
        let mk = |shift: f64| {
            let mut s = modelwatch_agent::Sketch::new();
            for i in 0..10_000 {
                s.record(10.0 + shift + (i % 100) as f64 * 0.1);
            }
            let mut r = DistributionRow::empty(
                0,
                1,
                modelwatch_store::Resolution::Raw,
                Default::default(),
                Scheme::Sketch,
            );
            r.buckets = s.buckets().iter().map(|&(k, c)| (k as i64, c)).collect();
            r.count = 10_000;
            r.mean = Some(10.0 + shift + 4.95);
            r.m2 = Some(10_000.0 * 8.3325);
            r
        };
        let cfg = DriftConfig::default();
        let same = numeric_drift("x", &mk(0.0), &mk(0.0), &cfg);
        assert_eq!(same.verdict, Verdict::Ok);
        assert!(same.stats.iter().all(|s| s.verdict == Verdict::Ok), "{same:?}");
        let moved = numeric_drift("x", &mk(0.0), &mk(3.0), &cfg);
        assert_eq!(moved.verdict, Verdict::Drift);
        let psi = moved.stats.iter().find(|s| s.statistic == "psi").unwrap();
        assert!(psi.value > 0.2, "{psi:?}");
    }
}
