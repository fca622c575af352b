//! Model quality from the stored confidence histograms: realised from feedback, estimated
//! without labels.
//!
//! **Realised.** Feedback keeps the confidence the model gave to each labelled prediction in
//! two 1,000-bin histograms, `confidence_positive` (the label was positive) and
//! `confidence_negative`, stored at the interval of the *prediction*, however late its label
//! came (`Handle::feedback_for`; `docs/decisions/0006-labels-by-prediction-cohort.md`). So a
//! window's quality is that of the predictions made in it, the same cohort whenever it is
//! asked, and it comes with its **coverage** (labelled ÷ predictions) and the **label delay**
//! of its labels; [`QualityOptions::min_label_age_ms`] keeps only cohorts whose labels have
//! had that long to arrive. A prediction is positive when its confidence reaches the
//! threshold (default 0.5, on a bin edge), so TP, FP, FN, TN and precision, recall and F1 are
//! exact counts; F1 is `2 TP / (2 TP + FP + FN)`, 0 where that is 0/0 (scikit-learn's
//! `zero_division` default); precision and recall are `null` where undefined (no predicted
//! positive, no positive) and carry 95 % Wilson intervals. ROC AUC is the Mann–Whitney
//! statistic over the bins (scores in one bin tie, as they would for scikit-learn given the
//! scores rounded to the bin). Everything merges over any window and segment.
//!
//! **Estimated** (confidence-based performance estimation, as NannyML's CBPE): a calibration
//! `P(label = 1 | confidence)` is fitted on a labelled reference window (20 equal-width bins;
//! `(positives + 0.5) / (labels + 1)` per bin, the bin's midpoint where it holds no label).
//! On a window without labels, every prediction then counts as `p` of a positive and `1 − p`
//! of a negative, which gives expected TP, FP and FN and so precision, recall, F1 and AUC.
//! The estimate is only as good as the calibration: it tracks covariate shift (the
//! confidence distribution moves, `P(label | confidence)` stays) and **cannot be trusted
//! under concept drift** (the same confidence now means another label rate) or for a model
//! whose calibration on the reference was fitted on too few labels per bin. So each
//! estimate carries an interval for precision, recall and F1 — the figures at the 95 %
//! Wilson bounds of every calibration bin's rate, taken together in the direction that moves
//! the figure (the calibration's uncertainty, not the window's sampling error) — and is
//! refused, with the reason, when a calibration bin that holds more than [`MIN_BIN_SHARE`]
//! (1 %) of the window's predictions holds fewer than [`QualityOptions::min_bin_labels`]
//! (5) labels; thinner bins of less weight only widen the interval.

mod series;

pub use series::{QualitySeries, Show, Statistic, series};

use crate::engine::{QueryError, merged};
use crate::parse::{Func, Matcher, Query};
use crate::stats::wilson;
use modelwatch_agent::layout::CONFIDENCE_BINS;
use modelwatch_store::{DistributionRow, Store};
use std::collections::BTreeMap;

/// Labels a calibration bin needs before an estimate rests on it, by default.
pub const DEFAULT_MIN_BIN_LABELS: u64 = 5;

/// Quality figures of one window and group: counts at the threshold and the figures from
/// them. An estimate's counts are expected counts.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Quality {
    /// Labelled predictions (realised) or predictions (estimated).
    pub n: f64,
    /// Positives among them (expected, for an estimate).
    pub positives: f64,
    /// True positives: positive, predicted positive.
    pub tp: f64,
    /// False positives: negative, predicted positive.
    pub fp: f64,
    /// False negatives: positive, predicted negative.
    #[serde(rename = "fn")]
    pub fn_: f64,
    /// True negatives: negative, predicted negative.
    pub tn: f64,
    /// Precision at the threshold, TP / (TP + FP) (NaN, `null` in JSON, without predicted
    /// positives).
    pub precision: f64,
    /// Recall at the threshold, TP / (TP + FN) (NaN without positives).
    pub recall: f64,
    /// F1 at the threshold, 2 TP / (2 TP + FP + FN); 0 where that is 0/0 (scikit-learn's
    /// convention); NaN only for an empty window.
    pub f1: f64,
    /// ROC AUC (NaN without both classes).
    pub auc: f64,
    /// 95 % interval of the precision: Wilson (realised) or from the calibration (estimated).
    pub precision_ci: Option<(f64, f64)>,
    /// 95 % interval of the recall.
    pub recall_ci: Option<(f64, f64)>,
    /// The interval of F1 from the calibration (estimated only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1_ci: Option<(f64, f64)>,
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
pub fn threshold_bin(threshold: f64) -> usize {
    ((threshold * CONFIDENCE_BINS as f64) - 1e-9).ceil().clamp(0.0, CONFIDENCE_BINS as f64) as usize
}

