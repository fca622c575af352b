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

    /// The segments a read-only store's catalog lists over the six hours before the end of
    /// a recording where `email` records from T0, maintenance runs at `maintain_at`, and
    /// `phone` appears at `phone_from`, 20 minutes before the end.
    fn segments(maintain_at: i64, phone_from: i64) -> Vec<String> {
        use crate::testing::{HOUR, T0};
        use modelwatch_agent::{Agent, ManualClock, Prediction, Timestamp};
        use modelwatch_store::StoreConfig;
        use std::sync::Arc;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
        let agent = Agent::builder("pii")
            .segments(["email", "phone"])
            .clock(clock.clone())
            .background_flush(false)
            .build(store.clone())
            .unwrap();
        let end = phone_from + 20 * 60_000;
        let mut t = T0;
        while t < end {
            agent.handle().record(&Prediction::new("email", Duration::from_millis(2), 0.5));
            if t >= phone_from {
                agent.handle().record(&Prediction::new("phone", Duration::from_millis(2), 0.5));
            }
            t += 10_000;
            clock.set(Timestamp::from_millis(t as u64));
            agent.flush_due().unwrap();
            if t == maintain_at {
                store.flush().unwrap();
                store.maintain(t).unwrap();
            }
        }
        agent.shutdown().unwrap();
        store.flush().unwrap();
        let reader = Store::open_read_only(StoreConfig::new(dir.path())).unwrap();
        let from = (end - 6 * HOUR).div_euclid(HOUR) * HOUR;
        let mut segments: Vec<String> = catalog(&reader, from, (end / HOUR + 1) * HOUR)
            .unwrap()
            .iter()
            .map(|(s, _)| s.segment.to_string())
            .collect();
        segments.dedup();
        segments
    }

    /// Discovery lists a label value found only in raw rows after the last roll-up, whether
    /// that roll-up ended on the hour or covered part of the hour the new rows are in.
    #[test]
    fn a_label_value_only_in_raw_rows_after_the_last_roll_up_is_listed() {
        use crate::testing::{HOUR, T0};
        // Roll-ups up to T0 + 2 h; `phone` from 2 h 20 min.
        assert_eq!(segments(T0 + 2 * HOUR, T0 + 2 * HOUR + 20 * 60_000), ["email", "phone"]);
        // Maintenance at 2 h 20 min rolls up the hour to 3 h (its rows so far); `phone`
        // arrives at 2 h 40 min, inside that hour.
        assert_eq!(segments(T0 + 2 * HOUR + 20 * 60_000, T0 + 2 * HOUR + 40 * 60_000), ["email", "phone"]);
    }
}
