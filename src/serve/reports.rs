//! Drift and quality as Grafana time series: the targets `drift` and `quality` of
//! `/grafana/query`, one value per window of the panel (at least an hour, at most 48
//! windows, since each window is a whole report).
//!
//! - `drift`: payload `reference` (a saved baseline's name or a range, default
//!   `now-8d..now-1d`), `statistic` (`wasserstein_norm` by default, `psi`, `ks`, `js`,
//!   `hellinger`, `chi2`, or `share`: the share of drifting features), `feature` to pick
//!   features, label filters; a series per feature.
//! - `quality`: payload `statistic` (`precision` by default, `recall`, `f1`, `auc`), `show`
//!   (`both` by default, `realised`, `estimated`), `by` (a label), `reference` (the labelled
//!   range the estimate is calibrated on; default the week before the panel's range),
//!   `threshold` (0.5); a series per group and kind.

use super::grafana::{payload_filters, payload_str};
use super::{ApiError, AppState, NICE_STEPS};
use modelwatch_query::drift::{self, DriftConfig};
use modelwatch_query::{Matcher, Range, Series};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Windows for a report series: the panel's windows widened to an hour or more, at most 48.
fn windows(range: Range) -> Vec<(i64, i64)> {
    let span = range.to_ms - range.from_ms;
    let wanted = range.step_ms.max(3_600_000).max(span / 48);
    let step = NICE_STEPS.iter().copied().find(|&s| s >= wanted).unwrap_or(wanted);
    let from = range.from_ms.div_euclid(step) * step;
    (0..).map(|k| from + k * step).take_while(|&t| t < range.to_ms).map(|t| (t, t + step)).collect()
}

fn split_feature(matchers: Vec<Matcher>) -> (Vec<Matcher>, Vec<Matcher>) {
    matchers.into_iter().partition(|m| m.label != "feature")
}

pub(super) async fn drift_series(
    state: &Arc<AppState>,
    payload: &Value,
    adhoc: &[Matcher],
    range: Range,
    deadline: Instant,
) -> Result<Vec<Series>, ApiError> {
    let spec = payload_str(payload, "reference").unwrap_or("now-8d..now-1d").to_string();
    let statistic = payload_str(payload, "statistic").unwrap_or("wasserstein_norm").to_string();
    const STATS: [&str; 7] = ["wasserstein_norm", "psi", "ks", "js", "hellinger", "chi2", "share"];
    if !STATS.contains(&statistic.as_str()) {
        return Err(ApiError::bad_request(format!(
            "payload.statistic {statistic:?}: one of {}",
            STATS.join(", ")
        )));
    }
    let mut matchers = payload_filters(payload)?;
    matchers.extend(adhoc.iter().cloned());
    let (series_filters, feature_filters) = split_feature(matchers);
    let data = state.store.dir().to_path_buf();
    let windows = windows(range);
    state
        .blocking(deadline, move |store| {
            let now = super::now_ms();
            let (reference, _) = crate::baseline::reference(store, &data, &spec, &series_filters, now)
                .map_err(|e| ApiError::bad_request(format!("payload.reference: {e:#}")))?;
            let cfg = DriftConfig::default();
            let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            for (from, to) in windows {
                let current = drift::profile(store, &series_filters, from, to)?;
                let report = drift::compare(&reference, &current, &cfg);
                if statistic == "share" {
                    if !report.features.is_empty() {
                        out.entry(String::new()).or_default().push((from, report.drifting_share));
                    }
                    continue;
                }
                for f in &report.features {
                    if !feature_filters.iter().all(|m| m.matches(&f.feature)) {
                        continue;
                    }
                    if let Some(s) = f.stats.iter().find(|s| s.statistic == statistic.as_str()) {
                        // Tests report their statistic; the p-value is in the table views.
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
        })
        .await
}

pub(super) async fn quality_series(
    state: &Arc<AppState>,
    payload: &Value,
    adhoc: &[Matcher],
    range: Range,
    deadline: Instant,
) -> Result<Vec<Series>, ApiError> {
    let statistic = payload_str(payload, "statistic").unwrap_or("precision").to_string();
    if !["precision", "recall", "f1", "auc"].contains(&statistic.as_str()) {
        return Err(ApiError::bad_request(format!(
            "payload.statistic {statistic:?}: precision, recall, f1 or auc"
        )));
    }
    let show = payload_str(payload, "show").unwrap_or("both").to_string();
    if !["both", "realised", "estimated"].contains(&show.as_str()) {
        return Err(ApiError::bad_request(format!("payload.show {show:?}: both, realised or estimated")));
    }
    let threshold = match payload.get("threshold") {
        None | Some(Value::Null) => 0.5,
        Some(v) => {
            super::grafana::text(v).parse::<f64>().ok().filter(|t| (0.0..=1.0).contains(t)).ok_or_else(
                || ApiError::bad_request(format!("payload.threshold {v}: a confidence in [0, 1]")),
            )?
        }
    };
    let now = super::now_ms();
    let reference = match payload_str(payload, "reference") {
        Some(r) => super::parse_range(r, now)
            .map_err(|e| ApiError::bad_request(format!("payload.reference: {e}")))?,
        None => (range.from_ms - 7 * 86_400_000, range.from_ms),
    };
    let by: Vec<String> = payload.get("by").map(super::grafana::labels_of).unwrap_or_default();
    let mut matchers = payload_filters(payload)?;
    matchers.extend(adhoc.iter().cloned());
    let windows = windows(range);
    state
        .blocking(deadline, move |store| {
            let mut out: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
            let pick = |q: &modelwatch_query::quality::Quality| match statistic.as_str() {
                "precision" => q.precision,
                "recall" => q.recall,
                "f1" => q.f1,
                _ => q.auc,
            };
            for (from, to) in windows {
                let rows = modelwatch_query::quality::quality(
                    store,
                    &matchers,
                    &by,
                    from,
                    to,
                    Some(reference),
                    threshold,
                )?;
                for r in rows {
                    let mut kinds = Vec::new();
                    if show != "estimated" && r.realised.n > 0.0 {
                        kinds.push(("realised", pick(&r.realised)));
                    }
                    if show != "realised"
                        && let Some(e) = &r.estimated
                    {
                        kinds.push(("estimated", pick(e)));
                    }
                    for (kind, v) in kinds {
                        if v.is_finite() {
                            let mut tags = r.tags.clone();
                            tags.insert("kind".into(), kind.into());
                            out.entry(tags).or_default().push((from, v));
                        }
                    }
                }
            }
            Ok(out.into_iter().map(|(tags, points)| Series { tags, points, buckets: Vec::new() }).collect())
        })
        .await
}
