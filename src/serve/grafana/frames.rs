//! Grafana frames from query answers: time series, tables, `heatmap-rows` and report
//! series as DataFrame DTOs (CONTRACT.md 1.4), with units and display names.

use modelwatch_query::{Func, Query, Series, Unit};
use serde_json::{Value, json};

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

pub(super) fn series_frame(name: &str, ref_id: &str, s: &Series, q: &Query) -> Value {
    let (factor, unit) = scale(q);
    value_frame(name, ref_id, s, factor, unit)
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
