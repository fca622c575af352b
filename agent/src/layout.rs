//! The bucket layouts of the stored distributions: what the store and query crates need to
//! encode a snapshot's distributions as `(key, count)` buckets and to decode them again. A
//! scorer never needs this module: it records through a [`Handle`](crate::Handle) and reads
//! [`Snapshot`](crate::Snapshot)s.
//!
//! Each layout is an on-disk scheme of `docs/storage-format.md`, so it stays stable:
//!
//! - `hdr_ns_2`, latency: HdrHistogram's buckets from 1 ns to [`LATENCY_MAX`] with
//!   [`LATENCY_SIGFIG`] significant digits; a key is HdrHistogram's counts index
//!   ([`latency_index`]), and [`latency_histogram_from`] rebuilds the histogram exactly.
//! - `confidence_1000`, confidence: [`CONFIDENCE_BINS`] equal bins over `[0, 1]`.
//! - `log_linear_5`, feature values and distribution metrics: the keys of a
//!   [`Sketch`](crate::Sketch) ([`sketch_key`]), in value order, each value within
//!   [`SKETCH_RELATIVE_ERROR`] of its bucket's [`sketch_representative`].

pub use crate::confidence::CONFIDENCE_BINS;
pub use crate::latency::{
    LATENCY_MAX, LATENCY_SIGFIG, latency_histogram_from, latency_index, latency_lowest_value,
    new_latency_histogram,
};
pub use crate::sketch::{
    SKETCH_EXP_MAX, SKETCH_EXP_MIN, SKETCH_MAX_KEY, SKETCH_RELATIVE_ERROR, SKETCH_SUB_BITS,
    sketch_bucket_bounds, sketch_key, sketch_representative,
};
