//! Confidence bins: fixed-width bins over [0, 1], fine enough that precision, recall and F1
//! at any threshold on a 0.001 grid, and AUC, come out of the merged histograms exactly.

/// Number of bins; bin `i` holds confidences in `[i / N, (i + 1) / N)`, the last bin also
/// holds 1.0.
#[cfg(not(loom))]
pub const CONFIDENCE_BINS: usize = 1000;
/// Shrunk under loom, so the model checker explores few cells.
#[cfg(loom)]
pub const CONFIDENCE_BINS: usize = 4;

/// The bin of a confidence, or `None` when it is NaN or outside [0, 1].
#[inline]
pub(crate) fn confidence_bin(c: f64) -> Option<usize> {
    if (0.0..=1.0).contains(&c) {
        Some(((c * CONFIDENCE_BINS as f64) as usize).min(CONFIDENCE_BINS - 1))
    } else {
        None
    }
}

/// A histogram of confidences with [`CONFIDENCE_BINS`] fixed bins. Histograms of separate
/// threads, intervals and processes merge by adding bins.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfidenceHistogram {
    bins: Box<[u64]>,
}

impl std::fmt::Debug for ConfidenceHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfidenceHistogram")
            .field("count", &self.count())
            .field("mean", &self.mean())
            .finish()
    }
}

impl Default for ConfidenceHistogram {
    fn default() -> Self {
        ConfidenceHistogram { bins: vec![0; CONFIDENCE_BINS].into_boxed_slice() }
    }
}

impl ConfidenceHistogram {
    /// The bin of a confidence in [0, 1]; `None` for NaN or a value outside.
    pub fn bin_of(c: f64) -> Option<usize> {
        confidence_bin(c)
    }

    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one confidence; returns false (and adds nothing) when it is not in [0, 1].
    pub fn record(&mut self, c: f64) -> bool {
        match confidence_bin(c) {
            Some(b) => {
                self.bins[b] += 1;
                true
            }
            None => false,
        }
    }

    /// Adds `n` confidences to bin `bin` (ignored when out of range).
    pub fn add_to_bin(&mut self, bin: usize, n: u64) {
        if bin >= CONFIDENCE_BINS {
            return;
        }
        self.bins[bin] += n;
    }

    /// The bin counts, lowest confidence first.
    pub fn bins(&self) -> &[u64] {
        &self.bins
    }

    /// The `[low, high)` confidence range of bin `i`.
    pub fn bin_bounds(i: usize) -> (f64, f64) {
        let n = CONFIDENCE_BINS as f64;
        (i as f64 / n, (i + 1) as f64 / n)
    }

    /// Number of confidences recorded.
    pub fn count(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// Mean confidence, from bin midpoints (within half a bin, 0.0005, of the exact mean).
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| {
            let s: f64 = self
                .bins
                .iter()
                .enumerate()
                .map(|(i, &c)| c as f64 * (i as f64 + 0.5) / CONFIDENCE_BINS as f64)
                .sum();
            s / n as f64
        })
    }

    /// Number of confidences at or above `threshold` (rounded down to the bin grid).
    pub fn count_at_or_above(&self, threshold: f64) -> u64 {
        let first = (threshold.clamp(0.0, 1.0) * CONFIDENCE_BINS as f64).ceil() as usize;
        self.bins[first.min(CONFIDENCE_BINS)..].iter().sum()
    }

    /// Adds another histogram's bins to this one.
    pub fn merge(&mut self, other: &ConfidenceHistogram) {
        for (a, b) in self.bins.iter_mut().zip(other.bins.iter()) {
            *a += b;
        }
    }

    /// Whether no confidence was recorded.
    pub fn is_empty(&self) -> bool {
        self.bins.iter().all(|&c| c == 0)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_the_closed_unit_interval() {
        assert_eq!(confidence_bin(0.0), Some(0));
        assert_eq!(confidence_bin(0.0005), Some(0));
        assert_eq!(confidence_bin(0.001), Some(1));
        assert_eq!(confidence_bin(0.9999), Some(999));
        assert_eq!(confidence_bin(1.0), Some(999));
        assert_eq!(confidence_bin(-0.0001), None);
        assert_eq!(confidence_bin(1.0001), None);
        assert_eq!(confidence_bin(f64::NAN), None);
        assert_eq!(confidence_bin(f64::INFINITY), None);
    }

    #[test]
    fn threshold_counts_and_merge() {
        let mut a = ConfidenceHistogram::new();
        for c in [0.1, 0.5, 0.5, 0.9, 1.0] {
            assert!(a.record(c));
        }
        assert!(!a.record(2.0));
        assert_eq!(a.count_at_or_above(0.5), 4);
        assert_eq!(a.count_at_or_above(0.0), 5);
        assert_eq!(a.count_at_or_above(1.0), 0, "1.0 shares the last bin [0.999, 1]");
        let mut b = a.clone();
        b.merge(&a);
        assert_eq!(b.count(), 10);
        assert!((a.mean().unwrap() - 0.6).abs() < 0.001);
    }
}
