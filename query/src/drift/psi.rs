//! Population stability index: `Σ (q − p) ln(q / p)` over the PSI bins (cut at the
//! reference's quantiles) or the categories. Thresholds 0.1 (warning) and 0.2 (drift).

use super::DriftConfig;
use super::sample::Sample;
use super::verdict::Measured;

/// PSI of two sets of bin shares.
pub fn psi(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).map(|(&p, &q)| (q - p) * (q / p).ln()).sum()
}

pub(super) fn measure(sample: &Sample<'_>, cfg: &DriftConfig) -> Option<Measured> {
    let (p, q) = sample.shares();
    Some(Measured::effect(psi(p, q), cfg.psi_warning, cfg.psi_drift))
}
