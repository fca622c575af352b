//! The share of failed requests: errors / (predictions + errors) per window and group.

use crate::engine::{Limits, QueryError, Range, Series, run};
use crate::parse::{Func, Query};
use modelwatch_store::Store;
use std::collections::BTreeMap;

/// `errors / (predictions + errors)` per window and group of `q` (its matchers and `by`;
/// its metric and function are ignored). A `kind` matcher (the error kind) narrows the
/// errors only: predictions have no kind. A window with neither predictions nor errors has
/// no point; a group with errors but no predictions has no series.
pub fn error_ratio(
    store: &Store,
    q: &Query,
    range: Range,
    limits: Limits,
) -> Result<Vec<Series>, QueryError> {
    let with = |metric: &str, keep_kind: bool| Query {
        func: Func::Sum,
        explicit: true,
        metric: metric.to_string(),
        matchers: q.matchers.iter().filter(|m| keep_kind || m.label != "kind").cloned().collect(),
        by: q.by.clone(),
    };
    let errors = run(store, &with("errors", true), range, limits)?;
    let predictions = run(store, &with("predictions", false), range, limits)?;
    let mut out = Vec::new();
    for p in &predictions {
        let e: BTreeMap<i64, f64> = errors
            .iter()
            .find(|e| e.tags == p.tags)
            .map(|e| e.points.iter().copied().collect())
            .unwrap_or_default();
        let points = p
            .points
            .iter()
            .filter_map(|&(t, n)| {
                let errs = e.get(&t).copied().unwrap_or(0.0);
                (n + errs > 0.0).then(|| (t, errs / (n + errs)))
            })
            .collect();
        out.push(Series { tags: p.tags.clone(), points, buckets: Vec::new() });
    }
    Ok(out)
}

/// The name of the derived metric [`error_ratio`] answers.
pub const ERROR_RATIO: &str = "error_ratio";

/// `q`'s answer: [`error_ratio`] when it names that metric (`error_ratio{model="pii"} by
/// (variant)`), else [`run`]. What the CLI and the reports evaluate.
pub fn answer(store: &Store, q: &Query, range: Range, limits: Limits) -> Result<Vec<Series>, QueryError> {
    if q.metric == ERROR_RATIO { error_ratio(store, q, range, limits) } else { run(store, q, range, limits) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use crate::testing::{Recorder, T0};
    use modelwatch_agent::{Agent, Prediction};
    use std::sync::Arc;
    use std::time::Duration;

    /// Two minutes: email has 3 predictions and 1 timeout in the first, 4 predictions in the
    /// second; phone 1 prediction and 2 errors (a timeout, an oom) in the first.
    fn store() -> (tempfile::TempDir, Arc<Store>) {
        let builder = Agent::builder("pii").segments(["email", "phone"]).error_kinds(["timeout", "oom"]);
        let rec = Recorder::new(builder, Duration::from_secs(60));
        let h = rec.handle();
        let predict = |segment: &str, n: usize| {
            for _ in 0..n {
                h.record(&Prediction::new(segment, Duration::from_millis(2), 0.7));
            }
        };
        predict("email", 3);
        predict("phone", 1);
        h.error("email", h.error_kind("timeout"));
        h.error("phone", h.error_kind("timeout"));
        h.error("phone", h.error_kind("oom"));
        rec.advance_to(T0 + 60_000);
        predict("email", 4);
        rec.advance_to(T0 + 120_000);
        rec.finish()
    }

    fn ratio(store: &Store, query: &str) -> Vec<Series> {
        let range = Range { from_ms: T0, to_ms: T0 + 120_000, step_ms: 60_000 };
        error_ratio(store, &parse(query).unwrap(), range, Limits::default()).unwrap()
    }

    #[test]
    fn errors_over_predictions_plus_errors_per_window_and_group() {
        let (_dir, store) = store();
        let by_segment = ratio(&store, "error_ratio by (segment)");
        let segment = |name: &str| {
            by_segment.iter().find(|s| s.tags["segment"] == name).unwrap_or_else(|| panic!("{name}")).clone()
        };
        // email: 1 / (3 + 1), then 0 / (4 + 0); phone: 2 / (1 + 2), and no point in the
        // second window, which has neither predictions nor errors.
        assert_eq!(segment("email").points, [(T0, 0.25), (T0 + 60_000, 0.0)]);
        assert_eq!(segment("phone").points, [(T0, 2.0 / 3.0)]);
        let all = ratio(&store, "error_ratio");
        assert_eq!(all[0].points, [(T0, 3.0 / 7.0), (T0 + 60_000, 0.0)]);
        // A kind narrows the errors, not the predictions.
        let timeouts = ratio(&store, r#"error_ratio{kind="timeout"}"#);
        assert_eq!(timeouts[0].points[0], (T0, 2.0 / 6.0));
        let email = ratio(&store, r#"error_ratio{segment="email", kind="oom"}"#);
        assert_eq!(email[0].points, [(T0, 0.0), (T0 + 60_000, 0.0)]);
    }
}
