//! Jensen–Shannon distance (natural log, as scipy and Evidently) over the PSI bins or the
//! categories; the effect size of categorical features. Threshold 0.1.

use super::DriftConfig;
use super::sample::Sample;
use super::verdict::Measured;

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

pub(super) fn measure(sample: &Sample<'_>, cfg: &DriftConfig) -> Option<Measured> {
    let (p, q) = sample.shares();
    Some(Measured::effect(js_distance(p, q), cfg.js, cfg.js))
}
