//! Verdicts: thresholds ([`DriftConfig`]), each feature's statistics and the verdict of its
//! effect size, the correction of p-values across features, and the report.

use super::Statistic;
use super::profile::Profile;
use super::sample::{Sample, binned_shares, points, shares};
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
    /// then the changes.
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
/// feature's verdict) first, then the others in [`Statistic::ALL`] order; and that verdict.
fn measure_all(
    feature: &str,
    sample: &Sample<'_>,
    effect: Statistic,
    cfg: &DriftConfig,
) -> (Vec<StatRow>, Verdict) {
    let order = std::iter::once(effect).chain(Statistic::ALL.into_iter().filter(|&s| s != effect));
    let rows: Vec<StatRow> =
        order.filter_map(|s| s.measure(sample, cfg).map(|m| m.row(feature, s))).collect();
    let verdict = rows.first().map_or(Verdict::Ok, |r| r.verdict);
    (rows, verdict)
}

/// The drift of one numeric distribution (a feature or the confidence score).
pub fn numeric_drift(
    feature: &str,
    reference: &DistributionRow,
    current: &DistributionRow,
    cfg: &DriftConfig,
) -> FeatureDrift {
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
    let sample = Sample::Numeric {
        reference,
        current,
        reference_points: points(reference),
        current_points: points(current),
        shares: binned_shares(reference, current, cfg.psi_bins),
        reference_std: sr,
    };
    let (mut stats, verdict) = measure_all(feature, &sample, Statistic::WassersteinNorm, cfg);
    let median = |x: &DistributionRow| x.quantile(0.5).unwrap_or(f64::NAN);
    stats.extend([
        change(feature, Summary::Mean, mean(reference), mean(current)),
        change(feature, Summary::Median, median(reference), median(current)),
        change(feature, Summary::Std, sr, sc),
    ]);
    FeatureDrift {
        feature: feature.to_string(),
        kind: "numeric",
        reference_count: reference.count,
        current_count: current.count,
        stats,
        verdict,
    }
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
    let shares = (shares(&r), shares(&c));
    let sample = Sample::Categorical { reference: r, current: c, shares };
    let (stats, verdict) = measure_all(feature, &sample, Statistic::Js, cfg);
    FeatureDrift {
        feature: feature.to_string(),
        kind: "categorical",
        reference_count: nr as u64,
        current_count: nc as u64,
        stats,
        verdict,
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
        s.verdict = test_verdict(p, cfg.alpha);
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
