//! The feature-value sketch: a mergeable, relative-error distribution over all of f64, in the
//! log-linear style of HdrHistogram and OpenTelemetry's exponential histograms.
//!
//! # Bucket scheme (also the on-disk layout, so keep it stable)
//!
//! A value `x` with `2^EXP_MIN ≤ |x| < 2^EXP_MAX` and binary exponent `e` (so
//! `2^e ≤ |x| < 2^(e+1)`) falls into the bucket with key
//! `k = (e - EXP_MIN) * SUB + j + 1`, where `j` is the top [`SKETCH_SUB_BITS`] bits of the
//! mantissa: the bucket spans `[2^e (1 + j/SUB), 2^e (1 + (j+1)/SUB))`. Negative values use
//! key `-k`. Key `0` holds zero and every `|x| < 2^EXP_MIN`; key `±(N + 1)`, with
//! `N = (EXP_MAX - EXP_MIN) * SUB`, holds `|x| ≥ 2^EXP_MAX`. Keys sort in value order.
//!
//! With `SUB = 32`, `EXP_MIN = -24`, `EXP_MAX = 40`, any quantile in `[6e-8, 1.1e12]` is
//! reported within [`SKETCH_RELATIVE_ERROR`] (1/65, about 1.5%) of a value in its bucket.

/// Mantissa bits per binary exponent (sub-buckets per power of two = 2^bits).
#[cfg(not(loom))]
pub const SKETCH_SUB_BITS: u32 = 5;
/// Shrunk under loom, so the model checker explores few cells.
#[cfg(loom)]
pub const SKETCH_SUB_BITS: u32 = 0;
/// Smallest binary exponent with its own buckets: smaller magnitudes count as zero.
#[cfg(not(loom))]
pub const SKETCH_EXP_MIN: i32 = -24;
/// Shrunk under loom, so the model checker explores few cells.
#[cfg(loom)]
pub const SKETCH_EXP_MIN: i32 = 0;
/// Binary exponent from which magnitudes go to the overflow bucket.
#[cfg(not(loom))]
pub const SKETCH_EXP_MAX: i32 = 40;
/// Shrunk under loom, so the model checker explores few cells.
#[cfg(loom)]
pub const SKETCH_EXP_MAX: i32 = 1;

const SUB: i32 = 1 << SKETCH_SUB_BITS;
/// Number of buckets per sign between the zero and overflow buckets.
const PER_SIGN: i32 = (SKETCH_EXP_MAX - SKETCH_EXP_MIN) * SUB;
/// Largest key (the positive overflow bucket).
pub const SKETCH_MAX_KEY: i32 = PER_SIGN + 1;
/// Cells one sketch takes in a shard: keys `-MAX_KEY ..= MAX_KEY`.
pub(crate) const SKETCH_CELLS: usize = 2 * SKETCH_MAX_KEY as usize + 1;
/// Cells of one *region* of a shard's sketch: a 4 KiB page's worth. A shard charges the
/// memory budget for a region the first time a value falls in it, so a feature whose values
/// span six decades pays for two or three regions of its nine, not its whole range.
#[cfg(not(loom))]
pub(crate) const REGION_CELLS: usize = 512;
#[cfg(loom)]
pub(crate) const REGION_CELLS: usize = 4;
/// Regions of a sketch (at most 64: they are bits of one cell).
pub(crate) const SKETCH_REGIONS: usize = SKETCH_CELLS.div_ceil(REGION_CELLS);
const _: () = assert!(SKETCH_REGIONS <= 64, "a block's regions are the bits of one cell");

/// The shard cell of a key: keys are shifted to start at 0.
#[inline]
pub(crate) fn sketch_cell(key: i32) -> usize {
    (key + SKETCH_MAX_KEY) as usize
}

pub(crate) fn key_of_cell(cell: usize) -> i32 {
    cell as i32 - SKETCH_MAX_KEY
}

/// Bound on the relative error of [`Sketch::quantile`] inside the tracked range.
pub const SKETCH_RELATIVE_ERROR: f64 = 1.0 / (2 * SUB + 1) as f64;

