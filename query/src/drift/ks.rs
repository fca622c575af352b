//! Kolmogorov–Smirnov (numeric features): the statistic D, the largest gap between the two
//! CDFs read at every bucket, and its asymptotic p-value from the counts
//! (`kstwobign.sf(√(nm/(n+m))·D)`); drift when p < α (0.05), after the correction across
//! features.

use super::DriftConfig;
use super::sample::{Sample, cdf_gaps};
use super::verdict::Measured;
use crate::stats::ks_p_value;

/// The KS statistic D of two point sets ([`points`](super::points)): the largest gap
/// between their CDFs.
pub fn ks_statistic(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    cdf_gaps(a, b).iter().fold(0.0f64, |d, &(_, gap)| d.max(gap.abs()))
}

pub(super) fn measure(sample: &Sample<'_>, cfg: &DriftConfig) -> Option<Measured> {
    let Sample::Numeric { reference, current, reference_points, current_points, .. } = sample else {
        return None;
    };
    let d = ks_statistic(reference_points, current_points);
    Some(Measured::test(d, ks_p_value(d, reference.count, current.count), cfg.alpha))
}
