//! Drift between a reference and a current window, computed from stored distributions
//! (mergeable over any window, so a 7-day reference costs one read of hourly roll-ups).
//!
//! Numeric features and the confidence score get, per feature:
//! - **PSI** over bins cut at the reference's quantiles (default 10 bins; an empty bin
//!   counts as 0.0001 of its side, as Evidently does). Thresholds 0.1 (warning), 0.2 (drift).
//! - **Kolmogorov–Smirnov** statistic D (the largest gap between the two CDFs, read at every
//!   bucket) and its asymptotic p-value from the counts (`kstwobign.sf(√(nm/(n+m))·D)`), with
//!   an optional Bonferroni or Benjamini–Hochberg correction across features; p < 0.05.
//! - **Jensen–Shannon distance** (natural log, as scipy and Evidently) and **Hellinger
//!   distance** over the PSI bins; 0.1 each.
//! - **Wasserstein distance** (W1) divided by the reference's standard deviation; 0.1. It is
//!   the larger of the binned figure and |Δmean| / σ from the exact moments (W1 is never
//!   below the distance between the means), so a shift smaller than a bucket still counts.
//! - The change in mean, median and standard deviation.
//!
//! Categorical features get the chi-squared test of homogeneity (the 2 × K table of counts,
//! as `scipy.stats.chi2_contingency`; p < 0.05), and the Jensen–Shannon distance (0.1), PSI
//! and Hellinger distance of the category shares. Categories the reference never saw are
//! named with their share.
//!
//! # The verdict
//!
//! A feature drifts when its **effect size** crosses its threshold — normed Wasserstein for
//! numeric features (as Evidently does past 1,000 rows), JS distance for categorical ones —
//! **and** the difference is significant at α (0.05): for numeric features twice the smaller
//! of the KS and Welch t-test p-values (a Bonferroni bound over the two tests: KS sees a
//! change of shape, Welch's t on the exact moments a change of mean the buckets cannot
//! resolve), for categorical ones the chi-squared test's. The two conditions answer two
//! sizes of window: at production volumes every test is significant and the effect size
//! decides (ARCHITECTURE.md, "Drift verdicts"); between two windows of 100 rows of one
//! distribution the normed Wasserstein distance routinely passes 0.1, and the test decides.
//! Measured over 200 seeded pairs of windows × 20 features of varied shapes
//! (`tests/drift.rs`): with no drift 3.4 % of features are called drifting at 100 rows and
//! 3.1 % at 30; a 1 σ shift is found in 100 % of windows at 100 rows and 94 % at 30. A
//! threshold growing as 1/√n would do the same for one shape of distribution only; the test
//! holds for any.
//!
//! Below `min_rows` (30) values on either side the verdict is **insufficient data**: the
//! statistics are still shown, the verdict is not given, and the share of drifting features
//! does not count the feature. A feature absent from one window, or whose values are all
//! missing there, is reported the same way with the reason (`not in the reference`, `all
//! 1000 values missing or invalid in the current window`).
//!
//! A numeric feature whose reference's median bucket is wider than `low_resolution` (0.5)
//! of its standard deviation is marked **low resolution**, beside its verdict: its binned
//! statistics (KS, PSI, JS, Hellinger, the binned Wasserstein figure) see it through a
//! handful of buckets, while the mean and σ stay exact. A latitude of 52.52 ± 0.05
//! (buckets 1 wide there, 20 σ), epoch seconds and values above 2^40 are such features. A
//! shift of their mean counts through |Δmean| / σ; a change of their spread alone (σ × 1.5
//! or more, significant by the F-test on the exact variances) is a **warning** with both
//! σ, since no binned statistic can judge their shape.
//!
//! Rounding never decides: the effect's scale is σ, but at least 10⁻¹² of the larger mean's
//! magnitude (and the smallest normal double), so a constant reference against values that
//! differ in their last bit, or subnormals whose squares vanish, are no effect; a real
//! change from a constant reference drifts, and the reason says the reference is constant.
//! Moments that overflow a double (values too large or too far apart to square) give no
//! verdict, with that reason, rather than a confident "ok".
//!
//! The dataset drifts when the share of drifting features, among those judged, reaches 0.5.
//!
//! # Where the figures differ from scipy's and numpy's
//!
//! The sketch's buckets are 1.6–3.1 % of |x| wide (a value is within 1.5 % of its bucket's
//! representative), so statistics read from them differ from those of
//! the raw values by at most the mass of one bucket (D) or a bucket's width (Wasserstein,
//! quantile cut points); mean and standard deviation are exact. Beyond the binning:
//! - The KS p-value is the limiting distribution's, `kstwobign.sf(√(nm/(n+m))·D)`, while
//!   `scipy.stats.ks_2samp(method="asymp")` (scipy ≥ 1.5) takes the finite-n one-sample
//!   distribution `kstwo.sf(D, round(nm/(n+m)))`. Ours is the larger, so the more
//!   conservative: where ours is 0.05, scipy's is 0.037 at nm/(n+m) = 15, 0.043 at 50,
//!   0.048 at 500 and 0.049 at 5,000.
//! - The PSI cut points are the reference's bucket values at which its cumulative count
//!   first reaches 10 %, 20 %, ... (an inverted CDF, no interpolation), deduplicated;
//!   Evidently's `np.quantile` interpolates linearly between the two order statistics
//!   around each quantile (numpy's default, type 7). A cut point therefore moves by at
//!   most a bucket, and the bins are `[e_i, e_{i+1})` as `np.histogram`'s.

