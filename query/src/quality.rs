//! Model quality from the stored confidence histograms: realised from feedback, estimated
//! without labels.
//!
//! **Realised.** Feedback keeps the confidence the model gave to each labelled prediction in
//! two 1,000-bin histograms, `confidence_positive` (the label was positive) and
//! `confidence_negative`. A prediction is positive when its confidence reaches the threshold
//! (default 0.5, on a bin edge), so precision, recall and F1 are exact counts; ROC AUC is the
//! Mann–Whitney statistic over the bins (scores in one bin tie, as they would for
//! scikit-learn given the scores rounded to the bin). Precision and recall carry 95 % Wilson
//! intervals. Everything merges over any window and segment.
//!
//! **Estimated** (confidence-based performance estimation, as NannyML's CBPE): a calibration
//! `P(label = 1 | confidence)` is fitted on a labelled reference window (20 equal-width bins;
//! `(positives + 0.5) / (labels + 1)` per bin, the bin's midpoint where it holds no label).
//! On a window without labels, every prediction then counts as `p` of a positive and `1 − p`
//! of a negative, which gives expected TP, FP and FN and so precision, recall, F1 and AUC.
//! The estimate is only as good as the calibration: it tracks covariate shift (the
//! confidence distribution moves, `P(label | confidence)` stays) and **cannot be trusted
//! under concept drift** (the same confidence now means another label rate) or for a model
//! whose calibration on the reference was fitted on too few labels per bin.

mod series;

pub use series::{QualitySeries, Show, Statistic, series};

use crate::engine::{QueryError, merged};
use crate::parse::{Func, Matcher, Query};
use crate::stats::wilson;
use modelwatch_agent::layout::CONFIDENCE_BINS;
use modelwatch_store::{DistributionRow, Store};
use std::collections::BTreeMap;

/// Quality figures of one window and group.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Quality {
    /// Labelled predictions (realised) or predictions (estimated).
    pub n: f64,
    /// Positives among them (expected, for an estimate).
    pub positives: f64,
    /// Precision at the threshold (NaN without predicted positives).
    pub precision: f64,
    /// Recall at the threshold (NaN without positives).
    pub recall: f64,
    /// F1 at the threshold.
    pub f1: f64,
    /// ROC AUC (NaN without both classes).
    pub auc: f64,
    /// 95 % Wilson interval of the precision (realised only).
    pub precision_ci: Option<(f64, f64)>,
    /// 95 % Wilson interval of the recall (realised only).
    pub recall_ci: Option<(f64, f64)>,
}

/// Bin counts over the 1,000 confidence bins.
fn bins(row: Option<&DistributionRow>) -> Vec<f64> {
    let mut out = vec![0.0; CONFIDENCE_BINS];
    if let Some(r) = row {
        for &(k, c) in &r.buckets {
            if let Some(b) = out.get_mut(k.clamp(0, CONFIDENCE_BINS as i64 - 1) as usize) {
                *b += c as f64;
            }
        }
    }
    out
}

/// The first bin counted as predicted positive.
fn threshold_bin(threshold: f64) -> usize {
    ((threshold * CONFIDENCE_BINS as f64) - 1e-9).ceil().clamp(0.0, CONFIDENCE_BINS as f64) as usize
}

/// Precision, recall, F1 and AUC from per-bin positive and negative counts.
pub fn from_bins(pos: &[f64], neg: &[f64], threshold: f64, intervals: bool) -> Quality {
    let t = threshold_bin(threshold);
    let tp: f64 = pos[t..].iter().sum();
    let fp: f64 = neg[t..].iter().sum();
    let p_total: f64 = pos.iter().sum();
    let n_total: f64 = neg.iter().sum();
    let fn_ = p_total - tp;
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { f64::NAN };
    let recall = if p_total > 0.0 { tp / p_total } else { f64::NAN };
    let f1 =
        if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { f64::NAN };
    // Mann–Whitney: each positive beats the negatives in lower bins and half-ties its own.
    let mut below = 0.0;
    let mut wins = 0.0;
    for (p, n) in pos.iter().zip(neg) {
        wins += p * (below + n / 2.0);
        below += n;
    }
    let auc = if p_total > 0.0 && n_total > 0.0 { wins / (p_total * n_total) } else { f64::NAN };
    Quality {
        n: p_total + n_total,
        positives: p_total,
        precision,
        recall,
        f1,
        auc,
        precision_ci: intervals.then(|| wilson(tp, tp + fp)),
        recall_ci: intervals.then(|| wilson(tp, tp + fn_)),
    }
}

/// Realised quality of labelled rows.
pub fn realised(
    positive: Option<&DistributionRow>,
    negative: Option<&DistributionRow>,
    threshold: f64,
) -> Quality {
    from_bins(&bins(positive), &bins(negative), threshold, true)
}

/// `P(label = 1 | confidence)` on 20 equal-width bins, fitted on labelled rows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// Per calibration bin: the positive rate.
    pub rate: Vec<f64>,
    /// Labels per bin.
    pub labels: Vec<f64>,
}

const CALIBRATION_BINS: usize = 20;

