//! Hellinger distance over the PSI bins or the categories. Threshold 0.1.

use super::DriftConfig;
use super::sample::Sample;
use super::verdict::Measured;

/// Hellinger distance of two sets of shares.
pub fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    (p.iter().zip(q).map(|(&x, &y)| ((x / sp).sqrt() - (y / sq).sqrt()).powi(2)).sum::<f64>() / 2.0).sqrt()
}

pub(super) fn measure(sample: &Sample<'_>, cfg: &DriftConfig) -> Option<Measured> {
    let (p, q) = sample.shares();
    Some(Measured::effect(hellinger(p, q), cfg.hellinger, cfg.hellinger))
}