/// Precision, recall, F1 and AUC from per-bin positive and negative counts.
pub fn from_bins(pos: &[f64], neg: &[f64], threshold: f64, intervals: bool) -> Quality {
    let t = threshold_bin(threshold);
    let tp: f64 = pos[t..].iter().sum();
    let fp: f64 = neg[t..].iter().sum();
    let p_total: f64 = pos.iter().sum();
    let n_total: f64 = neg.iter().sum();
    let fn_ = (p_total - tp).max(0.0);
    let tn = (n_total - fp).max(0.0);
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { f64::NAN };
    let recall = if p_total > 0.0 { tp / p_total } else { f64::NAN };
    let f1 = if 2.0 * tp + fp + fn_ > 0.0 {
        2.0 * tp / (2.0 * tp + fp + fn_)
    } else if p_total + n_total > 0.0 {
        0.0
    } else {
        f64::NAN
    };
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
        tp,
        fp,
        fn_,
        tn,
        precision,
        recall,
        f1,
        auc,
        precision_ci: intervals.then(|| wilson(tp, tp + fp)),
        recall_ci: intervals.then(|| wilson(tp, tp + fn_)),
        f1_ci: None,
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
    /// Per bin: the 95 % Wilson interval of the positive rate ((0, 1) without labels).
    pub rate_ci: Vec<(f64, f64)>,
}

const CALIBRATION_BINS: usize = 20;

/// A calibration bin holding more than this share of a window's predictions needs its
/// `min_bin_labels` labels for an estimate.
pub const MIN_BIN_SHARE: f64 = 0.01;

impl Calibration {
    /// Fits the calibration on labelled reference rows.
    pub fn fit(positive: Option<&DistributionRow>, negative: Option<&DistributionRow>) -> Calibration {
        let (pos, neg) = (bins(positive), bins(negative));
        let per = CONFIDENCE_BINS / CALIBRATION_BINS;
        let mut c = Calibration { rate: Vec::new(), labels: Vec::new(), rate_ci: Vec::new() };
        for b in 0..CALIBRATION_BINS {
            let p: f64 = pos[b * per..(b + 1) * per].iter().sum();
            let n: f64 = neg[b * per..(b + 1) * per].iter().sum();
            let mid = (b as f64 + 0.5) / CALIBRATION_BINS as f64;
            c.rate.push(if p + n > 0.0 { (p + 0.5) / (p + n + 1.0) } else { mid });
            c.labels.push(p + n);
            c.rate_ci.push(wilson(p, p + n));
        }
        c
    }

    fn bin_of(bin: usize) -> usize {
        (bin * CALIBRATION_BINS / CONFIDENCE_BINS).min(CALIBRATION_BINS - 1)
    }

    /// The quality expected when each confidence bin's positive rate is `rate(bin)`.
    fn expected(all: &[f64], threshold: f64, rate: impl Fn(usize) -> f64) -> Quality {
        let pos: Vec<f64> = all.iter().enumerate().map(|(i, n)| n * rate(i)).collect();
        let neg: Vec<f64> = all.iter().enumerate().map(|(i, n)| n * (1.0 - rate(i))).collect();
        from_bins(&pos, &neg, threshold, false)
    }

