//! Chi-squared test (categorical features): the current counts against the reference's
//! proportions, as `scipy.stats.chisquare(f_obs=current, f_exp=reference shares × current
//! total)`; drift when p < α (0.05), after the correction across features.

use super::DriftConfig;
use super::sample::Sample;
use super::verdict::Measured;
use crate::stats::chi2_sf;

/// The chi-squared statistic of current counts against the reference's proportions (aligned
/// by category), and its degrees of freedom. A category never seen in the reference makes it
/// infinite (p = 0).
pub fn chi2_statistic(reference: &[f64], current: &[f64]) -> (f64, f64) {
    let (nr, nc): (f64, f64) = (reference.iter().sum(), current.iter().sum());
    let chi2: f64 = reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let e = r / nr.max(1.0) * nc;
            if e > 0.0 {
                (c - e).powi(2) / e
            } else if c > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .sum();
    (chi2, (reference.len().max(2) - 1) as f64)
}

pub(super) fn measure(sample: &Sample<'_>, cfg: &DriftConfig) -> Option<Measured> {
    let Sample::Categorical { reference, current, .. } = sample else { return None };
    let (chi2, df) = chi2_statistic(reference, current);
    Some(Measured::test(chi2, chi2_sf(chi2, df), cfg.alpha))
}
