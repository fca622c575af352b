//! Verdicts: thresholds ([`DriftConfig`]), each feature's statistics and the verdict of its
//! effect size, the correction of p-values across features, and the report.

use super::Statistic;
use super::profile::Profile;
use super::sample::{Sample, binned_shares, median_bucket_width, points, shares};
use crate::stats::{f_test_p, welch_t};
use modelwatch_store::DistributionRow;
use std::collections::{BTreeMap, BTreeSet};

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
    /// Values a side below which a feature's verdict is "insufficient data".
    pub min_rows: u64,
    /// Width of the reference's median bucket, in reference standard deviations, above which
    /// a numeric feature is marked low resolution.
    pub low_resolution: f64,
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
            min_rows: 30,
            low_resolution: 0.5,
        }
    }
}

/// A statistic's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Too few values on a side (or none) to judge: no verdict.
    #[serde(rename = "insufficient_data")]
    InsufficientData,
    /// Below every threshold.
    Ok,
    /// Past the warning threshold (a statistic), or a change the buckets cannot judge (a
    /// low-resolution feature's spread).
    Warning,
    /// Past the drift threshold.
    Drift,
}

impl Verdict {
    /// `ok`, `warning` or `drift`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::InsufficientData => "insufficient_data",
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Drift => "drift",
        }
    }
}

crate::names::named_enum! {
    /// A summary whose change between the windows a report shows beside the statistics
    /// (without a verdict).
    pub enum Summary("summary") {
        /// The mean.
        Mean = "mean",
        /// The median.
        Median = "median",
        /// The standard deviation.
        Std = "std",
    }
}

/// What a report row holds: a drift statistic, or the change of a summary. Serialized as
/// its name (`psi`, `mean`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    /// A drift statistic, with its threshold and verdict.
    Statistic(Statistic),
    /// The change of a summary (current − reference).
    Change(Summary),
}

impl Measure {
    /// The name: the statistic's or the summary's.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Statistic(s) => s.as_str(),
            Measure::Change(s) => s.as_str(),
        }
    }
}

impl std::fmt::Display for Measure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Measure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for Measure {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Measure {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One statistic of one feature.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StatRow {
    /// The feature (`confidence` for the confidence score).
    pub feature: String,
    /// A [`Statistic`], or the change of a [`Summary`] (reported without a verdict).
    pub statistic: Measure,
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
    /// Every statistic: the effect size first, then the others in [`Statistic::ALL`] order,
    /// then the changes. Empty when a side holds no values.
    pub stats: Vec<StatRow>,
    /// Drift when the effect size (normed Wasserstein or JS) reaches its threshold **and**
    /// the difference is significant (`p_value` below α); warning when a low-resolution
    /// feature's exact σ changed by 1.5× or more, significantly (F-test), and nothing else
    /// drifts; insufficient data below `min_rows` values a side, or when the moments
    /// overflow a double.
    pub verdict: Verdict,
    /// The p-value of the verdict's test: for numeric features twice the smaller of the
    /// KS and Welch t-test p-values (Bonferroni over the two), for categorical ones the
    /// chi-squared test's; corrected across features when asked.
    pub p_value: Option<f64>,
    /// The buckets are coarse for this feature's spread: the reference's median bucket is
    /// wider than `low_resolution` standard deviations, so the binned statistics (KS, PSI,
    /// JS, Hellinger, binned Wasserstein) read coarsely. The mean and σ are exact: a shift
    /// of the mean still counts in the effect size, a change of σ is a warning.
    pub low_resolution: bool,
    /// The width of the reference's median bucket (numeric features).
    pub bucket_width: Option<f64>,
    /// Why there is no verdict, or why an effect past its threshold is not drift.
    pub reason: Option<String>,
    /// Categories the reference never saw, with their count and share of the current window.
    pub new_categories: Vec<NewCategory>,
    /// What [`FeatureDrift::judge`] needs beside the p-value.
    #[serde(skip)]
    facts: Facts,
}

/// Facts of a numeric feature's moments that its verdict weighs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Facts {
    /// A change of spread the buckets are too coarse to judge (low resolution).
    spread: Option<Spread>,
    /// The reference is constant: its value and the current window's mean.
    constant: Option<(f64, f64)>,
    /// A moment overflowed a double.
    overflow: bool,
}

/// The exact standard deviations of a low-resolution feature, and the F-test's p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spread {
    reference: f64,
    current: f64,
    p_value: f64,
}