/// Bucket key of a finite value: scheme `log_linear_5`, spelled out at the top of `sketch.rs`
/// and in `docs/storage-format.md`.
#[inline]
pub fn sketch_key(x: f64) -> i32 {
    let a = x.abs();
    let k = if a < f64::from_bits(((SKETCH_EXP_MIN + 1023) as u64) << 52) {
        0
    } else if a >= f64::from_bits(((SKETCH_EXP_MAX + 1023) as u64) << 52) {
        SKETCH_MAX_KEY
    } else {
        let bits = a.to_bits();
        let e = ((bits >> 52) & 0x7ff) as i32 - 1023;
        let j = ((bits >> (52 - SKETCH_SUB_BITS)) & (SUB as u64 - 1)) as i32;
        (e - SKETCH_EXP_MIN) * SUB + j + 1
    };
    if x.is_sign_negative() { -k } else { k }
}

/// The `[low, high)` magnitude range of a bucket key ≥ 0 (key 0: `[0, 2^EXP_MIN)`; the
/// overflow key: `[2^EXP_MAX, inf)`).
pub fn sketch_bucket_bounds(key: i32) -> (f64, f64) {
    let k = key.abs();
    let pow2 = |e: i32| 2f64.powi(e);
    let (lo, hi) = if k == 0 {
        (0.0, pow2(SKETCH_EXP_MIN))
    } else if k >= SKETCH_MAX_KEY {
        (pow2(SKETCH_EXP_MAX), f64::INFINITY)
    } else {
        let e = (k - 1) / SUB + SKETCH_EXP_MIN;
        let j = (k - 1) % SUB;
        let base = pow2(e);
        (base * (1.0 + j as f64 / SUB as f64), base * (1.0 + (j + 1) as f64 / SUB as f64))
    };
    if key < 0 { (-hi, -lo) } else { (lo, hi) }
}

/// The value a bucket stands for: the point whose relative distance to both ends is equal
/// (the harmonic mean of the bounds), so every value in the bucket is within
/// [`SKETCH_RELATIVE_ERROR`] of it.
pub fn sketch_representative(key: i32) -> f64 {
    let k = key.abs();
    let v = if k == 0 {
        0.0
    } else if k >= SKETCH_MAX_KEY {
        2f64.powi(SKETCH_EXP_MAX)
    } else {
        let (lo, hi) = sketch_bucket_bounds(k);
        2.0 * lo * hi / (lo + hi)
    };
    if key < 0 { -v } else { v }
}

