//! Normed Wasserstein distance (numeric features): W1 divided by the reference's standard
//! deviation, the effect size of numeric features (as Evidently does past 1,000 rows).
//! Threshold 0.1.
//!
//! Read from the buckets, W1 cannot see a change smaller than a bucket: the sketch's buckets
//! are 1.6–3.1 % of |x| wide, which for a latitude of 52.52 ± 0.05 is 1, or 20 σ, and both windows
//! then fill the same bucket or two. But W1 is at least the distance between the means
//! (|E[X] − E[Y]| ≤ E|X − Y| for any coupling), and the store keeps the exact means and
//! standard deviations, so the effect size is the larger of the binned figure and
//! |Δmean| / σ.

use super::DriftConfig;
use super::sample::{Sample, cdf_gaps};
use super::verdict::Measured;

/// The W1 distance of two point sets ([`points`](super::points)): the area between their
/// CDFs.
pub fn wasserstein_distance(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    let gaps = cdf_gaps(a, b);
    gaps.windows(2).fold(0.0, |w, s| w + s[0].1.abs() * (s[1].0 - s[0].0))
}

/// W1 over the reference's standard deviation (infinite when the reference is constant and
/// the current window is not).
fn normed(w: f64, reference_std: f64) -> f64 {
    if reference_std > 0.0 {
        w / reference_std
    } else if w > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

pub(super) fn measure(sample: &Sample<'_>, cfg: &DriftConfig) -> Option<Measured> {
    let Sample::Numeric { reference_points, current_points, reference_std, moment_bound, .. } = sample else {
        return None;
    };
    let binned = normed(wasserstein_distance(reference_points, current_points), *reference_std);
    // `f64::max` ignores a NaN side (a moment that overflowed).
    let w = binned.max(*moment_bound);
    Some(Measured::effect(w, cfg.wasserstein, cfg.wasserstein))
}
