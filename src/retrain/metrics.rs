//! A model's hold-out figures, overall and per segment: what the registry records with a
//! version ([`modelwatch_store::registry::Metrics`]) and what the gate compares.
//!
//! Exact, from the scores themselves (the store's quality metrics work from confidence
//! bins instead): AUC as the Mann–Whitney statistic with ties counted half, as
//! scikit-learn's `roc_auc_score`; precision, recall and F1 of the predictions
//! `score >= threshold` (the agent's rule for a positive prediction; scikit-learn's
//! `predict` puts a score of exactly 0.5 in the negative class, so pass those predictions
//! to its `precision_score` to compare); the mean log loss with probabilities clipped to
//! `[ε, 1 - ε]`, ε the machine epsilon, as scikit-learn's `log_loss` since 1.5.
//! A figure that is undefined on the rows (AUC with one class, precision with no positive
//! prediction, F1 without both) is left out, where scikit-learn answers 0 with a warning:
//! an absent figure cannot be mistaken for a measured zero.

use super::Model;
use modelwatch_store::examples::ExampleSet;
use modelwatch_store::registry::Metrics;
use std::collections::BTreeMap;

/// The figures of `model` on `set` at `threshold`, overall and for each segment.
pub fn holdout_metrics(model: &dyn Model, set: &ExampleSet, threshold: f64) -> Metrics {
    let scored: Vec<(f64, bool, &str)> =
        set.rows.iter().map(|e| (model.score(&e.features), e.label, e.segment.as_str())).collect();
    let mut segments: BTreeMap<String, Vec<(f64, bool)>> = BTreeMap::new();
    for &(s, y, seg) in &scored {
        segments.entry(seg.to_string()).or_default().push((s, y));
    }
    let all: Vec<(f64, bool)> = scored.iter().map(|&(s, y, _)| (s, y)).collect();
    Metrics {
        overall: figures(&all, threshold),
        segments: segments.into_iter().map(|(k, v)| (k, figures(&v, threshold))).collect(),
    }
}

/// rows, positives, auc, precision, recall, f1, log_loss (see the module documentation for
/// which may be absent).
pub fn figures(scored: &[(f64, bool)], threshold: f64) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let positives = scored.iter().filter(|r| r.1).count();
    m.insert("rows".to_string(), scored.len() as f64);
    m.insert("positives".to_string(), positives as f64);
    if scored.is_empty() {
        return m;
    }
    if let Some(auc) = auc(scored) {
        m.insert("auc".to_string(), auc);
    }
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut log_loss = 0.0;
    for &(s, y) in scored {
        // A NaN score predicts nothing and costs the clipped maximum.
        let predicted = s >= threshold;
        tp += usize::from(predicted && y);
        fp += usize::from(predicted && !y);
        fn_ += usize::from(!predicted && y);
        let q =
            if s.is_nan() { if y { 0.0 } else { 1.0 } } else { s }.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
        log_loss -= if y { q.ln() } else { (1.0 - q).ln() };
    }
    m.insert("log_loss".to_string(), log_loss / scored.len() as f64);
    let precision = (tp + fp > 0).then(|| tp as f64 / (tp + fp) as f64);
    let recall = (tp + fn_ > 0).then(|| tp as f64 / (tp + fn_) as f64);
    if let Some(p) = precision {
        m.insert("precision".to_string(), p);
    }
    if let Some(r) = recall {
        m.insert("recall".to_string(), r);
    }
    if let (Some(p), Some(r)) = (precision, recall) {
        m.insert("f1".to_string(), if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 });
    }
    m
}

/// The area under the ROC curve: the chance that a random positive scores above a random
/// negative, ties counting half; `None` without both classes. NaN scores rank lowest.
pub fn auc(scored: &[(f64, bool)]) -> Option<f64> {
    let pos = scored.iter().filter(|r| r.1).count();
    let neg = scored.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
    let mut sorted: Vec<(f64, bool)> = scored.iter().map(|&(s, y)| (key(s), y)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The sum of the positives' mid-ranks (1-based), over runs of tied scores.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let mid = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid * sorted[i..j].iter().filter(|r| r.1).count() as f64;
        i = j;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half_and_needs_both_classes() {
        assert_eq!(auc(&[(0.9, true), (0.1, false)]), Some(1.0));
        assert_eq!(auc(&[(0.1, true), (0.9, false)]), Some(0.0));
        assert_eq!(auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        // Positives 0.8, 0.4; negatives 0.4, 0.2: pairs won 1 + 1 + 0.5 + 1 of 4.
        assert_eq!(auc(&[(0.8, true), (0.4, true), (0.4, false), (0.2, false)]), Some(0.875));
        assert_eq!(auc(&[(0.8, true)]), None);
        assert_eq!(auc(&[]), None);
    }

    #[test]
    fn a_confident_miss_costs_what_scikit_learn_charges() {
        // sklearn.metrics.log_loss([1, 0, 1, 0, 0], expit([1, -1, 0, 0, 40])) (1.9.1; it
        // clips to the machine epsilon): 7.6112942250546975.
        let s = |z: f64| 1.0 / (1.0 + (-z).exp());
        let m =
            figures(&[(s(1.0), true), (s(-1.0), false), (0.5, true), (0.5, false), (s(40.0), false)], 0.5);
        assert!((m["log_loss"] - 7.6112942250546975).abs() < 1e-12, "{}", m["log_loss"]);
    }

    #[test]
    fn undefined_figures_are_absent_not_made_up() {
        let m = figures(&[(0.2, true), (0.1, true)], 0.5);
        assert_eq!(m["recall"], 0.0);
        assert!(!m.contains_key("precision") && !m.contains_key("auc") && !m.contains_key("f1"));
        let m = figures(&[], 0.5);
        assert_eq!(m.len(), 2);
        let m = figures(&[(0.7, true), (0.6, false), (0.5, true), (f64::NAN, false)], 0.5);
        assert_eq!((m["precision"], m["recall"]), (2.0 / 3.0, 1.0));
        assert!(m["log_loss"].is_finite());
    }
}
