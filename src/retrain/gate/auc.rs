//! The AUC gain, judged on a paired interval: DeLong, DeLong & Clarke-Pearson (1988),
//! "Comparing the areas under two or more correlated receiver operating characteristic
//! curves", computed in O(n log n) from mid-ranks as Sun & Xu (2014) do.
//!
//! Both models score the same hold-out rows, so their AUCs are correlated; the variance of
//! the difference takes the covariance into account, which makes the interval far
//! narrower than two independent ones (and honest, unlike ignoring the pairing).

use super::{Criterion, GainKind, GateConfig, Verdict};
use serde::{Deserialize, Serialize};

/// Two AUCs on the same rows and the distribution of their difference.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedAuc {
    /// The control's AUC.
    pub control: f64,
    /// The challenger's AUC.
    pub challenger: f64,
    /// challenger − control.
    pub diff: f64,
    /// The standard error of the difference (DeLong).
    pub se: f64,
    /// Positive rows.
    pub positives: usize,
    /// Negative rows.
    pub negatives: usize,
}

impl PairedAuc {
    /// The lower bound of the one-sided interval of the difference at the quantile `z`.
    pub fn lower(&self, z: f64) -> f64 {
        self.diff - z * self.se
    }
}

/// Mid-ranks (1-based, ties averaged) of `values`; NaN ranks lowest, as in
/// [`crate::retrain::auc`].
fn midranks(values: &[f64]) -> Vec<f64> {
    let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_unstable_by(|&a, &b| key(values[a]).total_cmp(&key(values[b])));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && key(values[order[j]]) == key(values[order[i]]) {
            j += 1;
        }
        let mid = (i + 1 + j) as f64 / 2.0;
        for &k in &order[i..j] {
            ranks[k] = mid;
        }
        i = j;
    }
    ranks
}

