//! ADWIN over weighted items (an interval of `n` samples is one item of weight `n`).

use super::{Alarm, DetectError, Detector, Direction, Point, check_ert, check_positive, scale_of, screened};

/// The bound a cut's difference of means must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// river's: Hoeffding–Bernstein for values in [0, 1],
    /// `√(2 m σ̂² δ′) + ⅔ δ′ m` with `m = 1/(N₀ − L + 1) + 1/(N₁ − L + 1)`, `L` the
    /// minimum sub-window length. Its second term is in the values' units.
    Bernstein,
    /// `σ̂ √(2 δ′ (1/N₀ + 1/N₁))`: a z-test whose false alarms do not depend on the scale.
    Normal,
}

/// ADWIN (Bifet & Gavaldà 2007) over weighted items, alarming on the first cut and then
/// starting afresh, as river's `drift.ADWIN` does.
#[derive(Clone, Debug)]
pub struct Adwin {
    /// Confidence of each check: smaller, fewer false alarms.
    pub delta: f64,
    /// Check every `clock` items.
    pub clock: usize,
    /// Buckets kept per level before the two oldest merge.
    pub max_buckets: usize,
    /// Items in each sub-window of a cut, at least.
    pub min_window_length: usize,
    /// Items before the first check.
    pub grace_period: usize,
    /// The bound a cut must pass.
    pub bound: Bound,
}

/// Items held and screened for gross outliers after each reset (normal bound).
const ROBUST_START: usize = 30;

/// `ln δ = A + B ln ERT` for [`Adwin::with_ert`] (clock 1, normal bound), a least-squares
/// fit to the mean run lengths measured by
/// `cargo run --release -p modelwatch-query --example detector_calibration`.
const CALIBRATION: (f64, f64) = (3.686, -1.005);

impl Adwin {
    /// river's `drift.ADWIN(delta)` with its other defaults: clock 32, 5 buckets per level,
    /// sub-windows of at least 5, 10 items of grace, the Bernstein bound.
    pub fn with_delta(delta: f64) -> Result<Self, DetectError> {
        let delta = check_positive("delta", delta)?;
        if delta >= 1.0 {
            return Err(DetectError::Parameter { name: "delta", value: delta, why: "below 1" });
        }
        Ok(Adwin {
            delta,
            clock: 32,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
            bound: Bound::Bernstein,
        })
    }

    /// Checked at every item with the normal bound and the `δ` whose ERT is `ert` items.
    pub fn with_ert(ert: f64) -> Result<Self, DetectError> {
        let ert = check_ert(ert)?;
        let delta = (CALIBRATION.0 + CALIBRATION.1 * ert.ln()).exp().min(0.5);
        Ok(Adwin { clock: 1, bound: Bound::Normal, ..Adwin::with_delta(delta)? })
    }
}

impl Default for Adwin {
    fn default() -> Self {
        Adwin::with_ert(super::DEFAULT_ERT).expect("the default ERT is valid")
    }
}

/// A bucket: a run of items merged into their count, weight, weighted sum and
/// `Σ nᵢ (xᵢ − mean)²`.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    items: f64,
    weight: f64,
    sum: f64,
    m2: f64,
}

impl Bucket {
    fn mean(&self) -> f64 {
        self.sum / self.weight
    }

    /// The two merged (Chan et al.'s pairwise update of `m2`).
    fn merge(self, other: Bucket) -> Bucket {
        let weight = self.weight + other.weight;
        let d = self.mean() - other.mean();
        Bucket {
            items: self.items + other.items,
            weight,
            sum: self.sum + other.sum,
            m2: self.m2 + other.m2 + d * d * self.weight * other.weight / weight,
        }
    }
}

/// The window: levels of buckets, level `l` holding buckets of `2^l` items, oldest first.
#[derive(Default)]
struct Window {
    levels: Vec<Vec<Bucket>>,
    total: Bucket,
    ticks: usize,
}

impl Window {
    /// Adds an item; `false`, leaving the window as it was, when it would overflow the
    /// window's sums.
    fn insert(&mut self, x: f64, n: f64, max_buckets: usize) -> bool {
        let item = Bucket { items: 1.0, weight: n, sum: x * n, m2: 0.0 };
        let total = if self.total.weight > 0.0 { self.total.merge(item) } else { item };
        if !(total.sum.is_finite() && total.m2.is_finite() && total.weight.is_finite()) {
            return false;
        }
        self.total = total;
        if self.levels.is_empty() {
            self.levels.push(Vec::with_capacity(max_buckets + 1));
        }
        self.levels[0].push(item);
        let mut l = 0;
        while self.levels[l].len() > max_buckets {
            let merged = self.levels[l][0].merge(self.levels[l][1]);
            self.levels[l].drain(..2);
            if l + 1 == self.levels.len() {
                self.levels.push(Vec::with_capacity(max_buckets + 1));
            }
            self.levels[l + 1].push(merged);
            l += 1;
        }
        true
    }

