//! Online change detectors over interval statistics (mean confidence, latency p95, error
//! rate, a feature's mean per interval): each [`Point`] is one interval of a series from the
//! query engine, with the number of samples behind it (`n`; 1 for a raw sample stream).
//!
//! Every detector is set by the false-alarm rate a user can live with: the expected run
//! time without drift, ERT, in intervals ([`Cusum::with_ert`], [`PageHinkley::with_ert`],
//! [`Adwin::with_ert`]; default 10,000, so about one false alarm in 10,000 quiet intervals
//! whatever the counts behind them). After an alarm each detector starts afresh.
//!
//! # Standardising by each interval's standard error
//!
//! An interval mean of `n` samples has standard error `σ/√n`: a quiet hour is noisier than a
//! busy one. CUSUM and Page–Hinkley work on the self-starting residuals of Hawkins (1987):
//! each value against the n-weighted mean `μ̂` and per-sample standard deviation
//! `σ̂ = √(Σ nᵢ(xᵢ − μ̂)² / (I − 1))` of the `I` intervals (`N` samples) since the last
//! reset, `t = (x − μ̂) / (σ̂ √(1/n + 1/N))`, which is Student's t with `I − 1` degrees of
//! freedom, mapped to a standard normal by Wallace's (1959) approximation (error below 0.01
//! for `|t| ≤ 4` from 5 degrees of freedom). In control those residuals are independent
//! N(0, 1) whatever the pattern of counts, so the in-control run length is the textbook one
//! for iid N(0, 1) input, and the threshold for an ERT comes from it.
//!
//! Why not a level learnt once in a warm-up: its error, in units of an interval's standard
//! error, is `√(nᵢ / N_warmup)`. A warm-up over a quiet night (n = 10 per interval, 200
//! intervals, N = 2,000) watched at a busy noon (n = 100) is off by 0.22 of a standard error
//! for good, and a σ from such a warm-up is the wrong one for every other count: the
//! previous detectors, tuned for a few false alarms per million intervals, raised about
//! 1,000 per million when the interval mean became 1.5× noisier.
//!
//! - [`Cusum`] (tabular, two-sided): `S⁺ = max(0, S⁺ + z − k)`, `S⁻ = max(0, S⁻ − z − k)`
//!   on the residuals `z`; alarm when either passes `h`. `k = 0.5` (tuned to a 1 σ shift);
//!   `h` solves Siegmund's approximation of the in-control ARL,
//!   `(e^{2kb} − 2kb − 1) / 2k² = 2·ERT` with `b = h + 1.166`, by bisection (both sides
//!   share the false alarms). ERT 10,000 gives `h = 8.05`.
//! - [`PageHinkley`]: the cumulative deviation of `z` from its own running mean since the
//!   reset, less `delta`, against its running extreme; alarm when the gap passes `lambda`.
//!   It needs no target but reacts more slowly, because the running mean follows the shift.
//!   `lambda` for an ERT is Siegmund's `h` for `k = delta`: the running mean of residuals
//!   that are already centred changes the run length by less than 10 % (measured below).
//! - [`Adwin`] (Bifet & Gavaldà 2007, as river's `drift.ADWIN`): a window of exponentially
//!   merged buckets of intervals, cut where the older and newer parts' means differ by more
//!   than a bound at confidence `δ`; alarm on a cut, then start afresh (as river does).
//!   Generalised to weighted items: an interval of `n` samples with mean `x` enters as one
//!   item of weight `n`, the sub-window means are n-weighted, `σ̂²` is the n-weighted
//!   spread of the interval means over the window's `I` intervals (`Σ nᵢ(xᵢ − x̄)² / I`,
//!   river's window variance when n = 1), so an interval of n samples counts as n samples
//!   and extra spread between intervals widens the bound instead of raising alarms.
//!   [`Adwin::with_delta`] is river's detector (clock 32, the Hoeffding–Bernstein bound for
//!   values in [0, 1]); [`Adwin::with_ert`] checks every interval with the normal bound
//!   `|Δμ| > σ̂ √(2 δ′ (1/N₀ + 1/N₁))`, `δ′ = ln(2 ln I / δ)`, which does not depend on the
//!   statistic's scale, with `δ = e^3.686 · ERT^−1.005` (about 40/ERT; 0.0038 for ERT
//!   10,000), the least-squares line through the run lengths measured at δ from 0.03 to
//!   0.0003 (1,267 to 129,870 intervals per false alarm); outside ERT 1,000–130,000 it is
//!   extrapolated.
//!
//! # Measured
//!
//! `cargo run --release -p modelwatch-query --example detector_calibration` (intervals per
//! false alarm over 2 to 10 million intervals without change; one sample per interval / counts
//! following a daily cycle from 10 to 100):
//!
//! | ERT | CUSUM | Page–Hinkley | ADWIN (δ from the fit) |
//! |---|---|---|---|
//! | 1,000 | 981 / 1,061 | 1,002 / 1,095 | δ 0.03: 1,267 / 1,244 |
//! | 10,000 | 9,615 / 9,547 | 10,000 / 9,592 | δ 0.003: 12,121 / 13,559 |
//! | 100,000 | 84,034 / 109,890 | 86,207 / 109,890 | δ 0.0003: 129,870 / 121,951 |
//!
//! The unit test over a million 1-minute intervals with daily counts from 10 to 100 (ERT
//! 10,000, so 100 expected) counts 111 (CUSUM), 105 (Page–Hinkley) and 96 (ADWIN), and
//! holds each to 50–200; it takes about 4 s in a debug build.
//!
//! Mean (median) detection delay in intervals at ERT 10,000, for a shift of 0.3 or 1
//! standard error of each interval's mean, daily counts, 200 runs with the change after
//! 2,000 intervals (`cargo run --release -p modelwatch-query --example detector_delays`):
//!
//! | shift | CUSUM | Page–Hinkley | ADWIN |
//! |---|---|---|---|
//! | 0.3 σ | 1,327 (577) | 3,660 (1,090) | 256 (161) |
//! | 1 σ | 18.9 (13) | 36.9 (13) | 19.4 (14) |
//!
//! The self-starting level absorbs a small shift before CUSUM and Page–Hinkley see it
//! (hence the long tail at 0.3 σ); ADWIN, which compares the recent part of its window with
//! the older, finds it sooner. On a million samples, N(0, 1) then N(0.3, 1) from the
//! 500,000th, [`Adwin::with_delta`]`(0.002)` raised the same alarms as river 0.26.1's
//! `drift.ADWIN()` on five seeded streams: no false alarm, delays 319, 191, 319, 95 and 351
//! samples (mean 255) for both (`tests/detect.rs` checks one stream).
//!
//! # What they assume, and when they break
//!
//! All three assume that, without drift, the interval means are independent with mean `μ`
//! and variance `σ²/n`: samples independent within an interval and no extra variation from
//! one interval to the next. Daily seasonality in the level, or autocorrelated intervals,
//! break that, and all three then alarm far more often than the ERT says — ADWIN too: at
//! ERT 10,000 and 50 samples per interval, 1,263 (Page–Hinkley) to 1,858 (ADWIN) false
//! alarms per million intervals with a daily swing of half a standard error, and 1,746 to
//! 2,184 with AR(1) intervals (φ = 0.3), against 100 expected (`detector_calibration`,
//! below). Detect on a deseasonalised
//! statistic. The self-starting level and `σ̂` take in every value since the reset, a drift
//! too: a small shift missed for long is absorbed and no longer found, and a drift in the
//! first intervals after a reset goes unseen. The residuals are exact for Gaussian interval
//! means; with few samples per interval of a skewed statistic the tails are heavier and
//! false alarms more frequent: a p99 of 5 values, or an error rate of rare events (the mean
//! of 20 Bernoulli(0.02) values per interval raised 495 to 588 per million, 5 to 6 times
//! the ERT's rate).
//! ADWIN's calibration is for its own window after a reset; its run length is not
//! memoryless (the bound loosens slowly as the window grows).
//!
//! # Misuse they survive
//!
//! - Any unit: values are divided by a power of two near the first one's magnitude, so a
//!   statistic of 1e180 or 1e-301 raises the same alarms at the same places as at 1 (a test
//!   checks it), and a value that would still overflow the running sums is skipped.
//! - A series that never varies raises nothing (its scale is at least 10⁻⁹ of its level),
//!   whatever rounding does to its sub-window means; on such a series any real change, even
//!   one unit of a quantised p95, is an alarm.
//! - One gross outlier: the first 30 intervals after a reset are screened (out go those
//!   more than 10 robust standard deviations from their median), so a stray 1e150 cannot
//!   inflate the self-started spread and blind the detector for good; later, CUSUM and
//!   Page–Hinkley alarm on it and start afresh, and ADWIN (with the normal bound) holds each
//!   item within 10 standard errors of its window's mean. `Adwin::with_delta`, river's
//!   detector, is left exactly as river's.
//! - Unusable intervals (a value or count not finite, a count of 0 or below) are skipped.
//!
//! [`query_points`] weighs only a distribution's mean or quantile by its count (a gauge's
//! `count` is the sum of its values), refuses a query grouped `by` labels (a detector
//! watches one series), and the drift trigger reads complete steps only.
mod adwin;