impl Calibration {
    /// Fits the calibration on labelled reference rows.
    pub fn fit(positive: Option<&DistributionRow>, negative: Option<&DistributionRow>) -> Calibration {
        let (pos, neg) = (bins(positive), bins(negative));
        let per = CONFIDENCE_BINS / CALIBRATION_BINS;
        let mut rate = Vec::with_capacity(CALIBRATION_BINS);
        let mut labels = Vec::with_capacity(CALIBRATION_BINS);
        for b in 0..CALIBRATION_BINS {
            let p: f64 = pos[b * per..(b + 1) * per].iter().sum();
            let n: f64 = neg[b * per..(b + 1) * per].iter().sum();
            let mid = (b as f64 + 0.5) / CALIBRATION_BINS as f64;
            rate.push(if p + n > 0.0 { (p + 0.5) / (p + n + 1.0) } else { mid });
            labels.push(p + n);
        }
        Calibration { rate, labels }
    }

    fn at(&self, bin: usize) -> f64 {
        self.rate[(bin * CALIBRATION_BINS / CONFIDENCE_BINS).min(CALIBRATION_BINS - 1)]
    }

    /// The estimated quality of a window from the confidence of all its predictions.
    pub fn estimate(&self, confidence: Option<&DistributionRow>, threshold: f64) -> Quality {
        let all = bins(confidence);
        let pos: Vec<f64> = all.iter().enumerate().map(|(i, n)| n * self.at(i)).collect();
        let neg: Vec<f64> = all.iter().enumerate().map(|(i, n)| n * (1.0 - self.at(i))).collect();
        from_bins(&pos, &neg, threshold, false)
    }
}

/// Realised and estimated quality of one group.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QualityRow {
    /// The group's tags (`segment`, ...; empty overall).
    pub tags: BTreeMap<String, String>,
    /// From feedback.
    pub realised: Quality,
    /// From the confidence distribution and the reference's calibration.
    pub estimated: Option<Quality>,
}

/// Quality per group with its windows: what `modelwatch quality --format json` prints and
/// `GET /api/v1/quality` answers.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QualityDocument {
    /// The window measured, `[from, to)` in ms.
    pub window: [i64; 2],
    /// The labelled window the estimate is calibrated on.
    pub reference: [i64; 2],
    /// Confidence from which a prediction is positive.
    pub threshold: f64,
    /// Each group's realised and estimated quality.
    pub groups: Vec<QualityRow>,
}

fn distribution(
    store: &Store,
    metric: &str,
    matchers: &[Matcher],
    by: &[String],
    from_ms: i64,
    to_ms: i64,
) -> Result<BTreeMap<BTreeMap<String, String>, DistributionRow>, QueryError> {
    let q = Query {
        func: Func::Count,
        explicit: true,
        metric: metric.into(),
        matchers: matchers.to_vec(),
        by: by.to_vec(),
    };
    Ok(merged(store, &q, from_ms, to_ms)?.into_iter().collect())
}

/// Realised quality per group over `[from_ms, to_ms)`, and the estimate from a calibration
/// fitted on `reference` (a labelled range) when given.
pub fn quality(
    store: &Store,
    matchers: &[Matcher],
    by: &[String],
    from_ms: i64,
    to_ms: i64,
    reference: Option<(i64, i64)>,
    threshold: f64,
) -> Result<Vec<QualityRow>, QueryError> {
    let pos = distribution(store, "confidence_positive", matchers, by, from_ms, to_ms)?;
    let neg = distribution(store, "confidence_negative", matchers, by, from_ms, to_ms)?;
    let all = distribution(store, "confidence", matchers, by, from_ms, to_ms)?;
    let calibration = match reference {
        Some((f, t)) => {
            let rp = distribution(store, "confidence_positive", matchers, by, f, t)?;
            let rn = distribution(store, "confidence_negative", matchers, by, f, t)?;
            Some((rp, rn))
        }
        None => None,
    };
    let mut groups: Vec<&BTreeMap<String, String>> = pos.keys().chain(neg.keys()).chain(all.keys()).collect();
    groups.sort();
    groups.dedup();
    Ok(groups
        .into_iter()
        .map(|g| QualityRow {
            tags: g.clone(),
            realised: realised(pos.get(g), neg.get(g), threshold),
            estimated: calibration
                .as_ref()
                .map(|(rp, rn)| Calibration::fit(rp.get(g), rn.get(g)).estimate(all.get(g), threshold)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_at_the_threshold_and_auc_by_hand() {
        let mut pos = vec![0.0; CONFIDENCE_BINS];
        let mut neg = vec![0.0; CONFIDENCE_BINS];
        pos[900] = 8.0; // 0.9
        pos[400] = 2.0; // 0.4: a missed positive
        neg[600] = 1.0; // 0.6: a false positive
        neg[100] = 9.0;
        let q = from_bins(&pos, &neg, 0.5, true);
        assert_eq!((q.precision, q.recall), (8.0 / 9.0, 0.8));
        // Pairs: 8 positives beat all 10 negatives; 2 beat the 9 below 0.4.
        assert!((q.auc - (8.0 * 10.0 + 2.0 * 9.0) / 100.0).abs() < 1e-12);
        assert_eq!(threshold_bin(0.5), 500);
        assert_eq!(threshold_bin(0.123), 123);
    }
}
