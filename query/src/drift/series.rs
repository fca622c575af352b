//! Drift over time: one report per window against a fixed reference, as series (the
//! dashboard's `drift` target).

use super::verdict::{DriftConfig, Measure, compare};
use super::{Profile, Statistic, profile};
use crate::engine::{QueryError, Series};
use crate::names::UnknownName;
use crate::parse::Matcher;
use modelwatch_store::Store;
use std::collections::BTreeMap;

/// What a drift series follows, window by window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriftSeries {
    /// A statistic's value (a test's statistic, not its p-value), one series per feature.
    Statistic(Statistic),
    /// The share of drifting features, one series without tags.
    Share,
}

impl DriftSeries {
    /// Every statistic, then the share: the valid names, in this order.
    pub const ALL: [DriftSeries; Statistic::ALL.len() + 1] = {
        let mut all = [DriftSeries::Share; Statistic::ALL.len() + 1];
        let mut i = 0;
        while i < Statistic::ALL.len() {
            all[i] = DriftSeries::Statistic(Statistic::ALL[i]);
            i += 1;
        }
        all
    };

    /// The statistic's name, or `share`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftSeries::Statistic(s) => s.as_str(),
            DriftSeries::Share => "share",
        }
    }
}

/// The normed Wasserstein distance, the numeric features' effect size.
impl Default for DriftSeries {
    fn default() -> Self {
        DriftSeries::Statistic(Statistic::WassersteinNorm)
    }
}

impl std::fmt::Display for DriftSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DriftSeries {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriftSeries::ALL.into_iter().find(|d| d.as_str() == s).ok_or_else(|| UnknownName {
            what: "drift series",
            name: s.to_string(),
            valid: DriftSeries::ALL.iter().map(|d| d.to_string()).collect(),
        })
    }
}

/// Per window, the drift report of the series `series_filters` select against `reference`,
/// reduced to `which`: a series per feature that `feature_filters` keep (tagged `feature`),
/// or one untagged series of the share of drifting features. A window without a feature
/// judged against the reference (in common with it, with enough values) has no point.
pub fn series(
    store: &Store,
    reference: &Profile,
    series_filters: &[Matcher],
    feature_filters: &[Matcher],
    which: DriftSeries,
    windows: &[(i64, i64)],
    cfg: &DriftConfig,
) -> Result<Vec<Series>, QueryError> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for &(from, to) in windows {
        let current = profile(store, series_filters, from, to)?;
        let report = compare(reference, &current, cfg);
        let statistic = match which {
            DriftSeries::Share => {
                if report.judged() > 0 {
                    out.entry(String::new()).or_default().push((from, report.drifting_share));
                }
                continue;
            }
            DriftSeries::Statistic(s) => Measure::Statistic(s),
        };
        for f in &report.features {
            if !feature_filters.iter().all(|m| m.matches(&f.feature)) {
                continue;
            }
            if let Some(s) = f.stats.iter().find(|s| s.statistic == statistic) {
                out.entry(f.feature.clone()).or_default().push((from, s.value));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(feature, points)| Series {
            tags: if feature.is_empty() {
                BTreeMap::new()
            } else {
                BTreeMap::from([("feature".into(), feature)])
            },
            points,
            buckets: Vec::new(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::eq;
    use crate::testing::{HOUR, Recorder, T0};
    use modelwatch_agent::{Agent, Feature, Prediction};
    use std::sync::Arc;
    use std::time::Duration;

    /// Three hours of `len` (stationary) and `shift` (moves by 5 in the third hour), with
    /// confidence 0.8, every minute.
    fn store() -> (tempfile::TempDir, Arc<Store>) {
        let builder = Agent::builder("pii")
            .segments(["email"])
            .features([Feature::numeric("len"), Feature::numeric("shift")]);
        let rec = Recorder::new(builder, Duration::from_secs(60));
        let h = rec.handle();
        for minute in 0..180i64 {
            let moved = if minute >= 120 { 5.0 } else { 0.0 };
            for i in 0..50 {
                let x = (i % 10) as f64;
                h.record(&Prediction::new("email", Duration::from_millis(2), 0.8).features(&[x, x + moved]));
            }
            rec.advance_to(T0 + (minute + 1) * 60_000);
        }
        rec.finish()
    }

    #[test]
    fn a_report_per_window_against_the_reference() {
        let (_dir, store) = store();
        let filters = [eq("model", "pii")];
        let reference = profile(&store, &filters, T0, T0 + HOUR).unwrap();
        let windows =
            [(T0 + HOUR, T0 + 2 * HOUR), (T0 + 2 * HOUR, T0 + 3 * HOUR), (T0 + 3 * HOUR, T0 + 4 * HOUR)];
        let cfg = DriftConfig::default();
        let w = series(&store, &reference, &filters, &[], DriftSeries::default(), &windows, &cfg).unwrap();
        let names: Vec<&str> = w.iter().map(|s| s.tags["feature"].as_str()).collect();
        assert_eq!(names, ["confidence", "len", "shift"]);
        // The empty fourth hour has no point; `shift` moved by 5 (std 2.87) in the third.
        assert_eq!(w[1].points, [(T0 + HOUR, 0.0), (T0 + 2 * HOUR, 0.0)]);
        assert_eq!(w[2].points[0], (T0 + HOUR, 0.0));
        assert!(w[2].points[1].1 > 1.0, "{:?}", w[2].points);
        // Each point is the report's own number.
        let third =
            compare(&reference, &profile(&store, &filters, T0 + 2 * HOUR, T0 + 3 * HOUR).unwrap(), &cfg);
        let psi = series(
            &store,
            &reference,
            &filters,
            &[eq("feature", "shift")],
            "psi".parse().unwrap(),
            &windows,
            &cfg,
        )
        .unwrap();
        let row = third.features.iter().find(|f| f.feature == "shift").unwrap();
        let expected = row.stats.iter().find(|s| s.statistic == "psi").unwrap().value;
        assert_eq!((psi.len(), psi[0].points[1]), (1, (T0 + 2 * HOUR, expected)));
        let share = series(&store, &reference, &filters, &[], DriftSeries::Share, &windows, &cfg).unwrap();
        assert!(share[0].tags.is_empty());
        assert_eq!(share[0].points, [(T0 + HOUR, 0.0), (T0 + 2 * HOUR, 1.0 / 3.0)]);
    }

    #[test]
    fn drift_series_names_derive_from_the_statistics() {
        let names: Vec<String> = DriftSeries::ALL.iter().map(|d| d.to_string()).collect();
        assert_eq!(names, ["wasserstein_norm", "chi2", "psi", "ks", "js", "hellinger", "share"]);
        for d in DriftSeries::ALL {
            assert_eq!(d.as_str().parse::<DriftSeries>(), Ok(d));
        }
        let e = "vibes".parse::<DriftSeries>().unwrap_err().to_string();
        assert!(e.contains("vibes") && e.contains("wasserstein_norm, chi2") && e.ends_with("share"), "{e}");
    }
}
