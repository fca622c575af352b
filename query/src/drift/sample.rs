//! What the statistics read of one feature: both windows as sorted points, their shares in
//! common bins (the PSI bins cut at the reference's quantiles, or the categories), and the
//! gaps between their CDFs.

use modelwatch_store::{DistributionRow, Scheme};

/// One feature's reference and current windows, as every statistic reads them.
pub(super) enum Sample<'a> {
    /// A numeric distribution (a feature or the confidence score).
    Numeric {
        /// The reference window's merged row.
        reference: &'a DistributionRow,
        /// The current window's merged row.
        current: &'a DistributionRow,
        /// [`points`] of the reference.
        reference_points: Vec<(f64, f64)>,
        /// [`points`] of the current window.
        current_points: Vec<(f64, f64)>,
        /// Both sides' shares in the PSI bins ([`binned_shares`]).
        shares: (Vec<f64>, Vec<f64>),
        /// The reference's standard deviation.
        reference_std: f64,
        /// `|Δmean| / reference_std` from the exact moments: a lower bound of the normed
        /// Wasserstein distance whatever the buckets' width (NaN when a moment is not
        /// finite).
        moment_bound: f64,
    },
    /// Category counts, aligned on the union of both windows' categories.
    Categorical {
        /// Reference count per category.
        reference: Vec<f64>,
        /// Current count per category.
        current: Vec<f64>,
        /// Both sides' smoothed shares ([`shares`]).
        shares: (Vec<f64>, Vec<f64>),
    },
}

impl Sample<'_> {
    /// The reference's and the current window's shares in the common bins.
    pub(super) fn shares(&self) -> (&[f64], &[f64]) {
        match self {
            Sample::Numeric { shares, .. } | Sample::Categorical { shares, .. } => (&shares.0, &shares.1),
        }
    }
}

/// A numeric distribution as sorted (value, count) points: each bucket at its
/// representative value, the one quantiles report.
pub fn points(r: &DistributionRow) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = r
        .buckets
        .iter()
        .map(|&(k, c)| {
            let x = match r.scheme {
                Scheme::Sketch => modelwatch_agent::layout::sketch_representative(k as i32),
                s => {
                    let (lo, hi) = s.bounds(k);
                    if hi.is_finite() { (lo + hi) / 2.0 } else { lo }
                }
            };
            (x, c as f64)
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The width of the bucket that holds the distribution's median: how finely the buckets
/// resolve its middle. `None` when it holds nothing.
pub(super) fn median_bucket_width(r: &DistributionRow) -> Option<f64> {
    let mut buckets: Vec<(f64, f64, u64)> = r
        .buckets
        .iter()
        .map(|&(k, c)| {
            let (lo, hi) = r.scheme.bounds(k);
            (lo, hi, c)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = buckets.iter().map(|b| b.2).sum();
    let mut cum = 0;
    for (lo, hi, c) in buckets {
        cum += c;
        if 2 * cum >= total && total > 0 {
            return Some(if hi.is_finite() && lo.is_finite() { hi - lo } else { f64::INFINITY });
        }
    }
    None
}

/// The reference's quantile cut points (`bins - 1` of them, distinct), as np.quantile would
/// place them on the bucketed values.
fn quantile_edges(reference: &[(f64, f64)], bins: usize) -> Vec<f64> {
    let total: f64 = reference.iter().map(|p| p.1).sum();
    let mut edges = Vec::new();
    let mut cum = 0.0;
    let mut j = 1;
    for &(x, c) in reference {
        cum += c;
        while j < bins && cum >= total * j as f64 / bins as f64 {
            edges.push(x);
            j += 1;
        }
    }
    edges.dedup();
    edges
}

/// Counts of each side in the bins `(-inf, e1), [e1, e2), ... [ek, inf)`.
fn binned(points: &[(f64, f64)], edges: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; edges.len() + 1];
    for &(x, c) in points {
        out[edges.partition_point(|&e| e <= x)] += c;
    }
    out
}

/// Counts as shares of their total.
pub(super) fn shares(counts: &[f64]) -> Vec<f64> {
    let n: f64 = counts.iter().sum();
    // Evidently's smoothing: an empty bin holds 0.0001 of its side.
    counts.iter().map(|&c| if c > 0.0 { c / n.max(1.0) } else { 1e-4 }).collect()
}

/// The shares of the reference and the current distribution in the PSI bins (cut at the
/// reference's quantiles), smoothed as PSI, JS and Hellinger read them.
pub fn binned_shares(
    reference: &DistributionRow,
    current: &DistributionRow,
    bins: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (r, c) = (points(reference), points(current));
    let edges = quantile_edges(&r, bins.max(2));
    (shares(&binned(&r, &edges)), shares(&binned(&c, &edges)))
}

/// `(x, F_a(x) − F_b(x))` at every distinct value of either point set, in order: the two
/// empirical CDFs' gap after each step. Empty when either side holds nothing.
pub(super) fn cdf_gaps(a: &[(f64, f64)], b: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let (na, nb): (f64, f64) = (a.iter().map(|p| p.1).sum(), b.iter().map(|p| p.1).sum());
    if na == 0.0 || nb == 0.0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    let (mut fa, mut fb) = (0.0f64, 0.0f64);
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(p), Some(q)) => p.0.min(q.0),
            (Some(p), None) => p.0,
            (None, Some(q)) => q.0,
            (None, None) => break,
        };
        while i < a.len() && a[i].0 == x {
            fa += a[i].1 / na;
            i += 1;
        }
        while j < b.len() && b[j].0 == x {
            fb += b[j].1 / nb;
            j += 1;
        }
        out.push((x, fa - fb));
    }
    out
}