pub use adwin::{Adwin, Bound};

use crate::{Func, Limits, Query, QueryError, Range};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The smallest ERT accepted, in intervals.
pub const MIN_ERT: f64 = 100.0;

/// The largest ERT accepted, in intervals (32 years of 1-second intervals): beyond it the
/// thresholds' approximations are not checked, and no monitor runs that long unchanged.
pub const MAX_ERT: f64 = 1e9;

/// The ERT of the `Default` detectors, in intervals.
pub const DEFAULT_ERT: f64 = 10_000.0;

/// One interval of a series: its time, its mean (or other statistic) and the samples behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// The interval's start (ms).
    pub time_ms: i64,
    /// The interval's statistic.
    pub value: f64,
    /// The number of samples behind it (1 for a raw sample); 0 or non-finite: skipped.
    pub n: f64,
}

impl Point {
    /// An interval of `n` samples.
    pub fn new(time_ms: i64, value: f64, n: f64) -> Self {
        Point { time_ms, value, n }
    }

    /// One raw sample.
    pub fn sample(time_ms: i64, value: f64) -> Self {
        Point { time_ms, value, n: 1.0 }
    }

    /// Whether a detector uses it.
    fn usable(&self) -> bool {
        self.value.is_finite() && self.n.is_finite() && self.n > 0.0
    }
}

