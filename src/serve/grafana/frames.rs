//! Grafana frames from query answers: time series, tables, `heatmap-rows` and report
//! series as DataFrame DTOs (CONTRACT.md 1.4), with units and display names.

use modelwatch_query::{Func, Query, Series, Unit};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One frame of a `/query` answer. A time series frame (most of a dashboard's bytes: a
/// value per window) is written straight from its answer's points when the response is
/// serialised, instead of through a JSON value per point; it reads as the JSON
/// [`value_frame`] builds, keys in the same (sorted) order. Other frames are values.
pub(super) enum Frame {
    /// A frame built as a JSON value.
    Value(Value),
    /// Series `index` of `answer` as a time and a value field.
    Series {
        /// The display name.
        name: String,
        /// The target's `refId`.
        ref_id: String,
        /// The target's answer (shared with the answer cache).
        answer: Arc<Vec<Series>>,
        /// Which series of it.
        index: usize,
        /// Applied to every value (the unit people read).
        factor: f64,
        /// Grafana's unit.
        unit: Option<&'static str>,
    },
}

impl Frame {
    /// Values in the frame's fields (events of an annotation frame), for the point budget.
    pub(super) fn values(&self) -> usize {
        match self {
            Frame::Value(v) => v["fields"][0]["values"].as_array().map_or(0, Vec::len),
            Frame::Series { answer, index, .. } => answer[*index].points.len(),
        }
    }
}

impl Serialize for Frame {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (name, ref_id, s, factor, unit) = match self {
            Frame::Value(v) => return v.serialize(ser),
            Frame::Series { name, ref_id, answer, index, factor, unit } => {
                (name, ref_id, &answer[*index], *factor, *unit)
            }
        };
        let mut m = ser.serialize_map(Some(3))?;
        m.serialize_entry("fields", &(TimeField(s), ValueField { s, name, factor, unit }))?;
        m.serialize_entry("name", name)?;
        m.serialize_entry("refId", ref_id)?;
        m.end()
    }
}

/// `{"name": "Time", "type": "time", "values": [...]}` of a series.
struct TimeField<'a>(&'a Series);

impl Serialize for TimeField<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(3))?;
        m.serialize_entry("name", "Time")?;
        m.serialize_entry("type", "time")?;
        m.serialize_entry("values", &Column(|| self.0.points.iter().map(|p| p.0)))?;
        m.end()
    }
}

/// The value field of a series: its scaled values (`null` where not finite), its tags as
/// labels, its display name and unit.
struct ValueField<'a> {
    s: &'a Series,
    name: &'a str,
    factor: f64,
    unit: Option<&'static str>,
}

impl Serialize for ValueField<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut config: BTreeMap<&str, &str> = BTreeMap::new();
        config.insert("displayNameFromDS", self.name);
        if let Some(u) = self.unit {
            config.insert("unit", u);
        }
        let factor = self.factor;
        let mut m = ser.serialize_map(Some(5))?;
        m.serialize_entry("config", &config)?;
        m.serialize_entry("labels", &self.s.tags)?;
        m.serialize_entry("name", "Value")?;
        m.serialize_entry("type", "number")?;
        m.serialize_entry(
            "values",
            &Column(|| self.s.points.iter().map(move |p| Some(p.1 * factor).filter(|v| v.is_finite()))),
        )?;
        m.end()
    }
}

/// A JSON array of what the iterator `.0()` yields.
struct Column<F>(F);

impl<F, I> Serialize for Column<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq((self.0)())
    }
}

pub(super) fn display(alias: &Option<String>, s: &Series, target: &str, ref_id: &str) -> String {
    if let Some(a) = alias {
        let mut out = a.clone();
        for (k, v) in &s.tags {
            out = out.replace(&format!("{{{{{k}}}}}"), v);
        }
        return out;
    }
    if s.tags.is_empty() {
        if target.is_empty() { ref_id.to_string() } else { target.to_string() }
    } else {
        s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    }
}

/// The factor and Grafana unit of a query's values: the unit people read
/// ([`Unit::for_people`]: latency in ms), as Grafana names it.
fn scale(q: &Query) -> (f64, Option<&'static str>) {
    if q.metric == "error_ratio" {
        return (1.0, Some("percentunit"));
    }
    let unit = q.unit();
    let shown = unit.for_people();
    let grafana = match shown {
        Unit::None => None,
        Unit::Nanoseconds => Some("ns"),
        Unit::Milliseconds => Some("ms"),
        Unit::Seconds => Some("s"),
        Unit::Bytes => Some("bytes"),
        Unit::PerSecond => Some("reqps"),
    };
    (unit.convert(1.0, shown), grafana)
}

/// Series `index` of a query's answer as a time series frame.
pub(super) fn series_frame(
    name: String,
    ref_id: &str,
    answer: &Arc<Vec<Series>>,
    index: usize,
    q: &Query,
) -> Frame {
    let (factor, unit) = scale(q);
    Frame::Series { name, ref_id: ref_id.to_string(), answer: answer.clone(), index, factor, unit }
}

/// A report's series (drift scores, quality): values as they are.
pub(super) fn report_frame(name: &str, ref_id: &str, s: &Series, unit: Option<&str>) -> Value {
    value_frame(name, ref_id, s, 1.0, unit)
}