    /// The estimated quality of a window from the confidence of all its predictions, with
    /// its interval; refused (the reason) when a calibration bin holding more than
    /// [`MIN_BIN_SHARE`] of the window's predictions holds fewer than `min_bin_labels` labels.
    pub fn estimate(
        &self,
        confidence: Option<&DistributionRow>,
        threshold: f64,
        min_bin_labels: u64,
    ) -> Result<Quality, String> {
        let all = bins(confidence);
        let per = CONFIDENCE_BINS / CALIBRATION_BINS;
        let total: f64 = all.iter().sum();
        let labels: f64 = self.labels.iter().sum();
        if total > 0.0 && labels < min_bin_labels as f64 {
            return Err(format!(
                "the reference holds {labels} label(s), fewer than the {min_bin_labels} an estimate needs in \
                 each calibration bin; choose a reference with labels"
            ));
        }
        for b in 0..CALIBRATION_BINS {
            let predictions: f64 = all[b * per..(b + 1) * per].iter().sum();
            // A thin bin holding a sliver of the window only widens the interval (its rate
            // can be anything in its Wilson bounds, (0, 1) without labels); one that holds
            // more makes the estimate a guess.
            if predictions > MIN_BIN_SHARE * total && self.labels[b] < min_bin_labels as f64 {
                return Err(format!(
                    "the calibration bin {:.2}..{:.2} holds {} label(s) in the reference, fewer than the \
                     {min_bin_labels} an estimate needs, and {predictions} of the window's {total} \
                     predictions ({:.1} %, more than {} %); choose a reference with more labels",
                    b as f64 / CALIBRATION_BINS as f64,
                    (b + 1) as f64 / CALIBRATION_BINS as f64,
                    self.labels[b],
                    100.0 * predictions / total,
                    100.0 * MIN_BIN_SHARE,
                ));
            }
        }
        let mut q = Self::expected(&all, threshold, |i| self.rate[Self::bin_of(i)]);
        let t = threshold_bin(threshold);
        let lo = |i: usize| self.rate_ci[Self::bin_of(i)].0;
        let hi = |i: usize| self.rate_ci[Self::bin_of(i)].1;
        // Precision grows with the rate above the threshold; recall and F1 with the rate
        // above it and fall with the rate below it.
        let all_low = Self::expected(&all, threshold, lo);
        let all_high = Self::expected(&all, threshold, hi);
        let worst = Self::expected(&all, threshold, |i| if i >= t { lo(i) } else { hi(i) });
        let best = Self::expected(&all, threshold, |i| if i >= t { hi(i) } else { lo(i) });
        let ci = |a: f64, b: f64| (a.is_finite() && b.is_finite()).then(|| (a.min(b), a.max(b)));
        q.precision_ci = ci(all_low.precision, all_high.precision);
        q.recall_ci = ci(worst.recall, best.recall);
        q.f1_ci = ci(worst.f1, best.f1);
        Ok(q)
    }
}

/// How long the labels of a window's predictions took to arrive (from
/// `label_delay_seconds`, which labels given with their prediction's time carry).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LabelDelay {
    /// Labels whose delay is known (the others came through `feedback`, at prediction time).
    pub labels: f64,
    /// Median delay, seconds.
    pub p50_s: f64,
    /// 90th percentile, seconds.
    pub p90_s: f64,
    /// Longest, seconds.
    pub max_s: f64,
}

/// Realised and estimated quality of one group.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QualityRow {
    /// The group's tags (`segment`, ...; empty overall).
    pub tags: BTreeMap<String, String>,
    /// Predictions made in the window (with a valid confidence).
    pub predictions: f64,
    /// Labelled ÷ predictions (NaN without predictions).
    pub coverage: f64,
    /// How late the labels came, where known.
    pub label_delay: Option<LabelDelay>,
    /// From feedback.
    pub realised: Quality,
    /// From the confidence distribution and the reference's calibration.
    pub estimated: Option<Quality>,
    /// Why there is no estimate although a reference was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_refused: Option<String>,
}

/// What a quality report is asked for, besides the window and the groups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityOptions {
    /// The labelled range the label-free estimate is calibrated on; none: no estimate.
    pub reference: Option<(i64, i64)>,
    /// Confidence from which a prediction is positive.
    pub threshold: f64,
    /// Only predictions at least this old (ms) count: their labels have matured.
    pub min_label_age_ms: i64,
    /// Labels a calibration bin needs for the estimate ([`DEFAULT_MIN_BIN_LABELS`]).
    pub min_bin_labels: u64,
}

impl Default for QualityOptions {
    fn default() -> Self {
        QualityOptions {
            reference: None,
            threshold: 0.5,
            min_label_age_ms: 0,
            min_bin_labels: DEFAULT_MIN_BIN_LABELS,
        }
    }
}