/// From this ratio of standard deviations (either way), a significant change of spread in
/// a low-resolution feature is a warning.
const SPREAD_RATIO: f64 = 1.5;

/// Below this share of the larger mean's magnitude a standard deviation is rounding: the
/// effect size's scale is at least this (and at least the smallest normal f64), so a
/// constant reference against a window that differs in the last bits is no effect at all.
const RELATIVE_FLOOR: f64 = 1e-12;

/// A category of the current window that the reference never saw.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NewCategory {
    /// Its name.
    pub category: String,
    /// Its count in the current window.
    pub count: f64,
    /// Its share of the current window.
    pub share: f64,
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
    /// Features with a verdict (not those with insufficient data): what the share counts.
    pub fn judged(&self) -> usize {
        judged(&self.features)
    }

    /// Every statistic of every feature, most severe first (verdict, then how far past its
    /// threshold).
    pub fn rows_by_severity(&self) -> Vec<&StatRow> {
        let mut rows: Vec<&StatRow> = self.features.iter().flat_map(|f| &f.stats).collect();
        let excess = |r: &StatRow| match (r.statistic, r.p_value, r.threshold) {
            (Measure::Statistic(s), Some(p), Some(a)) if s.is_test() => a / p.max(1e-300),
            (_, _, Some(t)) if t > 0.0 => r.value / t,
            _ => 0.0,
        };
        rows.sort_by(|a, b| b.verdict.cmp(&a.verdict).then(excess(b).total_cmp(&excess(a))));
        rows
    }
}

/// One statistic's value and verdict, before it is a row.
pub(super) struct Measured {
    value: f64,
    p_value: Option<f64>,
    threshold: f64,
    verdict: Verdict,
}

impl Measured {
    /// An effect size: warning from `warning`, drift from `drift`.
    pub(super) fn effect(value: f64, warning: f64, drift: f64) -> Measured {
        let verdict = if value >= drift {
            Verdict::Drift
        } else if value >= warning {
            Verdict::Warning
        } else {
            Verdict::Ok
        };
        Measured { value, p_value: None, threshold: drift, verdict }
    }

    /// A test: drift when the p-value is below `alpha`.
    pub(super) fn test(value: f64, p_value: f64, alpha: f64) -> Measured {
        Measured { value, p_value: Some(p_value), threshold: alpha, verdict: test_verdict(p_value, alpha) }
    }

    fn row(self, feature: &str, statistic: Statistic) -> StatRow {
        StatRow {
            feature: feature.to_string(),
            statistic: Measure::Statistic(statistic),
            value: self.value,
            p_value: self.p_value,
            threshold: Some(self.threshold),
            verdict: self.verdict,
            reference: f64::NAN,
            current: f64::NAN,
        }
    }
}

fn test_verdict(p_value: f64, alpha: f64) -> Verdict {
    if p_value < alpha { Verdict::Drift } else { Verdict::Ok }
}

fn change(feature: &str, summary: Summary, reference: f64, current: f64) -> StatRow {
    StatRow {
        feature: feature.to_string(),
        statistic: Measure::Change(summary),
        value: current - reference,
        p_value: None,
        threshold: None,
        verdict: Verdict::Ok,
        reference,
        current,
    }
}

/// Every statistic that applies to the sample: `effect` (the effect size that decides the
/// feature's verdict) first, then the others in [`Statistic::ALL`] order.
fn measure_all(feature: &str, sample: &Sample<'_>, effect: Statistic, cfg: &DriftConfig) -> Vec<StatRow> {
    let order = std::iter::once(effect).chain(Statistic::ALL.into_iter().filter(|&s| s != effect));
    order.filter_map(|s| s.measure(sample, cfg).map(|m| m.row(feature, s))).collect()
}

