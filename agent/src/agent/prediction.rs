//! The values a scorer hands to the record calls: a [`Prediction`], the [`SegmentKey`] it
//! belongs to, its [`Latency`] and the [`Timer`] that measures it. Plain `Copy` values built
//! on the caller's stack; nothing here allocates or touches shared state.

use crate::clock::duration_nanos;
use crate::schema::SegmentId;
use crate::shard::LatencyNanos;
use std::time::{Duration, Instant};

/// A segment given by pre-resolved id or by name.
#[derive(Clone, Copy, Debug)]
pub enum SegmentKey<'a> {
    /// Resolved once with [`Handle::segment`](crate::Handle::segment).
    Id(SegmentId),
    /// Looked up per call (a short linear scan over the declared segments).
    Name(&'a str),
}

impl From<SegmentId> for SegmentKey<'_> {
    fn from(id: SegmentId) -> Self {
        SegmentKey::Id(id)
    }
}

impl<'a> From<&'a str> for SegmentKey<'a> {
    fn from(n: &'a str) -> Self {
        SegmentKey::Name(n)
    }
}

/// How long a prediction took.
#[derive(Clone, Copy, Debug)]
pub struct Latency(pub(super) LatencyNanos);

impl Latency {
    /// From seconds as a float: NaN, infinite or negative values are counted as invalid.
    pub fn from_secs_f64(s: f64) -> Self {
        if s.is_finite() && s >= 0.0 {
            Latency(LatencyNanos::Valid((s * 1e9).min(u64::MAX as f64) as u64))
        } else {
            Latency(LatencyNanos::Invalid)
        }
    }

    /// From milliseconds as a float (as prediction logs often have them).
    pub fn from_millis_f64(ms: f64) -> Self {
        Self::from_secs_f64(ms / 1e3)
    }
}

impl From<Duration> for Latency {
    fn from(d: Duration) -> Self {
        Latency(LatencyNanos::Valid(duration_nanos(d)))
    }
}

impl From<Timer> for Latency {
    fn from(t: Timer) -> Self {
        t.elapsed().into()
    }
}

/// Started before scoring; turns into the prediction's latency.
#[derive(Clone, Copy, Debug)]
pub struct Timer(Instant);

impl Timer {
    /// Starts timing now.
    pub fn start() -> Self {
        Timer(Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// One prediction, as the scorer hands it to [`Handle::record`](crate::Handle::record).
#[derive(Clone, Copy, Debug)]
pub struct Prediction<'a> {
    pub(super) segment: SegmentKey<'a>,
    pub(super) latency: Latency,
    pub(super) confidence: f64,
    pub(super) features: &'a [f64],
    pub(super) categories: &'a [Option<&'a str>],
    pub(super) predicted: Option<bool>,
}

impl<'a> Prediction<'a> {
    /// A prediction in `segment` that took `latency` and gave `confidence` in [0, 1].
    pub fn new(segment: impl Into<SegmentKey<'a>>, latency: impl Into<Latency>, confidence: f64) -> Self {
        Prediction {
            segment: segment.into(),
            latency: latency.into(),
            confidence,
            features: &[],
            categories: &[],
            predicted: None,
        }
    }

    /// The feature vector in schema order: NaN for missing; categorical features by code.
    pub fn features(mut self, values: &'a [f64]) -> Self {
        self.features = values;
        self
    }

    /// Categorical features by string, in the order the categorical features appear in the
    /// schema; `None` falls back to the code in the feature vector.
    pub fn categories(mut self, values: &'a [Option<&'a str>]) -> Self {
        self.categories = values;
        self
    }

    /// The label the model predicted.
    pub fn predicted(mut self, positive: bool) -> Self {
        self.predicted = Some(positive);
        self
    }
}