    /// The per-sample variance of the window, `Σ nᵢ (xᵢ − x̄)² / I`. With the normal bound, a
    /// series that never varied still has a scale: a tiny one relative to its level (values
    /// are scaled to about 1), so that rounding in the sub-window means is no change.
    fn variance(&self, bound: Bound) -> f64 {
        let var = self.total.m2 / self.total.items;
        match bound {
            Bound::Bernstein => var,
            Bound::Normal => var.max((1e-9 * self.total.mean()).powi(2)).max(f64::MIN_POSITIVE),
        }
    }

    /// The first cut, from the oldest, whose means differ by more than the bound: the
    /// older part's mean, the newer part's, and the difference in standard errors.
    fn cut(&self, a: &Adwin) -> Option<(f64, f64, f64)> {
        let total = self.total;
        let var = self.variance(a.bound);
        let delta_prime = (2.0 * total.items.ln() / a.delta).ln();
        let min = a.min_window_length as f64;
        let mut old = Bucket::default();
        let buckets = self.levels.iter().rev().flat_map(|level| level.iter());
        let count = self.levels.iter().map(Vec::len).sum::<usize>();
        for b in buckets.take(count.saturating_sub(1)) {
            old.items += b.items;
            old.weight += b.weight;
            old.sum += b.sum;
            let (new_items, new_weight) = (total.items - old.items, total.weight - old.weight);
            if old.items < min || new_items < min {
                continue;
            }
            let (mean_old, mean_new) = (old.sum / old.weight, (total.sum - old.sum) / new_weight);
            let d = mean_old - mean_new;
            let eps = match a.bound {
                Bound::Bernstein => {
                    let m = 1.0 / (old.weight - min + 1.0) + 1.0 / (new_weight - min + 1.0);
                    (2.0 * m * var * delta_prime).sqrt() + 2.0 / 3.0 * delta_prime * m
                }
                Bound::Normal => (2.0 * (1.0 / old.weight + 1.0 / new_weight) * var * delta_prime).sqrt(),
            };
            if d.abs() > eps {
                let se = ((1.0 / old.weight + 1.0 / new_weight) * var).sqrt();
                return Some((mean_old, mean_new, if se > 0.0 { d.abs() / se } else { f64::INFINITY }));
            }
        }
        None
    }
}

impl Detector for Adwin {
    fn name(&self) -> &'static str {
        "adwin"
    }

    fn run(&self, points: &[Point]) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        let mut w = Window::default();
        let clock = self.clock.max(1);
        // river's bound is in the values' units (it assumes [0, 1]): only the normal bound,
        // which is scale-free, works on scaled values.
        let robust = self.bound == Bound::Normal;
        let scale = if robust { scale_of(points) } else { 1.0 };
        let buckets = self.max_buckets.max(1);
        // With the normal bound, one gross outlier must not blind the window: the first
        // `ROBUST_START` items after a reset are screened as CUSUM's warm-up is, and later
        // items are held within 10 standard errors of the window's mean (a step larger than
        // that is still a step of 10 standard errors, found at once).
        let mut first: Vec<(f64, f64)> = Vec::new();
        for (i, p) in points.iter().enumerate() {
            if !p.usable() {
                continue;
            }
            let mut x = p.value / scale;
            if robust && w.total.items == 0.0 {
                first.push((x, p.n));
                if first.len() == ROBUST_START {
                    for (x, n) in screened(&first) {
                        if w.insert(x, n, buckets) {
                            w.ticks += 1;
                        }
                    }
                    first.clear();
                }
                continue;
            }
            if robust {
                let (mean, reach) = (w.total.mean(), 10.0 * (w.variance(self.bound) / p.n).sqrt());
                x = x.clamp(mean - reach, mean + reach);
            }
            if !w.insert(x, p.n, buckets) {
                continue;
            }
            w.ticks += 1;
            if w.ticks % clock != 0 || w.total.items <= self.grace_period as f64 {
                continue;
            }
            if let Some((old, new, statistic)) = w.cut(self) {
                let direction = if new > old { Direction::Up } else { Direction::Down };
                let baseline = old * scale;
                alarms.push(Alarm { index: i, time_ms: p.time_ms, direction, statistic, baseline });
                w = Window::default();
            }
        }
        alarms
    }
}