/// A feature without a verdict yet: its counts and rows.
fn new_feature(name: &str, kind: &'static str, counts: (u64, u64), stats: Vec<StatRow>) -> FeatureDrift {
    FeatureDrift {
        feature: name.to_string(),
        kind,
        reference_count: counts.0,
        current_count: counts.1,
        stats,
        verdict: Verdict::Ok,
        p_value: None,
        low_resolution: false,
        bucket_width: None,
        reason: None,
        new_categories: Vec::new(),
        facts: Facts::default(),
    }
}

/// Features with a verdict among `features`.
fn judged(features: &[FeatureDrift]) -> usize {
    features.iter().filter(|f| f.judged()).count()
}

impl FeatureDrift {
    /// Whether it has a verdict (not insufficient data).
    pub fn judged(&self) -> bool {
        self.verdict != Verdict::InsufficientData
    }

    /// The verdict from the effect row (the first) and the test's p-value `p`: drift when
    /// the effect reaches its threshold and `p < α`; insufficient data below `min_rows`
    /// values a side. The effect row carries the verdict and `p`.
    fn judge(&mut self, p: f64, cfg: &DriftConfig) {
        self.p_value = Some(p);
        let (n, m) = (self.reference_count, self.current_count);
        let facts = self.facts;
        if facts.overflow {
            return self.abstain(
                "its moments overflow a double (values too large or too far apart to square): no verdict"
                    .into(),
            );
        }
        let Some(effect) = self.stats.first_mut() else {
            self.verdict = Verdict::InsufficientData;
            return;
        };
        effect.p_value = Some(p);
        let past = effect.threshold.is_some_and(|t| effect.value >= t);
        self.reason = None;
        self.verdict = if n < cfg.min_rows || m < cfg.min_rows {
            let short: Vec<String> = [(n, "the reference"), (m, "the current window")]
                .into_iter()
                .filter(|&(k, _)| k < cfg.min_rows)
                .map(|(k, side)| format!("{} in {side}", values(k)))
                .collect();
            self.reason = Some(format!("only {} ({} needed a side)", short.join(" and "), cfg.min_rows));
            Verdict::InsufficientData
        } else if past && p < cfg.alpha {
            if let Some((level, mean)) = facts.constant {
                self.reason = Some(format!(
                    "the reference is constant at {}; the current mean is {}",
                    short(level),
                    short(mean)
                ));
            }
            Verdict::Drift
        } else if let Some(s) = facts.spread.filter(|s| s.p_value < cfg.alpha) {
            self.reason = Some(format!(
                "the spread changed: σ {} → {} (×{}, F-test p = {} < {}); the buckets are too coarse to judge its shape",
                short(s.reference),
                short(s.current),
                short(s.current / s.reference),
                short(s.p_value),
                short(cfg.alpha)
            ));
            Verdict::Warning
        } else {
            if past {
                self.reason = Some(format!(
                    "{} {} reaches {}, but the difference is not significant at {} and {} values (p = {} ≥ {})",
                    effect.statistic,
                    short(effect.value),
                    short(effect.threshold.unwrap_or(f64::NAN)),
                    n,
                    m,
                    short(p),
                    short(cfg.alpha)
                ));
            }
            Verdict::Ok
        };
        effect.verdict = self.verdict;
        if !self.judged() {
            self.unjudge_rows();
        }
    }

    /// Every statistic's row says "insufficient data" too: a PSI reading "drift" beside a
    /// feature with one value reads as a verdict.
    fn unjudge_rows(&mut self) {
        for r in self.stats.iter_mut().filter(|r| r.threshold.is_some()) {
            r.verdict = Verdict::InsufficientData;
        }
    }

    /// No verdict, for `reason` (the statistics, if any, stay).
    fn abstain(&mut self, reason: String) {
        self.verdict = Verdict::InsufficientData;
        self.reason = Some(reason);
        self.unjudge_rows();
    }
}

/// A number for a sentence: 4 significant digits, in scientific notation when very small or
/// large.
fn short(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:.3e}")
    } else {
        format!("{}", (x * 1e4).round() / 1e4)
    }
}

