//! The drift report as one document: what `modelwatch drift --format json` prints and
//! `GET /api/v1/drift` answers.

use super::data_quality::QualityCheck;
use super::verdict::{DriftConfig, DriftReport, FeatureDrift, NewCategory, StatRow, Verdict};
use crate::time::rfc3339;

/// A drift report with its context: the windows compared, the filters, the verdict counts,
/// every statistic by severity and the data-quality checks.
///
/// Today's outputs print it through `serde_json::Value`, whose maps sort their keys: print
/// `serde_json::to_value(&document)` to keep their bytes.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DriftDocument {
    /// The reference: a saved baseline's name or a range, as described by its reader.
    pub reference: String,
    /// The current window, `FROM .. TO` in RFC 3339.
    pub current: String,
    /// The current window, `[from, to)` in ms since the Unix epoch.
    pub current_ms: [i64; 2],
    /// The label filters, described (`model=pii`...).
    pub filters: Vec<String>,
    /// Features whose verdict is drift.
    pub drifting_features: usize,
    /// Features judged (those with insufficient data are not).
    pub features: usize,
    /// Features with too few values (or none) on a side to judge.
    pub insufficient_features: usize,
    /// `drifting_features / features`.
    pub drifting_share: f64,
    /// Whether the share reaches the threshold.
    pub dataset_drift: bool,
    /// The share of drifting features from which the dataset drifts.
    pub drift_share_threshold: f64,
    /// Every feature either window knows, in name order: its verdict and why.
    pub feature_verdicts: Vec<FeatureVerdict>,
    /// Every statistic of every feature, most severe first.
    pub statistics: Vec<StatRow>,
    /// The data-quality checks.
    pub data_quality: Vec<QualityCheck>,
}

/// One feature's verdict, with what it rests on.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FeatureVerdict {
    /// The feature (`confidence` for the confidence score).
    pub feature: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// `ok`, `warning`, `drift`, or `insufficient_data`.
    pub verdict: Verdict,
    /// The effect size's statistic (`wasserstein_norm` or `js`), when measured.
    pub effect: Option<String>,
    /// Its value.
    pub effect_value: Option<f64>,
    /// Its threshold.
    pub threshold: Option<f64>,
    /// The p-value of the verdict's test.
    pub p_value: Option<f64>,
    /// Values in the reference.
    pub reference_count: u64,
    /// Values in the current window.
    pub current_count: u64,
    /// The buckets are coarse for this feature's spread (see [`FeatureDrift::low_resolution`]).
    pub low_resolution: bool,
    /// The width of the reference's median bucket.
    pub bucket_width: Option<f64>,
    /// Why there is no verdict, or why an effect past its threshold is not drift.
    pub reason: Option<String>,
    /// Categories the reference never saw.
    pub new_categories: Vec<NewCategory>,
}

impl From<&FeatureDrift> for FeatureVerdict {
    fn from(f: &FeatureDrift) -> Self {
        let effect = f.stats.first();
        FeatureVerdict {
            feature: f.feature.clone(),
            kind: f.kind,
            verdict: f.verdict,
            effect: effect.map(|e| e.statistic.to_string()),
            effect_value: effect.map(|e| e.value),
            threshold: effect.and_then(|e| e.threshold),
            p_value: f.p_value,
            reference_count: f.reference_count,
            current_count: f.current_count,
            low_resolution: f.low_resolution,
            bucket_width: f.bucket_width,
            reason: f.reason.clone(),
            new_categories: f.new_categories.clone(),
        }
    }
}

impl DriftDocument {
    /// The document of `report`, computed with `cfg` between `reference` (described) and
    /// the current window `[from_ms, to_ms)` of the series `filters` (described) select.
    pub fn new(
        reference: impl Into<String>,
        from_ms: i64,
        to_ms: i64,
        filters: Vec<String>,
        report: &DriftReport,
        data_quality: Vec<QualityCheck>,
        cfg: &DriftConfig,
    ) -> DriftDocument {
        DriftDocument {
            reference: reference.into(),
            current: format!("{} .. {}", rfc3339(from_ms), rfc3339(to_ms)),
            current_ms: [from_ms, to_ms],
            filters,
            drifting_features: report.features.iter().filter(|f| f.verdict == Verdict::Drift).count(),
            features: report.judged(),
            insufficient_features: report.features.len() - report.judged(),
            drifting_share: report.drifting_share,
            dataset_drift: report.dataset_drift,
            drift_share_threshold: cfg.drift_share,
            feature_verdicts: report.features.iter().map(FeatureVerdict::from).collect(),
            statistics: report.rows_by_severity().into_iter().cloned().collect(),
            data_quality,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{Profile, QualityThresholds, compare, data_quality};
    use serde_json::json;

    use crate::testing::T0;

    #[test]
    fn the_document_has_the_keys_of_the_cli_and_the_rest_reports() {
        let counts = |v: &[(&str, f64)]| v.iter().map(|&(k, n)| (k.to_string(), n)).collect();
        let reference = Profile {
            categorical: [("lang".to_string(), counts(&[("en", 90.0), ("de", 10.0)]))].into(),
            ..Profile::default()
        };
        let current = Profile {
            categorical: [("lang".to_string(), counts(&[("en", 10.0), ("de", 90.0)]))].into(),
            ..Profile::default()
        };
        let cfg = DriftConfig::default();
        let report = compare(&reference, &current, &cfg);
        let checks = data_quality(&reference, &current, &QualityThresholds::default());
        let filters = vec!["model=pii".to_string()];
        let doc =
            DriftDocument::new("now-8d..now-1d", T0, T0 + 3_600_000, filters, &report, checks.clone(), &cfg);
        let v = serde_json::to_value(&doc).unwrap();
        // What `modelwatch drift --format json` builds today, plus the window in ms.
        let cli = json!({
            "reference": "now-8d..now-1d",
            "current": "2025-11-26T00:00:00Z .. 2025-11-26T01:00:00Z",
            "current_ms": [T0, T0 + 3_600_000],
            "filters": ["model=pii"],
            "drifting_features": 1, "features": 1, "insufficient_features": 0,
            "feature_verdicts": [FeatureVerdict::from(&report.features[0])],
            "drifting_share": 1.0, "dataset_drift": true,
            "drift_share_threshold": 0.5,
            "statistics": report.rows_by_severity(), "data_quality": checks,
        });
        assert_eq!(v, cli);
        let row = &v["statistics"][0];
        // The chi-squared test is the furthest past its threshold (p ≈ 1e-156).
        assert_eq!((row["feature"].as_str(), row["statistic"].as_str()), (Some("lang"), Some("chi2")));
        for key in ["value", "p_value", "threshold", "verdict", "reference", "current"] {
            assert!(row.get(key).is_some(), "{key} in {row}");
        }
    }
}