/// Points of one sample each from a query series' `(time_ms, value)`.
pub fn samples(series: &[(i64, f64)]) -> Vec<Point> {
    series.iter().map(|&(t, v)| Point::sample(t, v)).collect()
}

/// Points from a query series and the per-interval counts of the same selector (a `count`
/// query over the same range), matched by time; an interval without a count is left out.
pub fn weighted(values: &[(i64, f64)], counts: &[(i64, f64)]) -> Vec<Point> {
    let counts: std::collections::HashMap<i64, f64> = counts.iter().copied().collect();
    values.iter().filter_map(|&(t, v)| counts.get(&t).map(|&n| Point::new(t, v, n))).collect()
}

/// The points of `query`'s series over `range`, for a detector: a mean or quantile of a
/// distribution (latency, confidence, a feature) over `n` values has a standard error that
/// shrinks with `n`, so each interval is weighed by its count (a `count` query over the same
/// selector, matchers and range, matched by time); a count, sum or rate, and a gauge's
/// level, are one figure per interval. A query grouped `by` labels is refused: a detector
/// watches one series (select it with matchers).
pub fn query_points(
    store: &modelwatch_store::Store,
    query: &Query,
    range: Range,
    limits: Limits,
) -> Result<Vec<Point>, QueryError> {
    if !query.by.is_empty() {
        return Err(QueryError::Unsupported(format!(
            "a detector watches one series; `{query}` is grouped by ({}): select one series with matchers instead",
            query.by.join(", ")
        )));
    }
    let series = crate::run(store, query, range, limits)?;
    let Some(s) = series.first() else { return Ok(Vec::new()) };
    // A gauge's "count" is the sum of its values, not how many there are.
    if !matches!(query.func, Func::Mean | Func::Quantile(_))
        || !crate::engine::has_distributions(store, query, range)?
    {
        return Ok(samples(&s.points));
    }
    let counts = Query { func: Func::Count, explicit: true, ..query.clone() };
    let counts = crate::run(store, &counts, range, limits)?;
    let counts = counts.iter().find(|c| c.tags == s.tags).map_or(&[][..], |c| &c.points[..]);
    Ok(weighted(&s.points, counts))
}

/// Which way the series moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The statistic went up.
    Up,
    /// The statistic went down.
    Down,
}

/// One alarm.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    /// Index of the point that raised it.
    pub index: usize,
    /// Its time (ms).
    pub time_ms: i64,
    /// Up or down.
    pub direction: Direction,
    /// The detector's statistic at the alarm (standard-error units).
    pub statistic: f64,
    /// The level before the change: the self-started mean (CUSUM, Page–Hinkley) or the
    /// older sub-window's mean (ADWIN).
    pub baseline: f64,
}

