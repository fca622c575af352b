//! `/query`: each visible target becomes a query (its text, refined by its payload, the ad
//! hoc filters and the group-by keys), evaluated through the engine, and cut into frames.
//! Whole responses are cached per store generation.

use super::frames::{display, heatmap_frame, report_frame, series_frame, table_frame};
use super::payload::{
    AdhocFilter, TimeRange, labels_of, option_str, payload_filters, payload_str, text, unescape,
};
use super::{Body, targets};
use crate::serve::{ApiError, AppState, json_body, range_for};
use axum::extract::State;
use modelwatch_query::{Func, Matcher, Query, Range, parse};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct QueryRequest {
    range: TimeRange,
    interval_ms: Option<f64>,
    max_data_points: Option<f64>,
    targets: Vec<Target>,
    filters: Vec<AdhocFilter>,
    adhoc_filters: Vec<AdhocFilter>,
    group_by_keys: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Target {
    pub(super) ref_id: String,
    target: Option<String>,
    pub(super) payload: Value,
    hide: bool,
}

/// `/query`. Whole responses are cached too (per store generation): a dashboard open on
/// many screens asks the same panels with ranges that snap to the same windows.
pub(super) async fn query(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let raw: Value = json_body(body)?;
    let req: QueryRequest = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("malformed /query body: {e}")))?;
    let generation = state.store.generation();
    let key = |range: Range, from: i64, to: i64| {
        let annotations =
            req.targets.iter().any(|t| t.ref_id == "Anno" || t.target.as_deref() == Some("events"));
        // Events are not windowed: their exact range matters.
        let exact = if annotations { json!([from, to]) } else { Value::Null };
        json!([
            raw["targets"],
            raw["filters"],
            raw["adhocFilters"],
            raw["groupByKeys"],
            range.from_ms,
            range.to_ms,
            range.step_ms,
            exact
        ])
        .to_string()
    };
    let respond = |bytes: axum::body::Bytes| {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response()
    };
    if req.range.from.is_empty() || req.range.to.is_empty() {
        return Err(ApiError::bad_request("`range.from` and `range.to` are required"));
    }
    let (from, to) = req.range.bounds(state.now_ms())?;
    let min_step = req.interval_ms.filter(|i| i.is_finite() && *i >= 1.0).unwrap_or(1_000.0) as i64;
    let max_points = req.max_data_points.filter(|p| p.is_finite() && *p >= 1.0).unwrap_or(1_000.0) as i64;
    let range = range_for(from, to, min_step, max_points)?;
    let key = key(range, from, to);
    if let Some(hit) = state.cache().responses.get(&key) {
        return Ok(respond(hit.clone()));
    }
    let frames = frames(&state, &req, from, to, range).await?;
    let bytes =
        axum::body::Bytes::from(serde_json::to_vec(&frames).map_err(|e| ApiError::internal(e.to_string()))?);
    state.remember_response(generation, key, bytes.clone());
    Ok(respond(bytes))
}

