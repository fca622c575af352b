//! Discovery: what the query editor's builder, variables and ad hoc filters offer — the
//! metrics in the store with the statistics that apply to each, label values narrowed by
//! the other fields, tag keys and values.

use super::payload::{
    AdhocFilter, DISCOVERY_MS, LABELS, TimeRange, check_filters, filter_of, payload_filters, payload_str,
};
use super::{Answer, Body};
use crate::serve::{ApiError, AppState, json_body};
use axum::extract::State;
use modelwatch_query::{Matcher, MetricKind};
use modelwatch_store::SeriesKey;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(super) fn display_name(metric: &str) -> String {
    match metric {
        "latency_ns" => "Prediction latency (ms)".into(),
        "confidence" => "Confidence score".into(),
        "confidence_positive" => "Confidence given to positive feedback".into(),
        "confidence_negative" => "Confidence given to negative feedback".into(),
        "feature" => "Feature values".into(),
        "predictions" => "Predictions".into(),
        "predicted_positive" => "Positive predictions".into(),
        "feedback" => "Labelled feedback".into(),
        "errors" => "Errors".into(),
        "model_loaded" => "Loaded models (1 = loaded)".into(),
        "model_age_seconds" => "Model age (s)".into(),
        "error_ratio" => "Error ratio (errors / requests)".into(),
        "events" => "Events (annotations)".into(),
        m => m.to_string(),
    }
}

/// The name a builder shows for a stored metric (`latency` for `latency_ns`).
pub(super) fn builder_name(metric: &str) -> &str {
    if metric == "latency_ns" { "latency" } else { metric }
}

/// The statistics the builder offers for a kind of metric: the functions that apply to it.
fn statistics(kind: MetricKind) -> Vec<String> {
    kind.functions().iter().map(|f| f.name()).collect()
}

fn options(values: impl IntoIterator<Item = String>) -> Value {
    Value::Array(values.into_iter().map(|v| json!({ "label": v, "value": v })).collect())
}