/// Quality per group with its windows: what `modelwatch quality --format json` prints and
/// `GET /api/v1/quality` answers.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QualityDocument {
    /// The predictions measured, `[from, to)` in ms: the window asked for, ended early so
    /// that every cohort's labels are at least `min_label_age_ms` old.
    pub window: [i64; 2],
    /// The window asked for.
    pub requested_window: [i64; 2],
    /// The labels' maturity asked for, ms.
    pub min_label_age_ms: i64,
    /// The labelled window the estimate is calibrated on.
    pub reference: Option<[i64; 2]>,
    /// Confidence from which a prediction is positive.
    pub threshold: f64,
    /// Labels a calibration bin needs for an estimate.
    pub min_bin_labels: u64,
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

/// The window of predictions whose labels are `min_label_age_ms` old at `now_ms`:
/// `[from, min(to, now - age))`, or an error naming both when none is. Without a minimum
/// age the window is kept as it is (even one in the future). A stored interval counts whole
/// when it starts before the cut (the agent's interval, 10 s by default: the cut is that
/// fine; an import with `--interval 1d` makes it a day).
pub fn matured(window: (i64, i64), now_ms: i64, min_label_age_ms: i64) -> Result<(i64, i64), QueryError> {
    if min_label_age_ms < 0 {
        return Err(QueryError::BadRange(format!("the minimum label age {min_label_age_ms} ms is negative")));
    }
    if min_label_age_ms == 0 {
        return Ok(window);
    }
    let cut = now_ms.saturating_sub(min_label_age_ms);
    let end = window.1.min(cut);
    if end <= window.0 {
        return Err(QueryError::BadRange(format!(
            "no prediction in the window is old enough: labels must be {} old, so predictions must \
             be made before {}, and the window starts at {}; widen the window or lower the minimum \
             label age",
            crate::time::duration_words(min_label_age_ms),
            crate::time::rfc3339(cut),
            crate::time::rfc3339(window.0)
        )));
    }
    Ok((window.0, end))
}

/// Realised quality per group of the predictions made in `[from_ms, to_ms)`, with coverage
/// and label delay, and the estimate from a calibration fitted on `opts.reference` when
/// given. The window is taken as it is (see [`report`] for the maturity cut).
pub fn quality(
    store: &Store,
    matchers: &[Matcher],
    by: &[String],
    from_ms: i64,
    to_ms: i64,
    opts: &QualityOptions,
) -> Result<Vec<QualityRow>, QueryError> {
    let pos = distribution(store, "confidence_positive", matchers, by, from_ms, to_ms)?;
    let neg = distribution(store, "confidence_negative", matchers, by, from_ms, to_ms)?;
    let all = distribution(store, "confidence", matchers, by, from_ms, to_ms)?;
    let delay = distribution(store, "label_delay_seconds", matchers, by, from_ms, to_ms)?;
    let calibration = match opts.reference {
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
        .map(|g| {
            let realised = realised(pos.get(g), neg.get(g), opts.threshold);
            let predictions = all.get(g).map_or(0.0, |d| d.count as f64);
            let estimate = calibration.as_ref().map(|(rp, rn)| {
                Calibration::fit(rp.get(g), rn.get(g)).estimate(
                    all.get(g),
                    opts.threshold,
                    opts.min_bin_labels,
                )
            });
            QualityRow {
                tags: g.clone(),
                predictions,
                coverage: if predictions > 0.0 { realised.n / predictions } else { f64::NAN },
                label_delay: delay.get(g).filter(|d| d.count > 0).map(|d| LabelDelay {
                    labels: d.count as f64,
                    p50_s: d.quantile(0.5).unwrap_or(f64::NAN),
                    p90_s: d.quantile(0.9).unwrap_or(f64::NAN),
                    max_s: d.max.unwrap_or(f64::NAN),
                }),
                realised,
                estimated: estimate.clone().and_then(Result::ok),
                estimate_refused: estimate.and_then(Result::err),
            }
        })
        .collect())
}

