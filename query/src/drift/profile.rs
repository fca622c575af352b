//! Profiles: the distributions and category counts of one window, read from the store
//! through the query engine; what drift reports and data-quality checks compare.

use crate::engine::{Limits, QueryError, Range, merged, run};
use crate::parse::{Func, Matcher, Op, Query};
use modelwatch_store::{DistributionRow, Store};
use std::collections::BTreeMap;

/// The distributions and category counts of one window, per feature, read through the query
/// engine (`confidence` for the confidence score).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Profile {
    /// Numeric features (and `confidence`): the merged distribution of the window.
    pub numeric: BTreeMap<String, DistributionRow>,
    /// Categorical features: count per category.
    pub categorical: BTreeMap<String, BTreeMap<String, f64>>,
    /// Missing values per categorical feature.
    pub categorical_missing: BTreeMap<String, f64>,
    /// Feature vectors of the wrong length in the window.
    #[serde(default)]
    pub schema_errors: f64,
}

/// Reads the profile of `[from_ms, to_ms)` for the series the matchers select (a model, a
/// version, a segment...).
pub fn profile(store: &Store, matchers: &[Matcher], from_ms: i64, to_ms: i64) -> Result<Profile, QueryError> {
    let q = |metric: &str, by: &[&str]| Query {
        func: Func::Count,
        explicit: true,
        metric: metric.to_string(),
        matchers: matchers.to_vec(),
        by: by.iter().map(|s| s.to_string()).collect(),
    };
    let mut out = Profile::default();
    for (tags, row) in merged(store, &q("feature", &["feature"]), from_ms, to_ms)? {
        out.numeric.insert(tags.get("feature").cloned().unwrap_or_default(), row);
    }
    if let Some((_, row)) = merged(store, &q("confidence", &[]), from_ms, to_ms)?.into_iter().next() {
        out.numeric.insert("confidence".into(), row);
    }
    let range = Range { from_ms, to_ms, step_ms: (to_ms - from_ms).max(1) };
    let limits = Limits::default();
    let cats = run(
        store,
        &Query { func: Func::Sum, ..q("feature_category", &["feature", "category"]) },
        range,
        limits,
    )?;
    for s in cats {
        let (Some(f), Some(c)) = (s.tags.get("feature"), s.tags.get("category")) else { continue };
        let n: f64 = s.points.iter().map(|p| p.1).sum();
        *out.categorical.entry(f.clone()).or_default().entry(c.clone()).or_default() += n;
    }
    let missing =
        run(store, &Query { func: Func::Sum, ..q("feature_missing", &["feature"]) }, range, limits)?;
    for s in missing {
        if let Some(f) = s.tags.get("feature") {
            *out.categorical_missing.entry(f.clone()).or_default() +=
                s.points.iter().map(|p| p.1).sum::<f64>();
        }
    }
    let errors = run(store, &Query { func: Func::Sum, ..q("schema_errors", &[]) }, range, limits)?;
    out.schema_errors = errors.iter().flat_map(|s| &s.points).map(|p| p.1).sum();
    Ok(out)
}

/// An equality matcher (for callers building profile filters).
pub fn eq(label: &str, value: &str) -> Matcher {
    Matcher { label: label.to_string(), op: Op::Eq, value: value.to_string(), regex: None }
}