/// A detector over a series of intervals.
pub trait Detector {
    /// Its name in evidence and messages: `cusum`, `page_hinkley`, `adwin`.
    fn name(&self) -> &'static str;
    /// The alarms over the whole series (unusable points are skipped).
    fn run(&self, points: &[Point]) -> Vec<Alarm>;
}

/// A detector that cannot be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DetectError {
    /// The ERT is not a number of intervals from [`MIN_ERT`] to [`MAX_ERT`].
    #[error(
        "the expected run time without drift (ERT) must be a number of intervals from {MIN_ERT} to {MAX_ERT}, got {0}"
    )]
    Ert(f64),
    /// A parameter is out of its range.
    #[error("detector parameter {name} must be {why}, got {value}")]
    Parameter {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        why: &'static str,
    },
    /// An unknown detector name.
    #[error("unknown detector {0:?}; expected cusum, page_hinkley or adwin")]
    Kind(String),
}

fn check_ert(ert: f64) -> Result<f64, DetectError> {
    if (MIN_ERT..=MAX_ERT).contains(&ert) { Ok(ert) } else { Err(DetectError::Ert(ert)) }
}

/// An allowance (CUSUM's `k`, Page–Hinkley's `delta`): in standard errors, from 0.01 (a
/// shift of 0.02 found fastest) to 5 (a shift of 10), where Siegmund's approximation is
/// still a number.
fn check_allowance(name: &'static str, value: f64) -> Result<f64, DetectError> {
    if (0.01..=5.0).contains(&value) {
        Ok(value)
    } else {
        Err(DetectError::Parameter { name, value, why: "from 0.01 to at most 5 (standard errors)" })
    }
}

/// The power of two nearest below the first usable value's magnitude (1 when it is 0): the
/// detectors divide by it, so that the arithmetic on squared deviations neither overflows
/// (values of 1e200) nor underflows (values of 1e-300), whatever the statistic's unit.
fn scale_of(points: &[Point]) -> f64 {
    points
        .iter()
        .find(|p| p.usable() && p.value != 0.0)
        .map_or(1.0, |p| 2f64.powi(p.value.abs().log2().floor().clamp(-1000.0, 1000.0) as i32))
}

fn check_positive(name: &'static str, value: f64) -> Result<f64, DetectError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(DetectError::Parameter { name, value, why: "a finite number above 0" })
    }
}

/// The detectors by name, for configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// [`Cusum`].
    #[default]
    Cusum,
    /// [`PageHinkley`].
    PageHinkley,
    /// [`Adwin`].
    Adwin,
}

impl DetectorKind {
    /// The detector of this kind for an ERT.
    pub fn with_ert(self, ert: f64) -> Result<Box<dyn Detector + Send + Sync>, DetectError> {
        Ok(match self {
            DetectorKind::Cusum => Box::new(Cusum::with_ert(ert)?),
            DetectorKind::PageHinkley => Box::new(PageHinkley::with_ert(ert)?),
            DetectorKind::Adwin => Box::new(Adwin::with_ert(ert)?),
        })
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DetectorKind::Cusum => "cusum",
            DetectorKind::PageHinkley => "page_hinkley",
            DetectorKind::Adwin => "adwin",
        })
    }
}

impl FromStr for DetectorKind {
    type Err = DetectError;
    fn from_str(s: &str) -> Result<Self, DetectError> {
        match s {
            "cusum" => Ok(DetectorKind::Cusum),
            "page_hinkley" => Ok(DetectorKind::PageHinkley),
            "adwin" => Ok(DetectorKind::Adwin),
            _ => Err(DetectError::Kind(s.to_string())),
        }
    }
}

/// The one-sided in-control ARL of a CUSUM with allowance `k` and decision interval `h` on
/// iid N(0, 1) values (Siegmund 1985).
pub fn siegmund_arl(k: f64, h: f64) -> f64 {
    let b = h + 1.166;
    ((2.0 * k * b).exp() - 2.0 * k * b - 1.0) / (2.0 * k * k)
}

