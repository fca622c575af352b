//! The unit of a query's values, and the JSON form of an answer that names it.
//!
//! Values keep the unit they are stored in (latency in nanoseconds, model age in seconds):
//! JSON and CSV name it; tables for people convert it ([`Unit::for_people`]: latency in
//! milliseconds).

use crate::{Func, Query, Series};
use serde::Serialize;
use std::collections::BTreeMap;

/// The unit of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A plain number: a score, a count, a feature's value (`""` in JSON).
    #[serde(rename = "")]
    None,
    /// Nanoseconds.
    #[serde(rename = "ns")]
    Nanoseconds,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Milliseconds,
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
    /// Bytes.
    Bytes,
    /// Events per second.
    #[serde(rename = "per_s")]
    PerSecond,
}

impl Unit {
    /// The symbol shown beside a value (`ms`, `/s`), empty for plain numbers.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Nanoseconds => "ns",
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
            Unit::Bytes => "bytes",
            Unit::PerSecond => "/s",
        }
    }

    /// `name` with the unit as a suffix, for column names: `value_ns`, `value_per_s`, or
    /// `value` for plain numbers.
    pub fn suffixed(self, name: &str) -> String {
        match self {
            Unit::None => name.to_string(),
            Unit::PerSecond => format!("{name}_per_s"),
            u => format!("{name}_{}", u.symbol()),
        }
    }

    /// The unit a table for people shows this one in: milliseconds for nanoseconds.
    pub fn for_people(self) -> Unit {
        if self == Unit::Nanoseconds { Unit::Milliseconds } else { self }
    }

    /// `v` in this unit, converted to `to` (times between each other; anything else as is).
    pub fn convert(self, v: f64, to: Unit) -> f64 {
        let ns = |u: Unit| match u {
            Unit::Nanoseconds => Some(1.0),
            Unit::Milliseconds => Some(1e6),
            Unit::Seconds => Some(1e9),
            _ => None,
        };
        match (ns(self), ns(to)) {
            (Some(a), Some(b)) => v * a / b,
            _ => v,
        }
    }
}

impl Query {
    /// The unit of this query's values. Counts are plain numbers, rates are per second;
    /// the other functions keep the metric's unit, which its name states (`latency_ns`,
    /// `model_age_seconds`, `*_bytes`).
    pub fn unit(&self) -> Unit {
        match self.func {
            Func::Count => Unit::None,
            Func::Rate => Unit::PerSecond,
            _ if self.metric.ends_with("_ns") => Unit::Nanoseconds,
            _ if self.metric.ends_with("_ms") => Unit::Milliseconds,
            _ if self.metric.ends_with("_seconds") => Unit::Seconds,
            _ if self.metric.ends_with("_bytes") => Unit::Bytes,
            _ => Unit::None,
        }
    }
}

/// An answer as JSON: `[{"tags": {...}, "unit": "ns", "points": [[ms, value], ...]}]`, plus
/// `"buckets": [[[lower, upper, count], ...], ...]` (one list per point) for `buckets(...)`.
/// The CLI's `--format json` and `/api/v1/query` both write it.
#[derive(Serialize)]
#[serde(transparent)]
pub struct SeriesJson<'a>(Vec<OneSeries<'a>>);

#[derive(Serialize)]
struct OneSeries<'a> {
    tags: &'a BTreeMap<String, String>,
    unit: Unit,
    points: &'a [(i64, f64)],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    buckets: Vec<Vec<(f64, f64, u64)>>,
}

impl<'a> SeriesJson<'a> {
    /// The JSON form of `series`, whose values are in `unit`.
    pub fn new(series: &'a [Series], unit: Unit) -> SeriesJson<'a> {
        SeriesJson(
            series
                .iter()
                .map(|s| OneSeries {
                    tags: &s.tags,
                    unit,
                    points: &s.points,
                    buckets: s
                        .buckets
                        .iter()
                        .map(|w| w.iter().map(|b| (b.lower, b.upper, b.count)).collect())
                        .collect(),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    #[test]
    fn latency_is_in_nanoseconds_and_shown_in_milliseconds() {
        let u = parse("p95(latency)").unwrap().unit();
        assert_eq!((u, u.for_people()), (Unit::Nanoseconds, Unit::Milliseconds));
        assert_eq!(u.convert(9_764_863.0, Unit::Milliseconds), 9.764863);
        assert_eq!(u.suffixed("value"), "value_ns");
        assert_eq!(parse("mean(latency_ns)").unwrap().unit(), Unit::Nanoseconds);
        assert_eq!(parse("count(latency)").unwrap().unit(), Unit::None);
        assert_eq!(parse("rate(predictions)").unwrap().unit().suffixed("value"), "value_per_s");
        assert_eq!(parse("max(model_age_seconds)").unwrap().unit(), Unit::Seconds);
        assert_eq!(parse("mean(confidence)").unwrap().unit(), Unit::None);
        assert_eq!(Unit::None.suffixed("value"), "value");
    }

    #[test]
    fn the_json_answer_names_its_unit_and_keeps_the_stored_values() {
        let s = vec![Series {
            tags: BTreeMap::from([("segment".into(), "email".into())]),
            points: vec![(0, 9_764_863.0)],
            buckets: Vec::new(),
        }];
        let v = serde_json::to_value(SeriesJson::new(&s, Unit::Nanoseconds)).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"tags": {"segment": "email"}, "unit": "ns", "points": [[0, 9_764_863.0]]}])
        );
    }
}