/// "1 value", "12 values".
fn values(n: u64) -> String {
    if n == 1 { "1 value".into() } else { format!("{n} values") }
}

/// Mean and population variance: the exact moments where the row keeps them, else from the
/// buckets (confidence rows keep none).
fn moments(x: &DistributionRow) -> (f64, f64) {
    if let (Some(mean), Some(m2)) = (x.mean, x.m2)
        && x.count > 0
    {
        return (mean, m2 / x.count as f64);
    }
    let pts = points(x);
    let n: f64 = pts.iter().map(|p| p.1).sum();
    let mean = pts.iter().map(|p| p.0 * p.1).sum::<f64>() / n.max(1.0);
    (mean, pts.iter().map(|p| p.1 * (p.0 - mean).powi(2)).sum::<f64>() / n.max(1.0))
}

/// The drift of one numeric distribution (a feature or the confidence score).
pub fn numeric_drift(
    feature: &str,
    reference: &DistributionRow,
    current: &DistributionRow,
    cfg: &DriftConfig,
) -> FeatureDrift {
    let ((mr, vr), (mc, vc)) = (moments(reference), moments(current));
    let (sr, sc) = (vr.sqrt(), vc.sqrt());
    // The effect's scale: σ, but never below rounding (a constant reference, values that
    // differ in their last bits, subnormals whose squares vanish).
    let scale = sr.max(RELATIVE_FLOOR * mr.abs().max(mc.abs())).max(f64::MIN_POSITIVE);
    let sample = Sample::Numeric {
        reference,
        current,
        reference_points: points(reference),
        current_points: points(current),
        shares: binned_shares(reference, current, cfg.psi_bins),
        reference_std: scale,
        moment_bound: (mc - mr).abs() / scale,
    };
    let mut stats = measure_all(feature, &sample, Statistic::WassersteinNorm, cfg);
    let ks = stats.iter().find(|r| r.statistic == Measure::Statistic(Statistic::Ks)).and_then(|r| r.p_value);
    // Sample variances (n − 1) for the t-test.
    let sample_var = |v: f64, n: u64| v * n as f64 / (n.max(2) - 1) as f64;
    let (_, welch) = welch_t(
        mr,
        sample_var(vr, reference.count),
        reference.count as f64,
        mc,
        sample_var(vc, current.count),
        current.count as f64,
    );
    let p = (2.0 * ks.unwrap_or(1.0).min(welch)).min(1.0);
    let median = |x: &DistributionRow| x.quantile(0.5).unwrap_or(f64::NAN);
    stats.extend([
        change(feature, Summary::Mean, mr, mc),
        change(feature, Summary::Median, median(reference), median(current)),
        change(feature, Summary::Std, sr, sc),
    ]);
    let mut out = new_feature(feature, "numeric", (reference.count, current.count), stats);
    out.bucket_width = median_bucket_width(reference);
    // A constant reference has no spread to resolve.
    out.low_resolution = sr > 0.0 && out.bucket_width.is_some_and(|w| w > cfg.low_resolution * sr);
    let ratio = sc / sr;
    if out.low_resolution && !(1.0 / SPREAD_RATIO..=SPREAD_RATIO).contains(&ratio) {
        let (nr, nc) = (reference.count as f64, current.count as f64);
        let p_value = f_test_p(sample_var(vr, reference.count), nr, sample_var(vc, current.count), nc);
        out.facts.spread = Some(Spread { reference: sr, current: sc, p_value });
    }
    out.facts.overflow = ![mr, vr, mc, vc].iter().all(|v| v.is_finite());
    out.facts.constant = (sr < scale).then_some((mr, mc));
    out.judge(p, cfg);
    out
}