pub(super) async fn metrics(State(state): State<Arc<AppState>>, body: Body) -> Answer {
    // `{}` (code mode) or `{metric, payload}` (builder mode): the same list either way.
    let _: Value = json_body(body)?;
    let now = state.now_ms();
    let catalog = state.catalog(now - DISCOVERY_MS, now, state.deadline()).await?;
    let mut kinds: BTreeMap<String, MetricKind> = BTreeMap::new();
    for (s, k) in catalog.iter() {
        kinds.entry(s.metric.to_string()).or_insert(*k);
    }
    let select = |name: &str, multi: bool| json!({ "name": name, "label": name, "type": if multi { "multi-select" } else { "select" }, "reloadMetric": false });
    let mut out: Vec<Value> = kinds
        .iter()
        .map(|(metric, kind)| {
            let mut payloads = vec![
                json!({ "name": "statistic", "label": "statistic", "type": "select",
                        "options": options(statistics(*kind)) }),
                select("model", false),
                select("version", true),
                select("variant", true),
                select("segment", true),
            ];
            if metric == "feature" {
                payloads.push(select("feature", true));
            }
            payloads.push(json!({ "name": "by", "label": "group by", "type": "multi-select",
                                  "options": options(LABELS.iter().map(|s| s.to_string())) }));
            payloads.push(json!({ "name": "format", "label": "format", "type": "select",
                                  "options": options(["time_series", "table", "heatmap"].map(String::from)) }));
            json!({ "value": builder_name(metric), "label": display_name(metric), "payloads": payloads })
        })
        .collect();
    out.push(json!({ "value": "error_ratio", "label": display_name("error_ratio"),
                     "payloads": [select("model", false), select("variant", true), select("segment", true),
                                  json!({ "name": "by", "type": "multi-select",
                                          "options": options(LABELS.iter().map(|s| s.to_string())) })] }));
    let input = |name: &str, placeholder: &str| json!({ "name": name, "label": name, "type": "input", "placeholder": placeholder });
    out.push(json!({ "value": "drift", "label": "Drift score per feature (against a reference)",
                     "payloads": [input("reference", "now-8d..now-1d or a baseline name"),
                                  json!({ "name": "statistic", "type": "select",
                                          "options": options(crate::serve::reports::drift_statistics()) }),
                                  select("feature", true), select("model", false), select("segment", true)] }));
    let (quality_statistics, quality_shows) = crate::serve::reports::quality_options();
    out.push(json!({ "value": "quality", "label": "Model quality, realised and estimated",
                     "payloads": [json!({ "name": "statistic", "type": "select",
                                          "options": options(quality_statistics) }),
                                  json!({ "name": "show", "type": "select",
                                          "options": options(quality_shows) }),
                                  json!({ "name": "by", "type": "multi-select", "options": options(LABELS.iter().map(|s| s.to_string())) }),
                                  input("reference", "labelled range for the estimate, default the week before"),
                                  input("threshold", "0.5"), select("model", false), select("segment", true)] }));
    out.push(json!({ "value": "events", "label": display_name("events"),
                     "payloads": [select("model", false), select("kind", true)] }));
    Ok(axum::Json(Value::Array(out)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PayloadOptionsRequest {
    metric: String,
    payload: Value,
    name: String,
}

/// The distinct values of `label` among catalog series matching `filters`.
fn label_values(catalog: &[(SeriesKey, MetricKind)], label: &str, filters: &[Matcher]) -> Vec<String> {
    let set: BTreeSet<String> = catalog
        .iter()
        .filter(|(s, _)| filters.iter().all(|m| m.matches(s.tag(&m.label).unwrap_or(""))))
        .filter_map(|(s, _)| s.tag(label).filter(|v| !v.is_empty()).map(str::to_string))
        .collect();
    set.into_iter().collect()
}

fn metric_filter(metric: &str) -> Result<Option<Matcher>, ApiError> {
    if metric.is_empty() {
        return Ok(None);
    }
    let stored = if metric == "latency" { "latency_ns" } else { metric };
    filter_of("metric", &Value::String(stored.to_string()))
}

pub(super) async fn payload_options(State(state): State<Arc<AppState>>, body: Body) -> Answer {
    let req: PayloadOptionsRequest = json_body(body)?;
    let now = state.now_ms();
    let catalog = state.catalog(now - DISCOVERY_MS, now, state.deadline()).await?;
    let values = match req.name.as_str() {
        "" => {
            return Err(ApiError::bad_request(
                "`name` (the payload field whose options are wanted) is missing",
            ));
        }
        "by" => LABELS.iter().map(|s| s.to_string()).collect(),
        "kind" if req.metric == "events" => {
            let events = super::targets::event_rows(&state, now - DISCOVERY_MS, now).await?;
            events.iter().map(|e| e.kind.to_string()).collect::<BTreeSet<_>>().into_iter().collect()
        }
        name => {
            // Narrowed by the metric and by the payload's other fields (not by this one),
            // compiled and applied on a blocking thread: they may be regexes.
            let name = name.to_string();
            state
                .run_limited(state.deadline(), move |_| {
                    let mut filters: Vec<Matcher> = metric_filter(&req.metric)?.into_iter().collect();
                    if let Value::Object(map) = &req.payload {
                        let others: serde_json::Map<String, Value> = map
                            .iter()
                            .filter(|(k, _)| **k != name)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        filters.extend(payload_filters(&Value::Object(others))?);
                    }
                    Ok(label_values(&catalog, &name, &filters))
                })
                .await?
        }
    };
    Ok(axum::Json(options(values)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct VariableRequest {
    payload: Value,
    range: TimeRange,
}

/// `/variable`: `payload.target` names what to list — `models`, `versions`, `variants`,
/// `segments`, `features`, `instances`, `metrics`, or `label_values(label)` /
/// `label_values(metric, label)` — narrowed by the payload's label fields (raw JSON mode).
pub(super) async fn variable(State(state): State<Arc<AppState>>, body: Body) -> Answer {
    let req: VariableRequest = json_body(body)?;
    let now = state.now_ms();
    let (from, to) = req.range.bounds(now)?;
    let target = match &req.payload {
        Value::String(s) => s.clone(),
        p => payload_str(p, "target").unwrap_or("").to_string(),
    };
    let target = target.trim();
    let (metric, label) =
        if let Some(inner) = target.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
            match inner.split_once(',') {
                Some((m, l)) => (m.trim().to_string(), l.trim().to_string()),
                None => (String::new(), inner.trim().to_string()),
            }
        } else {
            let label = match target {
                "models" | "model" => "model",
                "versions" | "version" => "version",
                "variants" | "variant" => "variant",
                "segments" | "segment" => "segment",
                "features" | "feature" => "feature",
                "instances" | "instance" => "instance",
                "metrics" | "metric" => "metric",
                other => {
                    return Err(ApiError::bad_request(format!(
                        "variable query {other:?}: expected models, versions, variants, segments, features, \
                     instances, metrics or label_values([metric,] label)"
                    )));
                }
            };
            (String::new(), label.to_string())
        };
    let catalog = state.catalog(from, to, state.deadline()).await?;
    let payload = req.payload;
    let l = label.clone();
    let mut values = state
        .run_limited(state.deadline(), move |_| {
            let mut filters: Vec<Matcher> = metric_filter(&metric)?.into_iter().collect();
            filters.extend(payload_filters(&payload)?);
            Ok(label_values(&catalog, &l, &filters))
        })
        .await?;
    if label == "metric" {
        values = values.iter().map(|m| builder_name(m).to_string()).collect();
    }
    Ok(axum::Json(Value::Array(values.into_iter().map(|v| json!({ "__text": v, "__value": v })).collect())))
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct TagRequest {
    key: String,
    filters: Vec<AdhocFilter>,
    time_range: TimeRange,
}

pub(super) async fn tag_keys(State(state): State<Arc<AppState>>, body: Body) -> Answer {
    let req: TagRequest = json_body(body)?;
    let now = state.now_ms();
    let (from, to) = req.time_range.bounds(now)?;
    let catalog = state.catalog(from, to, state.deadline()).await?;
    let mut keys: BTreeSet<String> = LABELS.iter().map(|s| s.to_string()).collect();
    for (s, _) in catalog.iter() {
        keys.extend(s.tags.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, _)| k.to_string()));
    }
    let mut out = vec![json!({ "type": "string", "text": "metric" })];
    out.extend(keys.into_iter().map(|k| json!({ "type": "string", "text": k })));
    Ok(axum::Json(Value::Array(out)))
}

pub(super) async fn tag_values(State(state): State<Arc<AppState>>, body: Body) -> Answer {
    let req: TagRequest = json_body(body)?;
    if req.key.is_empty() {
        return Err(ApiError::bad_request("`key` (the tag whose values are wanted) is missing"));
    }
    let now = state.now_ms();
    let (from, to) = req.time_range.bounds(now)?;
    check_filters(req.filters.len(), "ad hoc filters")?;
    let catalog = state.catalog(from, to, state.deadline()).await?;
    let key = req.key.clone();
    let mut values = state
        .run_limited(state.deadline(), move |_| {
            // The other complete filters narrow the values, as Prometheus' label values API
            // does; compiled on a blocking thread, they may be regexes.
            let filters = req
                .filters
                .iter()
                .filter(|f| f.key != req.key)
                .map(|f| modelwatch_query::cancel::check().map_err(ApiError::from).and_then(|_| f.matcher()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(label_values(&catalog, &req.key, &filters))
        })
        .await?;
    if key == "metric" {
        values = values.iter().map(|m| builder_name(m).to_string()).collect();
    }
    Ok(axum::Json(Value::Array(values.into_iter().map(|v| json!({ "text": v })).collect())))
}
