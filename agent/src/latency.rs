//! Latency buckets: HdrHistogram's log-linear layout, reproduced index for index so the hot
//! path can count into plain atomic cells and the flusher can hand out a real
//! [`hdrhistogram::Histogram`] that holds exactly the same counts.
//!
//! Values are nanoseconds, tracked from 1 ns to [`LATENCY_MAX`] with 2 significant digits
//! (every value is within 1% of its bucket's lower bound; values below 256 ns are exact).

use hdrhistogram::Histogram;

/// The largest latency tracked; longer ones are clamped to it and counted as clamped.
#[cfg(not(loom))]
pub const LATENCY_MAX: u64 = 60_000_000_000;
/// Shrunk under loom, so the model checker explores few cells.
#[cfg(loom)]
pub const LATENCY_MAX: u64 = 100;

/// Significant decimal digits kept (HdrHistogram's `sigfig`).
#[cfg(not(loom))]
pub const LATENCY_SIGFIG: u8 = 2;
/// Shrunk under loom, so the model checker explores few cells.
#[cfg(loom)]
pub const LATENCY_SIGFIG: u8 = 1;

// HdrHistogram's derived constants for lowest = 1, the sigfig above.
#[cfg(not(loom))]
const HALF_COUNT_MAGNITUDE: u32 = 7; // ceil(log2(2 * 10^2)) - 1
#[cfg(loom)]
const HALF_COUNT_MAGNITUDE: u32 = 3; // ceil(log2(2 * 10^1)) - 1
const HALF_COUNT: usize = 1 << HALF_COUNT_MAGNITUDE;
const SUB_BUCKET_MASK: u64 = (1 << (HALF_COUNT_MAGNITUDE + 1)) - 1;
const LEADING_ZERO_BASE: u32 = 64 - HALF_COUNT_MAGNITUDE - 1;

/// Number of cells a latency histogram takes: HdrHistogram's `counts` length.
pub(crate) const LATENCY_BUCKETS: usize = latency_index(LATENCY_MAX) + 1;

/// The bucket (cell) of value `v` (`v` ≤ [`LATENCY_MAX`]); the same index HdrHistogram uses.
#[inline]
pub const fn latency_index(v: u64) -> usize {
    let bucket = LEADING_ZERO_BASE - (v | SUB_BUCKET_MASK).leading_zeros();
    let sub_bucket = (v >> bucket) as usize;
    ((bucket as usize + 1) << HALF_COUNT_MAGNITUDE) + sub_bucket - HALF_COUNT
}

/// The lowest value that falls into bucket `index`.
pub fn latency_lowest_value(index: usize) -> u64 {
    let mut bucket = (index >> HALF_COUNT_MAGNITUDE) as i64 - 1;
    let mut sub_bucket = (index & (HALF_COUNT - 1)) + HALF_COUNT;
    if bucket < 0 {
        sub_bucket -= HALF_COUNT;
        bucket = 0;
    }
    (sub_bucket as u64) << bucket
}

/// An empty histogram with the agent's latency bounds.
pub fn new_latency_histogram() -> Histogram<u64> {
    // The bounds are constants that HdrHistogram accepts; `new_with_bounds` only fails for
    // lowest < 1, highest < 2 * lowest or sigfig > 5.
    Histogram::new_with_bounds(1, LATENCY_MAX, LATENCY_SIGFIG)
        .unwrap_or_else(|_| Histogram::new(LATENCY_SIGFIG).expect("sigfig within 0..=5"))
}

/// Builds a histogram from per-bucket counts `(index, count)`: the exact inverse of reading
/// `(latency_index(v), count)` pairs off a histogram.
pub fn latency_histogram_from(counts: impl Iterator<Item = (usize, u64)>) -> Histogram<u64> {
    let mut h = new_latency_histogram();
    for (index, n) in counts {
        // Cannot fail: the value is ≤ LATENCY_MAX, inside the histogram's bounds.
        let _ = h.record_n(latency_lowest_value(index), n);
    }
    h
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_matches_hdrhistogram() {
        let h = new_latency_histogram();
        assert!(LATENCY_BUCKETS <= h.distinct_values());
        for v in [0u64, 1, 255, 256, 257, 1_000, 123_456, 9_999_999, LATENCY_MAX] {
            let i = latency_index(v);
            assert!(i < LATENCY_BUCKETS);
            assert_eq!(latency_lowest_value(i), h.lowest_equivalent(v), "value {v}");
        }
    }

    proptest! {
        #[test]
        fn every_value_lands_in_hdrhistograms_bucket(v in 0u64..=LATENCY_MAX) {
            let h = new_latency_histogram();
            prop_assert_eq!(latency_lowest_value(latency_index(v)), h.lowest_equivalent(v));
        }

        #[test]
        fn rebuilt_histogram_equals_direct_recording(values in proptest::collection::vec(1u64..=LATENCY_MAX, 1..200)) {
            let mut cells = vec![0u64; LATENCY_BUCKETS];
            let mut direct = new_latency_histogram();
            for &v in &values {
                cells[latency_index(v)] += 1;
                direct.record(v).unwrap();
            }
            let rebuilt = latency_histogram_from(cells.iter().copied().enumerate().filter(|c| c.1 > 0));
            prop_assert_eq!(rebuilt.len(), direct.len());
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                prop_assert_eq!(rebuilt.value_at_quantile(q), direct.value_at_quantile(q));
            }
        }
    }
}
