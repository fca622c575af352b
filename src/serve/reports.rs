//! Drift and quality as Grafana time series: the targets `drift` and `quality` of
//! `/grafana/query`, one value per window of the panel (at least an hour, at most 48
//! windows, since each window is a whole report: `modelwatch_query::report_windows`). The
//! numbers come from `drift::series` and `quality::series`; this module reads the payload.
//!
//! - `drift`: payload `reference` (a saved baseline's name or a range, default
//!   `now-8d..now-1d`), `statistic` (one of `DriftSeries::ALL`: a drift statistic, or
//!   `share`, the share of drifting features; `wasserstein_norm` by default), `feature` to
//!   pick features, label filters; a series per feature.
//! - `quality`: payload `statistic` (`quality::Statistic::ALL`, `precision` by default),
//!   `show` (`quality::Show::ALL`, `both` by default), `by` (a label), `reference` (the
//!   labelled range the estimate is calibrated on; default the week before the panel's
//!   range), `threshold` (0.5); a series per group and kind.

use super::grafana::{option_str, payload_filters, text, unescape};
use super::{ApiError, AppState};
use modelwatch_query::drift::{self, DriftConfig, DriftSeries};
use modelwatch_query::quality::{self, QualitySeries};
use modelwatch_query::{Matcher, Range, Series, report_windows};
use serde_json::Value;
use std::sync::Arc;

/// A payload field naming one of a closed set, or `default` when absent.
fn named<T: std::str::FromStr<Err = modelwatch_query::UnknownName>>(
    payload: &Value,
    key: &str,
    default: T,
) -> Result<T, ApiError> {
    option_str(payload, key)
        .map_or(Ok(default), |s| s.parse())
        .map_err(|e| ApiError::bad_request(format!("payload.{key}: {e}")))
}

/// A `drift` target's series, computed on this thread (a blocking one: see
/// `AppState::run_limited`).
pub(super) fn drift_series(
    state: &Arc<AppState>,
    payload: &Value,
    adhoc: &[Matcher],
    range: Range,
) -> Result<Vec<Series>, ApiError> {
    let spec = option_str(payload, "reference").unwrap_or_else(|| "now-8d..now-1d".into());
    state.check_range("the range", range.from_ms, range.to_ms)?;
    // A baseline's name is a saved profile; a range is read whole.
    if let Ok((from, to)) = crate::time::parse_range(&spec, state.now_ms()) {
        state.check_range("payload.reference", from, to)?;
    }
    let which = named(payload, "statistic", DriftSeries::default())?;
    let mut matchers = payload_filters(payload)?;
    matchers.extend(adhoc.iter().cloned());
    let (series_filters, feature_filters): (Vec<_>, Vec<_>) =
        matchers.into_iter().partition(|m| m.label != "feature");
    let store = &state.store;
    let (reference, _) =
        crate::baseline::reference(store, store.dir(), &spec, &series_filters, state.now_ms()).map_err(
            |e| match e {
                // A timeout or a store failure is not the payload's fault.
                crate::baseline::BaselineError::Query(e) => ApiError::from(e).context("payload.reference"),
                e => ApiError::bad_request(format!("payload.reference: {e:#}")),
            },
        )?;
    let windows = report_windows(range);
    let cfg = DriftConfig::default();
    Ok(drift::series(store, &reference, &series_filters, &feature_filters, which, &windows, &cfg)?)
}

/// A `quality` target's series, computed on this thread (a blocking one).
pub(super) fn quality_series(
    state: &Arc<AppState>,
    payload: &Value,
    adhoc: &[Matcher],
    range: Range,
) -> Result<Vec<Series>, ApiError> {
    let d = QualitySeries::default();
    let which = QualitySeries {
        statistic: named(payload, "statistic", d.statistic)?,
        show: named(payload, "show", d.show)?,
    };
    let threshold = match payload.get("threshold") {
        None | Some(Value::Null) => 0.5,
        Some(v) => {
            unescape(&text(v)).parse::<f64>().ok().filter(|t| (0.0..=1.0).contains(t)).ok_or_else(|| {
                ApiError::bad_request(format!("payload.threshold {v}: a confidence in [0, 1]"))
            })?
        }
    };
    let reference = match option_str(payload, "reference") {
        Some(r) => crate::time::parse_range(&r, state.now_ms())
            .map_err(|e| ApiError::from(e).context("payload.reference"))?,
        None => (range.from_ms - 7 * 86_400_000, range.from_ms),
    };
    state.check_range("the range", range.from_ms, range.to_ms)?;
    state.check_range("payload.reference", reference.0, reference.1)?;
    let by: Vec<String> = payload.get("by").map(super::grafana::labels_of).unwrap_or_default();
    super::grafana::check_filters(by.len(), "labels to group by")?;
    let mut matchers = payload_filters(payload)?;
    matchers.extend(adhoc.iter().cloned());
    let windows = report_windows(range);
    Ok(quality::series(&state.store, &matchers, &by, which, &windows, reference, threshold)?)
}

/// The names a `drift` target's `statistic` takes, for the builder's options.
pub(super) fn drift_statistics() -> Vec<String> {
    DriftSeries::ALL.iter().map(|d| d.to_string()).collect()
}

/// The names a `quality` target's `statistic` and `show` take.
pub(super) fn quality_options() -> (Vec<String>, Vec<String>) {
    (
        quality::Statistic::ALL.iter().map(|s| s.to_string()).collect(),
        quality::Show::ALL.iter().map(|s| s.to_string()).collect(),
    )
}