/// A sparse, mergeable distribution of values: `(key, count)` pairs in key (value) order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sketch {
    buckets: Vec<(i32, u64)>,
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sketch from `(key, count)` pairs in any order; equal keys add up.
    pub fn from_buckets(pairs: impl IntoIterator<Item = (i32, u64)>) -> Self {
        let mut buckets: Vec<(i32, u64)> = pairs.into_iter().filter(|b| b.1 > 0).collect();
        buckets.sort_unstable_by_key(|b| b.0);
        buckets.dedup_by(|next, kept| {
            if next.0 == kept.0 {
                kept.1 = kept.1.saturating_add(next.1);
                true
            } else {
                false
            }
        });
        Sketch { buckets }
    }

    /// Adds one finite value (non-finite values are ignored and `false` returned).
    pub fn record(&mut self, x: f64) -> bool {
        if !x.is_finite() {
            return false;
        }
        let key = sketch_key(x);
        match self.buckets.binary_search_by_key(&key, |b| b.0) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(1),
            Err(i) => self.buckets.insert(i, (key, 1)),
        }
        true
    }

    /// The non-empty buckets, `(key, count)`, in value order.
    pub fn buckets(&self) -> &[(i32, u64)] {
        &self.buckets
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |n, b| n.saturating_add(b.1))
    }

    /// Whether the sketch holds no value.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Adds another sketch's counts: the result equals the sketch of both inputs together.
    pub fn merge(&mut self, other: &Sketch) {
        let (a, b) = (&self.buckets, &other.buckets);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i].0 == b[j].0 {
                out.push((a[i].0, a[i].1.saturating_add(b[j].1)));
                i += 1;
                j += 1;
            } else if a[i].0 < b[j].0 {
                out.push(a[i]);
                i += 1;
            } else {
                out.push(b[j]);
                j += 1;
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        self.buckets = out;
    }

    /// The value at quantile `q` in [0, 1]: the representative of the bucket that holds the
    /// value of rank `max(1, ceil(q * n))` (HdrHistogram's convention). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for &(key, c) in &self.buckets {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Some(sketch_representative(key));
            }
        }
        self.buckets.last().map(|b| sketch_representative(b.0))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_follow_value_order_and_edges() {
        assert_eq!(sketch_key(0.0), 0);
        assert_eq!(sketch_key(-0.0), 0);
        assert_eq!(sketch_key(1e-12), 0);
        assert_eq!(sketch_key(1e300), SKETCH_MAX_KEY);
        assert_eq!(sketch_key(-1e300), -SKETCH_MAX_KEY);
        let xs = [-1e13, -5.0, -1.0, -0.001, 0.0, 1e-7, 0.5, 1.0, 1.03, 2.0, 7.5e11, 2e12];
        for w in xs.windows(2) {
            assert!(sketch_key(w[0]) <= sketch_key(w[1]), "{} vs {}", w[0], w[1]);
        }
        assert_eq!(sketch_cell(-SKETCH_MAX_KEY), 0);
        assert_eq!(sketch_cell(SKETCH_MAX_KEY), SKETCH_CELLS - 1);
    }

    #[test]
    fn bucket_bounds_contain_their_values() {
        for x in [1e-7, 0.3, 1.0, 1.5, 3.999, 1234.5, -77.25, 1e11] {
            let (lo, hi) = sketch_bucket_bounds(sketch_key(x));
            assert!(lo <= x && x < hi, "{x} not in [{lo}, {hi})");
        }
    }

    /// The oracle: the exact order statistic of rank max(1, ceil(q n)).
    fn exact_quantile(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).max(1);
        v[rank - 1]
    }

    fn in_range_value() -> impl Strategy<Value = f64> {
        prop_oneof![(1e-7f64..1e11), (-1e11f64..-1e-7), (0.5f64..2.0), Just(0.0),]
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_stated_relative_error(
            values in proptest::collection::vec(in_range_value(), 1..500),
            q in 0.0f64..=1.0,
        ) {
            let mut s = Sketch::new();
            for &x in &values {
                s.record(x);
            }
            let exact = exact_quantile(&values, q);
            let got = s.quantile(q).unwrap();
            let err = if exact == 0.0 { got.abs() } else { ((got - exact) / exact).abs() };
            prop_assert!(err <= SKETCH_RELATIVE_ERROR + 1e-12, "q={} exact={} got={} err={}", q, exact, got, err);
        }

        #[test]
        fn merging_equals_the_sketch_of_the_union(
            a in proptest::collection::vec(any::<f64>(), 0..300),
            b in proptest::collection::vec(any::<f64>(), 0..300),
        ) {
            let (mut sa, mut sb, mut su) = (Sketch::new(), Sketch::new(), Sketch::new());
            a.iter().for_each(|&x| { sa.record(x); su.record(x); });
            b.iter().for_each(|&x| { sb.record(x); su.record(x); });
            sa.merge(&sb);
            prop_assert_eq!(&sa, &su);
            let counted = a.iter().chain(&b).filter(|x| x.is_finite()).count() as u64;
            prop_assert_eq!(su.count(), counted);
        }

        #[test]
        fn from_buckets_is_order_independent(pairs in proptest::collection::vec((-SKETCH_MAX_KEY..=SKETCH_MAX_KEY, 0u64..5), 0..50)) {
            let mut rev = pairs.clone();
            rev.reverse();
            prop_assert_eq!(Sketch::from_buckets(pairs), Sketch::from_buckets(rev));
        }
    }
}