/// The decision interval `h` whose two-sided in-control ARL is `ert` for allowance `k`.
fn decision_interval(k: f64, ert: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    while siegmund_arl(k, hi) < 2.0 * ert {
        (lo, hi) = (hi, hi * 2.0);
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if siegmund_arl(k, mid) < 2.0 * ert { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

/// Hawkins' self-starting standardisation: the n-weighted mean and spread of the intervals
/// since the last reset, and each new value's residual against them.
#[derive(Clone, Debug, Default)]
struct SelfStart {
    /// Intervals taken.
    items: f64,
    /// Samples behind them.
    weight: f64,
    mean: f64,
    /// `Σ nᵢ (xᵢ − mean)²`.
    m2: f64,
}

impl SelfStart {
    /// The residual of `x` (an interval of `n` samples) as a standard normal, once `warmup`
    /// intervals are in; then `x` joins the estimates. A value that would overflow them is
    /// left out (`None`).
    fn take(&mut self, x: f64, n: f64, warmup: usize) -> Option<f64> {
        let total = self.weight + n;
        let d = x - self.mean;
        let (mean, m2) = (self.mean + d * n / total, self.m2 + d * d * n * (self.weight / total));
        if !(mean.is_finite() && m2.is_finite() && total.is_finite()) {
            return None;
        }
        let z = (self.items >= warmup.max(3) as f64).then(|| {
            let dof = self.items - 1.0;
            // A constant series still needs a scale: a tiny one relative to the level (the
            // values are scaled to about 1 by `scale_of`).
            let sd = (self.m2 / dof).sqrt().max(self.mean.abs() * 1e-9).max(f64::MIN_POSITIVE);
            let t = (x - self.mean) / (sd * (1.0 / n + 1.0 / self.weight).sqrt());
            // Wallace (1959): Student's t with `dof` degrees of freedom to N(0, 1).
            let z = (8.0 * dof + 1.0) / (8.0 * dof + 3.0) * (dof * (t * t / dof).ln_1p()).sqrt();
            z.copysign(t)
        });
        (self.mean, self.m2, self.weight) = (mean, m2, total);
        self.items += 1.0;
        z
    }
}

/// The warm-up values but gross outliers: one value of 1e150 among values of 0.82 would
/// inflate the self-started spread so that nothing after it ever alarms. Out are those more
/// than 10 robust standard deviations (1.4826 × the median absolute residual, each residual
/// weighed by √n) from the median; with no spread to measure, all stay.
fn screened(values: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let centre = median(values.iter().map(|v| v.0).collect());
    let residual = |&(x, n): &(f64, f64)| (x - centre).abs() * n.sqrt();
    let spread = 1.4826 * median(values.iter().map(residual).collect());
    values.iter().copied().filter(|v| !(spread > 0.0 && residual(v) > 10.0 * spread)).collect()
}

/// A detector's statistic over standardised residuals.
trait Statistic {
    /// Starts afresh.
    fn reset(&mut self);
    /// Takes one residual; an alarm's direction and statistic when it fires.
    fn step(&mut self, z: f64) -> Option<(Direction, f64)>;
}

/// The loop CUSUM and Page–Hinkley share: skip unusable points, feed the self-starting
/// residuals to `stat`, start afresh after each alarm.
fn self_started(points: &[Point], warmup: usize, stat: &mut dyn Statistic) -> Vec<Alarm> {
    let mut alarms = Vec::new();
    let mut level = SelfStart::default();
    let scale = scale_of(points);
    let warmup = warmup.max(3);
    // The first `warmup` values after a reset, held until they are all in and screened.
    let mut first: Vec<(f64, f64)> = Vec::with_capacity(warmup);
    stat.reset();
    for (i, p) in points.iter().enumerate() {
        if !p.usable() {
            continue;
        }
        if level.items == 0.0 && first.len() < warmup {
            first.push((p.value / scale, p.n));
            if first.len() == warmup {
                for (x, n) in screened(&first) {
                    level.take(x, n, warmup);
                }
                first.clear();
            }
            continue;
        }
        let baseline = level.mean * scale;
        let Some(z) = level.take(p.value / scale, p.n, warmup) else { continue };
        if let Some((direction, statistic)) = stat.step(z) {
            alarms.push(Alarm { index: i, time_ms: p.time_ms, direction, statistic, baseline });
            level = SelfStart::default();
            stat.reset();
        }
    }
    alarms
}

/// Two-sided tabular CUSUM on self-starting residuals.
#[derive(Clone, Debug)]
pub struct Cusum {
    /// Allowance, standard-error units.
    pub k: f64,
    /// Decision interval, standard-error units.
    pub h: f64,
    /// Intervals since a reset before the first residual.
    pub warmup: usize,
}

impl Cusum {
    /// Intervals learnt from before the statistic starts, after each reset.
    pub const WARMUP: usize = 30;

    /// Allowance 0.5 (a 1 σ shift found fastest) and the `h` whose ERT is `ert` intervals.
    pub fn with_ert(ert: f64) -> Result<Self, DetectError> {
        Cusum::new(0.5, ert)
    }

    /// Allowance `k` and the `h` whose ERT is `ert` intervals.
    pub fn new(k: f64, ert: f64) -> Result<Self, DetectError> {
        let (k, ert) = (check_allowance("k", k)?, check_ert(ert)?);
        Ok(Cusum { k, h: decision_interval(k, ert), warmup: Cusum::WARMUP })
    }
}

impl Default for Cusum {
    fn default() -> Self {
        Cusum::with_ert(DEFAULT_ERT).expect("the default ERT is valid")
    }
}

impl Detector for Cusum {
    fn name(&self) -> &'static str {
        "cusum"
    }

    fn run(&self, points: &[Point]) -> Vec<Alarm> {
        struct State<'a>(&'a Cusum, f64, f64);
        impl Statistic for State<'_> {
            fn reset(&mut self) {
                (self.1, self.2) = (0.0, 0.0);
            }
            fn step(&mut self, z: f64) -> Option<(Direction, f64)> {
                let c = self.0;
                self.1 = (self.1 + z - c.k).max(0.0);
                self.2 = (self.2 - z - c.k).max(0.0);
                if self.1 > c.h {
                    Some((Direction::Up, self.1))
                } else if self.2 > c.h {
                    Some((Direction::Down, self.2))
                } else {
                    None
                }
            }
        }
        self_started(points, self.warmup, &mut State(self, 0.0, 0.0))
    }
}