/// A time and a value field, the value scaled and labelled with the series' tags.
fn value_frame(name: &str, ref_id: &str, s: &Series, factor: f64, unit: Option<&str>) -> Value {
    let mut config = json!({ "displayNameFromDS": name });
    if let Some(u) = unit {
        config["unit"] = json!(u);
    }
    json!({
        "name": name,
        "refId": ref_id,
        "fields": [
            { "name": "Time", "type": "time", "values": s.points.iter().map(|p| p.0).collect::<Vec<_>>() },
            { "name": "Value", "type": "number", "labels": s.tags, "config": config,
              "values": s.points.iter().map(|p| finite(p.1 * factor)).collect::<Vec<_>>() },
        ],
    })
}

fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

pub(super) fn table_frame(name: &str, ref_id: &str, s: &Series, q: &Query) -> Value {
    let (factor, unit) = scale(q);
    let mut fields = vec![
        json!({ "name": "Time", "type": "time", "values": s.points.iter().map(|p| p.0).collect::<Vec<_>>() }),
    ];
    for (k, v) in &s.tags {
        fields.push(json!({ "name": k, "type": "string", "values": vec![v; s.points.len()] }));
    }
    let mut value = json!({ "name": "Value", "type": "number", "values": s.points.iter().map(|p| finite(p.1 * factor)).collect::<Vec<_>>() });
    if let Some(u) = unit {
        value["config"] = json!({ "unit": u });
    }
    fields.push(value);
    json!({ "name": name, "refId": ref_id, "fields": fields })
}

/// A `heatmap-rows` frame: per window, the counts of `bins` rows (equal width over [0, 1]
/// for confidence, geometric over the occupied positive range otherwise, linear when values
/// reach zero or below). Each field is named by its upper bound; counts are per window, not
/// cumulative. A stored bucket counts in the row holding its midpoint.
pub(super) fn heatmap_frame(name: &str, ref_id: &str, s: &Series, q: &Query, bins: usize) -> Value {
    let (factor, _) = scale(&Query { func: Func::Mean, ..q.clone() });
    let occupied = s.buckets.iter().flatten().filter(|b| b.count > 0);
    let lo = occupied.clone().map(|b| b.lower).fold(f64::INFINITY, f64::min);
    let hi = occupied.map(|b| b.upper).fold(f64::NEG_INFINITY, f64::max);
    let confidence = q.metric.starts_with("confidence");
    let bounds: Vec<f64> = if confidence || !lo.is_finite() {
        (1..=bins).map(|i| i as f64 / bins as f64).collect()
    } else if lo > 0.0 {
        let r = (hi / lo).powf(1.0 / bins as f64);
        (1..=bins).map(|i| lo * r.powi(i as i32)).collect()
    } else {
        (1..=bins).map(|i| lo + (hi - lo) * i as f64 / bins as f64).collect()
    };
    let mut rows = vec![vec![0u64; s.points.len()]; bins];
    for (w, window) in s.buckets.iter().enumerate() {
        for b in window {
            let mid = if b.upper.is_finite() { (b.lower + b.upper) / 2.0 } else { b.lower };
            let i = bounds.partition_point(|&u| u < mid).min(bins - 1);
            rows[i][w] += b.count;
        }
    }
    let mut fields = vec![
        json!({ "name": "Time", "type": "time", "values": s.points.iter().map(|p| p.0).collect::<Vec<_>>() }),
    ];
    for (u, counts) in bounds.iter().zip(rows) {
        fields.push(
            json!({ "name": format!("{}", round_sig(u * factor)), "type": "number", "values": counts }),
        );
    }
    json!({ "name": name, "refId": ref_id, "meta": { "type": "heatmap-rows" }, "fields": fields })
}

/// Four significant digits, for bucket names.
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = 10f64.powi(3 - v.abs().log10().floor() as i32);
    (v * mag).round() / mag
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time series frame written straight from its points reads, byte for byte, as the
    /// JSON value it was built as before: tags, unit or none, scaled values, `null` for
    /// values that are not finite.
    #[test]
    fn a_series_frame_serialises_as_its_json_value() {
        let tags: BTreeMap<String, String> =
            [("variant".to_string(), "canary \"b\"".to_string()), ("segment".to_string(), "é".to_string())]
                .into();
        let points =
            vec![(1_795_694_400_000, 12.5), (1_795_694_520_000, f64::NAN), (1, 1e-9), (2, f64::INFINITY)];
        let answer = Arc::new(vec![
            Series { tags: BTreeMap::new(), points: Vec::new(), buckets: Vec::new() },
            Series { tags, points, buckets: Vec::new() },
        ]);
        for unit in [Some("ms"), None] {
            for factor in [1.0, 1e-6] {
                let frame = Frame::Series {
                    name: "variant=canary".into(),
                    ref_id: "B".into(),
                    answer: answer.clone(),
                    index: 1,
                    factor,
                    unit,
                };
                let want = value_frame("variant=canary", "B", &answer[1], factor, unit);
                assert_eq!(serde_json::to_string(&frame).unwrap(), serde_json::to_string(&want).unwrap());
                assert_eq!(frame.values(), 4);
            }
        }
        let empty = Frame::Series {
            name: "A".into(),
            ref_id: "A".into(),
            answer: answer.clone(),
            index: 0,
            factor: 1.0,
            unit: None,
        };
        let want = value_frame("A", "A", &answer[0], 1.0, None);
        assert_eq!(serde_json::to_string(&empty).unwrap(), serde_json::to_string(&want).unwrap());
    }
}