/// The drift of a categorical feature from its category counts.
pub fn categorical_drift(
    feature: &str,
    reference: &BTreeMap<String, f64>,
    current: &BTreeMap<String, f64>,
    cfg: &DriftConfig,
) -> FeatureDrift {
    let keys: BTreeSet<&String> = reference.keys().chain(current.keys()).collect();
    let r: Vec<f64> = keys.iter().map(|k| reference.get(*k).copied().unwrap_or(0.0)).collect();
    let c: Vec<f64> = keys.iter().map(|k| current.get(*k).copied().unwrap_or(0.0)).collect();
    let (nr, nc): (f64, f64) = (r.iter().sum(), c.iter().sum());
    let new_categories = keys
        .iter()
        .zip(r.iter().zip(&c))
        .filter(|(_, (r, c))| **r <= 0.0 && **c > 0.0)
        .map(|(k, (_, &c))| NewCategory { category: k.to_string(), count: c, share: c / nc })
        .collect();
    let shares = (shares(&r), shares(&c));
    let sample = Sample::Categorical { reference: r, current: c, shares };
    let stats = measure_all(feature, &sample, Statistic::Js, cfg);
    let chi2 =
        stats.iter().find(|s| s.statistic == Measure::Statistic(Statistic::Chi2)).and_then(|s| s.p_value);
    let mut out = new_feature(feature, "categorical", (nr as u64, nc as u64), stats);
    out.new_categories = new_categories;
    out.judge(chi2.unwrap_or(1.0), cfg);
    out
}

/// Corrects the p-values across features (in place) and redoes their verdicts: the tests'
/// rows (KS, chi-squared) as one family, the features' verdicts as another.
fn correct(features: &mut [FeatureDrift], cfg: &DriftConfig) {
    if cfg.correction == Correction::None {
        return;
    }
    let mut tests: Vec<(usize, usize, f64)> = Vec::new();
    // Only the features judged: those without a verdict must not change the others'.
    for (i, f) in features.iter().enumerate().filter(|(_, f)| f.judged()) {
        for (j, s) in f.stats.iter().enumerate() {
            if let (Measure::Statistic(st), Some(p)) = (s.statistic, s.p_value)
                && st.is_test()
            {
                tests.push((i, j, p));
            }
        }
    }
    for (i, j, p) in adjust(tests, cfg.correction) {
        let s = &mut features[i].stats[j];
        s.p_value = Some(p);
        s.verdict = test_verdict(p, cfg.alpha);
    }
    let verdicts: Vec<(usize, usize, f64)> = features
        .iter()
        .enumerate()
        .filter(|(_, f)| f.judged())
        .filter_map(|(i, f)| f.p_value.map(|p| (i, 0, p)))
        .collect();
    for (i, _, p) in adjust(verdicts, cfg.correction) {
        features[i].judge(p, cfg);
    }
}