/// Two-sided Page–Hinkley test on self-starting residuals.
#[derive(Clone, Debug)]
pub struct PageHinkley {
    /// Magnitude of changes to ignore, standard-error units.
    pub delta: f64,
    /// Threshold, standard-error units.
    pub lambda: f64,
    /// Intervals since a reset before the first residual.
    pub warmup: usize,
}

impl PageHinkley {
    /// `delta` 0.5 and the `lambda` whose ERT is `ert` intervals.
    pub fn with_ert(ert: f64) -> Result<Self, DetectError> {
        PageHinkley::new(0.5, ert)
    }

    /// `delta` and the `lambda` whose ERT is `ert` intervals: CUSUM's `h` for `k = delta`,
    /// which the running mean leaves within 10 % (measured, see the module docs).
    pub fn new(delta: f64, ert: f64) -> Result<Self, DetectError> {
        let (delta, ert) = (check_allowance("delta", delta)?, check_ert(ert)?);
        Ok(PageHinkley { delta, lambda: decision_interval(delta, ert), warmup: Cusum::WARMUP })
    }
}

impl Default for PageHinkley {
    fn default() -> Self {
        PageHinkley::with_ert(DEFAULT_ERT).expect("the default ERT is valid")
    }
}

impl Detector for PageHinkley {
    fn name(&self) -> &'static str {
        "page_hinkley"
    }

    fn run(&self, points: &[Point]) -> Vec<Alarm> {
        /// Count and running mean of z, the cumulative sums up and down and their extremes.
        struct State<'a> {
            ph: &'a PageHinkley,
            n: f64,
            mean: f64,
            up: f64,
            up_min: f64,
            down: f64,
            down_max: f64,
        }
        impl Statistic for State<'_> {
            fn reset(&mut self) {
                (self.n, self.mean) = (0.0, 0.0);
                (self.up, self.up_min, self.down, self.down_max) = (0.0, 0.0, 0.0, 0.0);
            }
            fn step(&mut self, z: f64) -> Option<(Direction, f64)> {
                self.n += 1.0;
                self.mean += (z - self.mean) / self.n;
                self.up += z - self.mean - self.ph.delta;
                self.up_min = self.up_min.min(self.up);
                self.down += z - self.mean + self.ph.delta;
                self.down_max = self.down_max.max(self.down);
                let (gap_up, gap_down) = (self.up - self.up_min, self.down_max - self.down);
                if gap_up > self.ph.lambda {
                    Some((Direction::Up, gap_up))
                } else if gap_down > self.ph.lambda {
                    Some((Direction::Down, gap_down))
                } else {
                    None
                }
            }
        }
        let mut state = State { ph: self, n: 0.0, mean: 0.0, up: 0.0, up_min: 0.0, down: 0.0, down_max: 0.0 };
        self_started(points, self.warmup, &mut state)
    }
}

#[cfg(test)]
mod tests;