/// The structural components of one model's AUC: V10 per positive, V01 per negative.
fn components(scores: &[f64], labels: &[bool]) -> (Vec<f64>, Vec<f64>) {
    let pos: Vec<f64> = scores.iter().zip(labels).filter(|r| *r.1).map(|r| *r.0).collect();
    let neg: Vec<f64> = scores.iter().zip(labels).filter(|r| !*r.1).map(|r| *r.0).collect();
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let all: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    let (tz, tx, ty) = (midranks(&all), midranks(&pos), midranks(&neg));
    // V10_i: the share of negatives positive i beats (ties half) = (rank among all − rank
    // among positives) / n; V01_j likewise for the positives negative j loses to.
    let v10 = (0..pos.len()).map(|i| (tz[i] - tx[i]) / n).collect();
    let v01 = (0..neg.len()).map(|j| 1.0 - (tz[pos.len() + j] - ty[j]) / m).collect();
    (v10, v01)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The sample covariance (ddof 1) of two equally long series; 0 for fewer than two.
fn cov(a: &[f64], b: &[f64]) -> f64 {
    if a.len() < 2 {
        return 0.0;
    }
    let (ma, mb) = (mean(a), mean(b));
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (a.len() - 1) as f64
}

/// The paired DeLong comparison of two models' scores of the same rows; `None` without
/// both classes or when the lengths differ.
pub fn delong(control: &[f64], challenger: &[f64], labels: &[bool]) -> Option<PairedAuc> {
    if control.len() != labels.len() || challenger.len() != labels.len() {
        return None;
    }
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let (a10, a01) = components(control, labels);
    let (b10, b01) = components(challenger, labels);
    let (m, n) = (positives as f64, negatives as f64);
    let var_a = cov(&a10, &a10) / m + cov(&a01, &a01) / n;
    let var_b = cov(&b10, &b10) / m + cov(&b01, &b01) / n;
    let cov_ab = cov(&a10, &b10) / m + cov(&a01, &b01) / n;
    let (auc_a, auc_b) = (mean(&a10), mean(&b10));
    Some(PairedAuc {
        control: auc_a,
        challenger: auc_b,
        diff: auc_b - auc_a,
        // Rounding can leave a hair below zero for identical scores.
        se: (var_a + var_b - 2.0 * cov_ab).max(0.0).sqrt(),
        positives,
        negatives,
    })
}

/// The `auc_gain` criterion: passes when the lower bound of the one-sided interval of
/// challenger − control reaches the required gain.
pub fn auc_gain(config: &GateConfig, control: &[f64], challenger: &[f64], labels: &[bool]) -> Criterion {
    let name = "auc_gain".to_string();
    let Some(p) = delong(control, challenger, labels) else {
        return Criterion {
            name,
            verdict: Verdict::Fail,
            summary: "AUC is undefined on the hold-out set: it needs both positive and negative labels"
                .into(),
            figures: serde_json::json!({ "rows": labels.len() }),
            findings: Vec::new(),
        };
    };
    let z = config.z();
    let lower = p.lower(z);
    let required = match config.auc_gain_kind {
        GainKind::Absolute => config.min_auc_gain,
        GainKind::Relative => config.min_auc_gain * p.control,
    };
    let verdict = if lower >= required { Verdict::Pass } else { Verdict::Fail };
    let pct = config.percent();
    Criterion {
        name,
        verdict,
        summary: format!(
            "AUC {:.4} vs control {:.4}: gain {:+.4}, {pct} % lower bound {:+.4} {} required {:+.4} (DeLong se {:.4})",
            p.challenger,
            p.control,
            p.diff,
            lower,
            if verdict == Verdict::Pass { ">=" } else { "<" },
            required,
            p.se
        ),
        figures: serde_json::json!({
            "control_auc": p.control, "challenger_auc": p.challenger, "gain": p.diff, "se": p.se,
            "lower_bound": lower, "confidence": config.confidence, "required_gain": required,
            "gain_kind": config.auc_gain_kind, "positives": p.positives, "negatives": p.negatives,
        }),
        findings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::Rng;

    /// The components straight from their definition, O(m·n): the check of the mid-rank
    /// shortcut.
    fn brute(control: &[f64], challenger: &[f64], labels: &[bool]) -> (f64, f64, f64) {
        let psi = |x: f64, y: f64| {
            if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            }
        };
        let side = |s: &[f64]| {
            let pos: Vec<f64> = s.iter().zip(labels).filter(|r| *r.1).map(|r| *r.0).collect();
            let neg: Vec<f64> = s.iter().zip(labels).filter(|r| !*r.1).map(|r| *r.0).collect();
            let v10: Vec<f64> =
                pos.iter().map(|&x| neg.iter().map(|&y| psi(x, y)).sum::<f64>() / neg.len() as f64).collect();
            let v01: Vec<f64> =
                neg.iter().map(|&y| pos.iter().map(|&x| psi(x, y)).sum::<f64>() / pos.len() as f64).collect();
            (v10, v01)
        };
        let ((a10, a01), (b10, b01)) = (side(control), side(challenger));
        let (m, n) = (a10.len() as f64, a01.len() as f64);
        let var = (cov(&a10, &a10) + cov(&b10, &b10) - 2.0 * cov(&a10, &b10)) / m
            + (cov(&a01, &a01) + cov(&b01, &b01) - 2.0 * cov(&a01, &b01)) / n;
        (mean(&a10), mean(&b10), var.sqrt())
    }

    #[test]
    fn the_rank_shortcut_agrees_with_the_definition_ties_included() {
        let mut rng = Rng::seeded(11);
        for round in 0..20 {
            let n = 5 + round * 7;
            let labels: Vec<bool> = (0..n).map(|i| i % 3 == 0 || rng.u() < 0.2).collect();
            // Rounded scores: many ties, within and across classes.
            let a: Vec<f64> = labels
                .iter()
                .map(|&y| ((rng.normal() + f64::from(u8::from(y))) * 4.0).round() / 4.0)
                .collect();
            let b: Vec<f64> =
                a.iter().map(|&x| if rng.u() < 0.3 { (x + rng.normal()).round() } else { x }).collect();
            let p = delong(&a, &b, &labels).unwrap();
            let (ca, cb, se) = brute(&a, &b, &labels);
            assert!((p.control - ca).abs() < 1e-12 && (p.challenger - cb).abs() < 1e-12, "round {round}");
            assert!((p.se - se).abs() < 1e-12, "round {round}: {} vs {se}", p.se);
            let pairs: Vec<(f64, bool)> = a.iter().copied().zip(labels.iter().copied()).collect();
            assert!((p.control - crate::retrain::auc(&pairs).unwrap()).abs() < 1e-12);
        }
    }

    #[test]
    fn identical_models_have_no_spread_and_one_class_no_answer() {
        let s = [0.1, 0.4, 0.35, 0.8];
        let y = [false, false, true, true];
        let p = delong(&s, &s, &y).unwrap();
        assert_eq!((p.diff, p.se), (0.0, 0.0));
        assert!(delong(&s, &s, &[true; 4]).is_none());
        assert!(delong(&s, &s[..3], &y).is_none());
        let c = auc_gain(&GateConfig::default(), &s, &s, &[false; 4]);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.summary.contains("both positive and negative"), "{}", c.summary);
    }

    #[test]
    fn a_clear_gain_passes_and_a_gain_inside_the_noise_fails() {
        // Positives 1..=50 above negatives for the challenger; the control mixes them.
        let mut rng = Rng::seeded(3);
        let labels: Vec<bool> = (0..4000).map(|i| i % 10 < 3).collect();
        let signal = |y: bool, strength: f64, rng: &mut Rng| rng.normal() + if y { strength } else { 0.0 };
        let control: Vec<f64> = labels.iter().map(|&y| signal(y, 1.0, &mut rng)).collect();
        let better: Vec<f64> = labels.iter().map(|&y| signal(y, 1.6, &mut rng)).collect();
        let config = GateConfig::default();
        let pass = auc_gain(&config, &control, &better, &labels);
        assert_eq!(pass.verdict, Verdict::Pass, "{}", pass.summary);
        // The same model again, with a little noise: a gain near zero, never 0.02 for sure.
        let same: Vec<f64> = control.iter().map(|&s| s + 0.05 * rng.normal()).collect();
        let fail = auc_gain(&config, &control, &same, &labels);
        assert_eq!(fail.verdict, Verdict::Fail, "{}", fail.summary);
        assert!(fail.figures["lower_bound"].as_f64().unwrap() < 0.02);
        // Relative: 2 % of the control's AUC.
        let rel = GateConfig { auc_gain_kind: GainKind::Relative, ..GateConfig::default() };
        let c = auc_gain(&rel, &control, &better, &labels);
        let required = c.figures["required_gain"].as_f64().unwrap();
        assert!((required - 0.02 * c.figures["control_auc"].as_f64().unwrap()).abs() < 1e-15);
    }

    #[test]
    fn the_confidence_is_printed_to_a_tenth() {
        let s = [0.1, 0.4, 0.35, 0.8];
        let y = [false, false, true, true];
        let c = GateConfig { confidence: 0.999, ..GateConfig::default() };
        assert!(auc_gain(&c, &s, &s, &y).summary.contains("99.9 % lower bound"));
        assert!(auc_gain(&GateConfig::default(), &s, &s, &y).summary.contains(" 95 % lower bound"));
    }
}
