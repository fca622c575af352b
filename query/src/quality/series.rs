//! Quality over time: realised and estimated quality per window (the dashboard's `quality`
//! target).

use super::{Quality, QualityOptions, quality};
use crate::engine::{QueryError, Series};
use crate::parse::Matcher;
use modelwatch_store::Store;
use std::collections::BTreeMap;

crate::names::named_enum! {
    /// A quality figure.
    pub enum Statistic("quality statistic") {
        /// Precision at the threshold.
        Precision = "precision",
        /// Recall at the threshold.
        Recall = "recall",
        /// F1 at the threshold.
        F1 = "f1",
        /// ROC AUC.
        Auc = "auc",
        /// True positives (expected, for an estimate).
        Tp = "tp",
        /// False positives.
        Fp = "fp",
        /// False negatives.
        Fn = "fn",
        /// True negatives.
        Tn = "tn",
    }
}

impl Statistic {
    /// This figure of `q`.
    pub fn of(self, q: &Quality) -> f64 {
        match self {
            Statistic::Precision => q.precision,
            Statistic::Recall => q.recall,
            Statistic::F1 => q.f1,
            Statistic::Auc => q.auc,
            Statistic::Tp => q.tp,
            Statistic::Fp => q.fp,
            Statistic::Fn => q.fn_,
            Statistic::Tn => q.tn,
        }
    }
}

crate::names::named_enum! {
    /// Which quality a series shows: from feedback, estimated from the confidence, or both
    /// (each series tagged `kind`).
    pub enum Show("quality source") {
        /// Realised and estimated.
        Both = "both",
        /// From feedback only.
        Realised = "realised",
        /// Estimated only.
        Estimated = "estimated",
    }
}

impl Show {
    fn realised(self) -> bool {
        self != Show::Estimated
    }

    fn estimated(self) -> bool {
        self != Show::Realised
    }
}

/// What a quality series follows, window by window; by default precision, realised and
/// estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QualitySeries {
    /// The figure.
    pub statistic: Statistic,
    /// Realised, estimated or both.
    pub show: Show,
}

impl Default for QualitySeries {
    fn default() -> Self {
        QualitySeries { statistic: Statistic::Precision, show: Show::Both }
    }
}

/// Per window, the quality of each group of `by` among the series `filters` select, at
/// `threshold`, with the estimate calibrated on `reference` (a labelled range): a series per
/// group and kind (`realised`, `estimated`; tag `kind`). A window without labels has no
/// realised point; a figure that is not finite has no point.
pub fn series(
    store: &Store,
    filters: &[Matcher],
    by: &[String],
    which: QualitySeries,
    windows: &[(i64, i64)],
    reference: (i64, i64),
    threshold: f64,
) -> Result<Vec<Series>, QueryError> {
    let mut out: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
    for &(from, to) in windows {
        let opts = QualityOptions { reference: Some(reference), threshold, ..QualityOptions::default() };
        for r in quality(store, filters, by, from, to, &opts)? {
            let mut kinds = Vec::new();
            if which.show.realised() && r.realised.n > 0.0 {
                kinds.push((Show::Realised, which.statistic.of(&r.realised)));
            }
            if which.show.estimated()
                && let Some(e) = &r.estimated
            {
                kinds.push((Show::Estimated, which.statistic.of(e)));
            }
            for (kind, v) in kinds {
                if v.is_finite() {
                    let mut tags = r.tags.clone();
                    tags.insert("kind".into(), kind.as_str().into());
                    out.entry(tags).or_default().push((from, v));
                }
            }
        }
    }
    Ok(out.into_iter().map(|(tags, points)| Series { tags, points, buckets: Vec::new() }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{HOUR, Recorder, T0};
    use modelwatch_agent::{Agent, Prediction};
    use std::sync::Arc;
    use std::time::Duration;

    /// Two hours: in each, 10 predictions at 0.9 and 10 at 0.2; in the first, feedback of
    /// 8 positives at 0.9, 2 positives at 0.2 and 10 negatives at 0.2.
    fn store() -> (tempfile::TempDir, Arc<Store>) {
        let rec = Recorder::new(Agent::builder("pii").segments(["email"]), Duration::from_secs(3_600));
        let h = rec.handle();
        for hour in 0..2i64 {
            for c in [0.9, 0.2] {
                for _ in 0..10 {
                    h.record(&Prediction::new("email", Duration::from_millis(2), c));
                }
            }
            if hour == 0 {
                for (c, label, n) in [(0.9, true, 8), (0.2, true, 2), (0.2, false, 10)] {
                    for _ in 0..n {
                        h.feedback("email", c, label);
                    }
                }
            }
            rec.advance_to(T0 + (hour + 1) * HOUR);
        }
        rec.finish()
    }

    #[test]
    fn realised_and_estimated_quality_per_window_and_kind() {
        let (_dir, store) = store();
        let windows = [(T0, T0 + HOUR), (T0 + HOUR, T0 + 2 * HOUR)];
        let reference = (T0, T0 + HOUR);
        let both = series(&store, &[], &[], QualitySeries::default(), &windows, reference, 0.5).unwrap();
        let kinds: Vec<&str> = both.iter().map(|s| s.tags["kind"].as_str()).collect();
        assert_eq!(kinds, ["estimated", "realised"]);
        // Realised precision: 8 of the 8 predicted positive; no labels in the second hour.
        assert_eq!(both[1].points, [(T0, 1.0)]);
        // Estimated on each hour from the same calibration: the same both hours, and each the
        // report's own number.
        let opts =
            QualityOptions { reference: Some(reference), min_bin_labels: 0, ..QualityOptions::default() };
        let row = &quality(&store, &[], &[], T0 + HOUR, T0 + 2 * HOUR, &opts).unwrap()[0];
        let e = row.estimated.as_ref().unwrap().precision;
        assert_eq!(both[0].points, [(T0, e), (T0 + HOUR, e)]);
        let recall =
            QualitySeries { statistic: "recall".parse().unwrap(), show: "realised".parse().unwrap() };
        let r = series(&store, &[], &[], recall, &windows, reference, 0.5).unwrap();
        assert_eq!((r.len(), r[0].points.as_slice()), (1, &[(T0, 0.8)][..]));
    }

    #[test]
    fn selectors_parse_their_names_and_list_the_valid_ones() {
        assert_eq!(
            Statistic::ALL.map(Statistic::as_str),
            ["precision", "recall", "f1", "auc", "tp", "fp", "fn", "tn"]
        );
        assert_eq!(Show::ALL.map(Show::as_str), ["both", "realised", "estimated"]);
        let e = "accuracy".parse::<Statistic>().unwrap_err().to_string();
        assert!(e.contains("\"accuracy\"") && e.contains("precision, recall, f1, auc, tp"), "{e}");
    }
}