/// The p-values (third of each triple) adjusted for their number.
fn adjust(mut tests: Vec<(usize, usize, f64)>, correction: Correction) -> Vec<(usize, usize, f64)> {
    let m = tests.len() as f64;
    match correction {
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
    tests
}

/// A report from per-feature drifts. The share of drifting features counts the features
/// with a verdict (not those with insufficient data).
pub fn report(mut features: Vec<FeatureDrift>, cfg: &DriftConfig) -> DriftReport {
    correct(&mut features, cfg);
    features.sort_by(|a, b| a.feature.cmp(&b.feature));
    let judged = judged(&features);
    let drifting = features.iter().filter(|f| f.verdict == Verdict::Drift).count();
    let drifting_share = drifting as f64 / judged.max(1) as f64;
    DriftReport { dataset_drift: judged > 0 && drifting_share >= cfg.drift_share, drifting_share, features }
}

/// A feature that cannot be compared, with the reason.
fn unjudged(name: &str, kind: &'static str, counts: (u64, u64), reason: String) -> FeatureDrift {
    FeatureDrift {
        verdict: Verdict::InsufficientData,
        reason: Some(reason),
        ..new_feature(name, kind, counts, Vec::new())
    }
}

/// Why a side holds no values, or `None` when it holds some. `values` and `missing` are its
/// counts (missing or invalid), `absent` that it has no row for the feature at all.
fn empty_side(side: &str, values: u64, missing: u64, absent: bool) -> Option<String> {
    if values > 0 {
        None
    } else if absent {
        Some(format!("not in the {side}"))
    } else if missing > 0 {
        Some(format!("all {missing} values missing or invalid in the {side}"))
    } else {
        Some(format!("no values in the {side}"))
    }
}

/// The drift report between two profiles: every feature either side knows (a feature
/// present on one side only, or with no values on a side, is reported with the reason).
pub fn compare(reference: &Profile, current: &Profile, cfg: &DriftConfig) -> DriftReport {
    let mut features = Vec::new();
    let numeric: BTreeSet<&String> = reference.numeric.keys().chain(current.numeric.keys()).collect();
    for name in numeric {
        let (r, c) = (reference.numeric.get(name), current.numeric.get(name));
        let count = |x: Option<&DistributionRow>| x.map_or(0, |x| x.count);
        let missing = |x: Option<&DistributionRow>| x.map_or(0, |x| x.missing + x.invalid);
        let counts = (count(r), count(c));
        let empty: Vec<String> = [
            empty_side("reference", counts.0, missing(r), r.is_none()),
            empty_side("current window", counts.1, missing(c), c.is_none()),
        ]
        .into_iter()
        .flatten()
        .collect();
        match (r, c) {
            _ if !empty.is_empty() => features.push(unjudged(name, "numeric", counts, empty.join("; "))),
            (Some(r), Some(c)) if r.scheme != c.scheme => features.push(unjudged(
                name,
                "numeric",
                counts,
                format!(
                    "the windows' buckets differ ({} and {}): not comparable",
                    r.scheme.as_str(),
                    c.scheme.as_str()
                ),
            )),
            (Some(r), Some(c)) => features.push(numeric_drift(name, r, c, cfg)),
            _ => {}
        }
    }
    let categorical: BTreeSet<&String> = [reference, current]
        .iter()
        .flat_map(|p| p.categorical.keys().chain(p.categorical_missing.keys()))
        .collect();
    let empty = BTreeMap::new();
    for name in categorical {
        let (r, c) = (
            reference.categorical.get(name).unwrap_or(&empty),
            current.categorical.get(name).unwrap_or(&empty),
        );
        let total = |m: &BTreeMap<String, f64>| m.values().sum::<f64>() as u64;
        let counts = (total(r), total(c));
        let missing = |p: &Profile| p.categorical_missing.get(name).copied().unwrap_or(0.0) as u64;
        let known =
            |p: &Profile| p.categorical.contains_key(name) || p.categorical_missing.contains_key(name);
        let why: Vec<String> = [
            empty_side("reference", counts.0, missing(reference), !known(reference)),
            empty_side("current window", counts.1, missing(current), !known(current)),
        ]
        .into_iter()
        .flatten()
        .collect();
        features.push(if why.is_empty() {
            categorical_drift(name, r, c, cfg)
        } else {
            unjudged(name, "categorical", counts, why.join("; "))
        });
    }
    report(features, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_store::Scheme;

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

    #[test]
    fn rows_keep_the_order_reports_have_always_had() {
        let names = |f: &FeatureDrift| f.stats.iter().map(|s| s.statistic.as_str()).collect::<Vec<_>>();
        let row = |n: usize, shift: i64| {
            let mut r = DistributionRow::empty(
                0,
                1,
                modelwatch_store::Resolution::Raw,
                Default::default(),
                Scheme::Sketch,
            );
            r.buckets = (0..n as i64).map(|k| (k + shift, 10)).collect();
            r.count = 10 * n as u64;
            r
        };
        let cfg = DriftConfig::default();
        let numeric = numeric_drift("x", &row(20, 0), &row(20, 3), &cfg);
        assert_eq!(
            names(&numeric),
            ["wasserstein_norm", "psi", "ks", "js", "hellinger", "mean", "median", "std"]
        );
        let counts = |v: &[(&str, f64)]| v.iter().map(|&(k, n)| (k.to_string(), n)).collect();
        let categorical =
            categorical_drift("lang", &counts(&[("en", 9.0), ("de", 1.0)]), &counts(&[("en", 5.0)]), &cfg);
        assert_eq!(names(&categorical), ["js", "chi2", "psi", "hellinger"]);
        // The first row is the effect size, whose verdict is the feature's (the drift trigger
        // reports it).
        assert_eq!(categorical.verdict, categorical.stats[0].verdict);
    }
}
