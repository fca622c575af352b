//! What the store holds over a time range: every series and the kind of its rows, for
//! metric discovery (Grafana's dropdowns, `/api/v1/series`) and label values.

use crate::engine::QueryError;
use crate::parse::Func;
use modelwatch_store::{ReadRequest, Resolution, ScalarKind, SeriesKey, Store, Table};
use std::collections::BTreeMap;

/// How a series' rows read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricKind {
    /// Distribution rows (latency, confidence, features, distribution metrics).
    Distribution,
    /// Counter increases.
    Counter,
    /// Gauge values.
    Gauge,
}

impl MetricKind {
    /// `distribution`, `counter` or `gauge`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Distribution => "distribution",
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }

    /// The functions worth applying to a series of this kind, in [`Func::ALL`] order: all of
    /// them to distributions, the total and its rate to counters, the level to gauges.
    pub fn functions(self) -> Vec<Func> {
        Func::ALL
            .into_iter()
            .filter(|f| match self {
                MetricKind::Distribution => true,
                MetricKind::Counter => matches!(f, Func::Count | Func::Rate | Func::Sum),
                MetricKind::Gauge => matches!(f, Func::Mean | Func::Min | Func::Max),
            })
            .collect()
    }
}

/// The distinct series with rows starting in `[from_ms, to_ms)`, with their kinds, sorted.
/// Reads hourly roll-ups where they exist, with raw rows not rolled up yet and after them.
pub fn catalog(store: &Store, from_ms: i64, to_ms: i64) -> Result<Vec<(SeriesKey, MetricKind)>, QueryError> {
    let mut out: BTreeMap<SeriesKey, MetricKind> = BTreeMap::new();
    let from = from_ms.div_euclid(3_600_000) * 3_600_000;
    for table in [Table::Distributions, Table::Scalars] {
        // With the raw rows not rolled up yet: a late row can be a series' only one.
        let hourly = store.read(&ReadRequest::new(table, from, to_ms, Resolution::Hour).with_unrolled())?;
        let covered = hourly
            .distributions
            .iter()
            .filter(|r| r.resolution == Resolution::Hour)
            .map(|r| r.end_ms)
            .chain(hourly.scalars.iter().filter(|r| r.resolution == Resolution::Hour).map(|r| r.end_ms))
            .max()
            .unwrap_or(from_ms)
            .max(from_ms);
        let raw = store.read(&ReadRequest::new(table, covered, to_ms, Resolution::Raw))?;
        for rows in [hourly, raw] {
            for r in rows.distributions {
                out.entry(r.series).or_insert(MetricKind::Distribution);
            }
            for r in rows.scalars {
                let kind = if r.kind == ScalarKind::Gauge { MetricKind::Gauge } else { MetricKind::Counter };
                out.entry(r.series).or_insert(kind);
            }
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_lists_its_functions_by_name() {
        let names = |k: MetricKind| k.functions().iter().map(Func::name).collect::<Vec<_>>();
        assert_eq!(
            names(MetricKind::Distribution),
            ["p50", "p90", "p95", "p99", "mean", "min", "max", "count", "rate", "sum", "buckets"]
        );
        assert_eq!(names(MetricKind::Counter), ["count", "rate", "sum"]);
        assert_eq!(names(MetricKind::Gauge), ["mean", "min", "max"]);
    }
}