/// The quality report of the predictions made in `window` whose labels are
/// `opts.min_label_age_ms` old at `now_ms`, per group of `by`.
pub fn report(
    store: &Store,
    matchers: &[Matcher],
    by: &[String],
    window: (i64, i64),
    now_ms: i64,
    opts: &QualityOptions,
) -> Result<QualityDocument, QueryError> {
    let (from, to) = matured(window, now_ms, opts.min_label_age_ms)?;
    Ok(QualityDocument {
        window: [from, to],
        requested_window: [window.0, window.1],
        min_label_age_ms: opts.min_label_age_ms,
        reference: opts.reference.map(|r| [r.0, r.1]),
        threshold: opts.threshold,
        min_bin_labels: opts.min_bin_labels,
        groups: quality(store, matchers, by, from, to, opts)?,
    })
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
        assert_eq!((q.tp, q.fp, q.fn_, q.tn), (8.0, 1.0, 2.0, 9.0));
    }

    #[test]
    fn f1_is_zero_where_scikit_learn_says_zero_and_precision_zero_is_a_figure() {
        let mut pos = vec![0.0; CONFIDENCE_BINS];
        let mut neg = vec![0.0; CONFIDENCE_BINS];
        neg[900] = 5.0; // every positive prediction wrong
        pos[100] = 3.0;
        let q = from_bins(&pos, &neg, 0.5, true);
        assert_eq!((q.precision, q.recall, q.f1), (0.0, 0.0, 0.0));
        // No positive and no predicted positive: 0/0, which scikit-learn calls 0.
        let q = from_bins(
            &vec![0.0; CONFIDENCE_BINS],
            &{
                let mut n = vec![0.0; CONFIDENCE_BINS];
                n[1] = 4.0;
                n
            },
            0.5,
            true,
        );
        assert!(q.precision.is_nan() && q.recall.is_nan() && q.f1 == 0.0, "{q:?}");
        let empty = from_bins(&vec![0.0; CONFIDENCE_BINS], &vec![0.0; CONFIDENCE_BINS], 0.5, true);
        assert!(empty.f1.is_nan());
    }

    fn row(bins: &[(i64, u64)]) -> DistributionRow {
        DistributionRow {
            count: bins.iter().map(|b| b.1).sum(),
            buckets: bins.to_vec(),
            ..DistributionRow::empty(
                0,
                1,
                modelwatch_store::Resolution::Raw,
                Default::default(),
                modelwatch_store::Scheme::Confidence,
            )
        }
    }

    #[test]
    fn the_estimate_has_an_interval_and_is_refused_on_a_thin_bin_that_matters() {
        // Reference: 40 labels in each of bins 0.10..0.15 (10 % positive) and 0.90..0.95
        // (90 % positive); 2 labels in 0.50..0.55.
        let cal = Calibration::fit(
            Some(&row(&[(120, 4), (920, 36), (520, 1)])),
            Some(&row(&[(120, 36), (920, 4), (520, 1)])),
        );
        let window = row(&[(120, 500), (920, 500), (520, 4)]);
        let q = cal.estimate(Some(&window), 0.5, 5).expect("0.4 % of the window in the thin bin");
        for (v, ci) in [(q.precision, q.precision_ci), (q.recall, q.recall_ci), (q.f1, q.f1_ci)] {
            let (lo, hi) = ci.unwrap();
            assert!(lo < v && v < hi && hi - lo < 0.5, "{v} in {lo}..{hi}");
        }
        let more = row(&[(120, 500), (920, 500), (520, 40)]);
        let why = cal.estimate(Some(&more), 0.5, 5).unwrap_err();
        assert!(why.contains("0.50..0.55 holds 2 label(s)") && why.contains("fewer than the 5"), "{why}");
        assert!(cal.estimate(Some(&more), 0.5, 2).is_ok(), "a stated minimum of 2 accepts it");
        // More labels, a narrower interval.
        let wide = q.precision_ci.unwrap();
        let cal10 = Calibration::fit(
            Some(&row(&[(120, 40), (920, 360), (520, 10)])),
            Some(&row(&[(120, 360), (920, 40), (520, 10)])),
        );
        let narrow = cal10.estimate(Some(&window), 0.5, 5).unwrap().precision_ci.unwrap();
        assert!(narrow.1 - narrow.0 < wide.1 - wide.0, "{narrow:?} vs {wide:?}");
    }
}