async fn frames(
    state: &Arc<AppState>,
    req: &QueryRequest,
    from: i64,
    to: i64,
    range: Range,
) -> Result<Value, ApiError> {
    let deadline = state.deadline();
    let adhoc = req
        .filters
        .iter()
        .chain(&req.adhoc_filters)
        .filter(|f| !f.key.is_empty())
        .map(AdhocFilter::matcher)
        .collect::<Result<Vec<_>, _>>()?;
    let mut frames = Vec::new();
    for t in req.targets.iter().filter(|t| !t.hide) {
        let Some(target) = t.target.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { continue };
        let at = |e: ApiError| e.context(format_args!("target {} ({target})", t.ref_id));
        if t.ref_id == "Anno" || target == "events" || target == "annotations" {
            frames.push(targets::annotations(state, t, from, to).await.map_err(at)?);
            continue;
        }
        if target == "drift" || target == "quality" {
            let series = if target == "drift" {
                crate::serve::reports::drift_series(state, &t.payload, &adhoc, range, deadline).await
            } else {
                crate::serve::reports::quality_series(state, &t.payload, &adhoc, range, deadline).await
            }
            .map_err(at)?;
            let unit = if target == "quality" { Some("percentunit") } else { None };
            let alias = payload_str(&t.payload, "alias").map(str::to_string);
            for s in &series {
                frames.push(report_frame(&display(&alias, s, target, &t.ref_id), &t.ref_id, s, unit));
            }
            continue;
        }
        let (q, options) = build_query(target, &t.payload, &adhoc, &req.group_by_keys).map_err(at)?;
        let series = if q.metric == "error_ratio" {
            targets::error_ratio(state, q.clone(), range, deadline).await.map_err(at)?
        } else {
            state.query(q.clone(), range, deadline).await.map_err(at)?.as_ref().clone()
        };
        let heatmap = q.func == Func::Buckets || options.format == "heatmap";
        if heatmap && q.func != Func::Buckets {
            return Err(at(ApiError::bad_request(
                "format heatmap needs the statistic buckets (or buckets(...))",
            )));
        }
        for s in &series {
            let name = display(&options.alias, s, target, &t.ref_id);
            let frame = if heatmap {
                heatmap_frame(&name, &t.ref_id, s, &q, options.bins)
            } else if options.format == "table" {
                table_frame(&name, &t.ref_id, s, &q)
            } else {
                series_frame(&name, &t.ref_id, s, &q)
            };
            frames.push(frame);
        }
    }
    Ok(Value::Array(frames))
}

#[derive(Debug)]
struct Options {
    format: String,
    alias: Option<String>,
    bins: usize,
}

fn build_query(
    target: &str,
    payload: &Value,
    adhoc: &[Matcher],
    group_by: &[String],
) -> Result<(Query, Options), ApiError> {
    let mut q = parse(target).map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    if let Some(stat) = option_str(payload, "statistic") {
        let f = parse(&format!("{stat}(m)"))
            .map_err(|_| ApiError::bad_request(format!("payload.statistic {stat:?} is not one of p50, p95, p99, pNN, mean, min, max, count, rate, sum, buckets")))?
            .func;
        if q.explicit && f != q.func {
            return Err(ApiError::bad_request(format!(
                "the query already applies {} and payload.statistic asks for {stat}",
                q.func
            )));
        }
        q.func = f;
        q.explicit = true;
    }
    q.matchers.extend(payload_filters(payload)?);
    q.matchers.extend(adhoc.iter().cloned());
    for l in payload.get("by").map(labels_of).unwrap_or_default().into_iter().chain(group_by.iter().cloned())
    {
        if !q.by.contains(&l) {
            q.by.push(l);
        }
    }
    let format = option_str(payload, "format").unwrap_or_else(|| "time_series".into());
    if !matches!(format.as_str(), "time_series" | "timeseries" | "table" | "heatmap") {
        return Err(ApiError::bad_request(format!(
            "payload.format {format:?}: expected time_series, table or heatmap"
        )));
    }
    let bins = match payload.get("bins") {
        None | Some(Value::Null) => 20,
        Some(v) => {
            unescape(&text(v)).trim().parse::<usize>().ok().filter(|b| (1..=1_000).contains(b)).ok_or_else(
                || ApiError::bad_request(format!("payload.bins {v}: expected a number from 1 to 1000")),
            )?
        }
    };
    let alias = payload_str(payload, "alias").map(str::to_string);
    Ok((q, Options { format, alias, bins }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_refines_a_metric_picked_in_the_builder() {
        let (q, o) = build_query(
            "latency",
            &json!({"statistic": "p99", "variant": ["control", "canary"], "by": "variant", "format": "table"}),
            &[],
            &["segment".to_string()],
        )
        .unwrap();
        assert_eq!(
            q.to_string(),
            r#"quantile(0.99, latency_ns{variant=~"control|canary"}) by (variant, segment)"#
        );
        assert_eq!(o.format, "table");
        let e = build_query("p95(latency)", &json!({"statistic": "mean"}), &[], &[]).unwrap_err();
        assert!(e.message().contains("payload.statistic asks for mean"), "{}", e.message());
        let e = build_query("p95(latency", &json!({}), &[], &[]).unwrap_err();
        assert!(e.message().contains("position"), "{}", e.message());
        assert!(
            build_query("latency", &json!({"bins": "0"}), &[], &[]).unwrap_err().message().contains("bins")
        );
    }
}
