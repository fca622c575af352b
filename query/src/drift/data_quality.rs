//! Data-quality checks of the current window against the reference: missing rates, values
//! outside the reference's range, unseen categories, wrong-length feature vectors.

use super::Verdict;
use super::profile::Profile;

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
