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
//! - **Wasserstein distance** (W1) divided by the reference's standard deviation; 0.1.
//! - The change in mean, median and standard deviation.
//!
//! Categorical features get the chi-squared test (current counts against the reference's
//! proportions; p < 0.05), and the Jensen–Shannon distance (0.1), PSI and Hellinger
//! distance of the category shares.
//!
//! A feature drifts when its **effect size** crosses its threshold: normed Wasserstein for
//! numeric features (as Evidently does past 1,000 rows), JS distance for categorical ones.
//! The p-values are reported beside it as evidence, not as the verdict: at production
//! volumes every test is significant (see ARCHITECTURE.md, "Drift verdicts"). The dataset
//! drifts when the share of drifting features reaches 0.5.
//!
//! The sketch's buckets are 1.5 % wide, so statistics read from them differ from those of
//! the raw values by at most the mass of one bucket (D) or a bucket's width (Wasserstein,
//! quantile cut points); mean and standard deviation are exact.
//!
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
pub use document::DriftDocument;
pub use hellinger::hellinger;
pub use js::js_distance;
pub use ks::ks_statistic;
pub use profile::{Profile, eq, profile};
pub use psi::psi;
pub use sample::{binned_shares, points};
pub use series::{DriftSeries, series};
pub use verdict::{
    Correction, DriftConfig, DriftReport, FeatureDrift, Measure, StatRow, Summary, Verdict,
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