//! # Layout
//!
//! - One module per statistic (`psi`, `ks`, `js`, `hellinger`, `wasserstein`, `chi2`): its
//!   formula and its verdict, for the kinds of feature it applies to. Adding a statistic is
//!   such a module and a line in [`Statistic`] (the compiler then asks for its arm in
//!   `Statistic::measure`).
//! - `sample`: what the statistics read (points, PSI bins, CDF gaps).
//! - `profile`: a window's [`Profile`], read from the store.
//! - `verdict`: thresholds, each feature's rows and verdict, the correction, the
//!   [`DriftReport`].
//! - `data_quality`: the data-quality checks.
//! - `series`: a report per window, as series; `document`: a report as one document.

mod chi2;
mod data_quality;
mod document;
mod hellinger;
mod js;
mod ks;
mod profile;
mod psi;
mod sample;
mod series;
mod verdict;
mod wasserstein;

pub use chi2::chi2_statistic;
pub use data_quality::{QualityCheck, QualityThresholds, data_quality};
pub use document::{DriftDocument, FeatureVerdict};
pub use hellinger::hellinger;
pub use js::js_distance;
pub use ks::ks_statistic;
pub use profile::{Profile, eq, profile};
pub use psi::psi;
pub use sample::{binned_shares, points};
pub use series::{DriftSeries, series};
pub use verdict::{
    Correction, DriftConfig, DriftReport, FeatureDrift, Measure, NewCategory, StatRow, Summary, Verdict,
    categorical_drift, compare, numeric_drift, report,
};
pub use wasserstein::wasserstein_distance;

use sample::Sample;
use verdict::Measured;

crate::names::named_enum! {
    /// A drift statistic. A feature's rows list its effect size first (normed Wasserstein for
    /// numeric features, JS for categorical ones), then the other statistics that apply to
    /// it in this order.
    pub enum Statistic("drift statistic") {
        /// Normed Wasserstein distance (numeric features; their effect size).
        WassersteinNorm = "wasserstein_norm",
        /// Chi-squared test (categorical features).
        Chi2 = "chi2",
        /// Population stability index.
        Psi = "psi",
        /// Kolmogorov–Smirnov test (numeric features).
        Ks = "ks",
        /// Jensen–Shannon distance (the effect size of categorical features).
        Js = "js",
        /// Hellinger distance.
        Hellinger = "hellinger",
    }
}

impl Statistic {
    /// A test, whose row's threshold is α and whose verdict its p-value gives.
    pub fn is_test(self) -> bool {
        matches!(self, Statistic::Chi2 | Statistic::Ks)
    }

    /// This statistic of one feature, `None` where it does not apply to the feature's kind.
    fn measure(self, sample: &Sample<'_>, cfg: &DriftConfig) -> Option<Measured> {
        match self {
            Statistic::WassersteinNorm => wasserstein::measure(sample, cfg),
            Statistic::Chi2 => chi2::measure(sample, cfg),
            Statistic::Psi => psi::measure(sample, cfg),
            Statistic::Ks => ks::measure(sample, cfg),
            Statistic::Js => js::measure(sample, cfg),
            Statistic::Hellinger => hellinger::measure(sample, cfg),
        }
    }
}
