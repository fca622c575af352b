//! The Grafana JSON datasource contract (simpod-json-datasource), under `/grafana`.
//!
//! A target is a query in modelwatch's language (`p95(latency) by (variant)`) or just a
//! metric name picked in the builder (`latency`), refined by the payload:
//! `statistic` (`p95`, `mean`, `rate`, `buckets`, ...), `by` (labels to group by),
//! `format` (`time_series`, `table`, `heatmap`), `bins` (heatmap rows), `alias`, and label
//! filters (`model`, `version`, `variant`, `segment`, `feature`, `instance`, any free tag),
//! each a string, an array of strings or a regex alternation `(a|b)`. Ad hoc filters
//! (`filters`, or the older `adhocFilters`) and `groupByKeys` apply to every target.
//! Targets `events` (or refId `Anno`) answer annotations from the events table, and
//! `error_ratio` the share of failed requests (errors / (predictions + errors)).

use super::frames::{display, heatmap_frame, report_frame, series_frame, table_frame};
use super::{ApiError, AppState, json_body, range_for};
use crate::time::parse_time;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::{get, post};
use modelwatch_query::{Func, Matcher, MetricKind, Op, Query, Range, Series, parse};
use modelwatch_store::{ReadRequest, Resolution, SeriesKey, Table};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/metrics", post(metrics))
        .route("/metric-payload-options", post(payload_options))
        .route("/query", post(query))
        .route("/variable", post(variable))
        .route("/tag-keys", post(tag_keys))
        .route("/tag-values", post(tag_values))
}

type Body = Result<Bytes, BytesRejection>;
type Answer = Result<axum::Json<Value>, ApiError>;

/// Payload keys that are options, not label filters.
const OPTIONS: [&str; 9] =
    ["statistic", "by", "format", "bins", "alias", "annotations", "reference", "threshold", "show"];
/// Labels every series has.
const LABELS: [&str; 6] = ["model", "version", "variant", "segment", "feature", "instance"];
/// How far back metric discovery looks when a request carries no range.
const DISCOVERY_MS: i64 = 7 * 86_400_000;

#[derive(Deserialize, Default)]
#[serde(default)]
struct TimeRange {
    from: String,
    to: String,
}

impl TimeRange {
    fn bounds(&self, now: i64) -> Result<(i64, i64), ApiError> {
        if self.from.is_empty() && self.to.is_empty() {
            return Ok((now - DISCOVERY_MS, now));
        }
        let t = |s: &str, what: &str| {
            parse_time(s, now).map_err(|e| ApiError::bad_request(format!("range.{what}: {e}")))
        };
        Ok((t(&self.from, "from")?, t(&self.to, "to")?))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AdhocFilter {
    key: String,
    operator: String,
    value: Value,
    values: Option<Vec<Value>>,
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

impl AdhocFilter {
    fn matcher(&self) -> Result<Matcher, ApiError> {
        let bad = |m: String| ApiError::bad_request(format!("ad hoc filter on {:?}: {m}", self.key));
        let alternation = || {
            let values = self.values.clone().unwrap_or_else(|| vec![self.value.clone()]);
            values.iter().map(|v| regex::escape(&text(v))).collect::<Vec<_>>().join("|")
        };
        let (op, value) = match self.operator.as_str() {
            "=" => (Op::Eq, text(&self.value)),
            "!=" => (Op::Ne, text(&self.value)),
            "=~" => (Op::Re, text(&self.value)),
            "!~" => (Op::NotRe, text(&self.value)),
            "=|" => (Op::Re, alternation()),
            "!=|" => (Op::NotRe, alternation()),
            other => {
                return Err(bad(format!("operator {other:?} is not supported (=, !=, =~, !~, =|, !=|)")));
            }
        };
        Matcher::new(&self.key, op, &value).map_err(bad)
    }
}

/// A payload value as a filter: `None` for "everything" (absent, empty, `$__all`, `All`,
/// `*`); one value is an equality unless it carries regex syntax (Grafana's regex format
/// escapes values and joins several as `(a|b)`); an array is an alternation of its values.
pub(super) fn filter_of(label: &str, v: &Value) -> Result<Option<Matcher>, ApiError> {
    let all = |s: &str| matches!(s, "" | "$__all" | "All" | "*" | ".*");
    let bad = |e: String| ApiError::bad_request(format!("payload.{label}: {e}"));
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let values: Vec<String> = items.iter().map(text).collect();
            if values.is_empty() || values.iter().any(|s| all(s)) {
                return Ok(None);
            }
            if let [one] = values.as_slice() {
                return filter_of(label, &Value::String(one.clone()));
            }
            let alt = values.iter().map(|s| regex::escape(s)).collect::<Vec<_>>().join("|");
            Matcher::new(label, Op::Re, &alt).map(Some).map_err(bad)
        }
        Value::Object(_) => Err(bad("expected a string or an array of strings, got an object".into())),
        v => {
            let s = text(v);
            if all(&s) {
                return Ok(None);
            }
            let regexy = s.contains(['\\', '(', '|', '[', '*', '+', '?', '^', '$']);
            if regexy && let Ok(m) = Matcher::new(label, Op::Re, &s) {
                return Ok(Some(m));
            }
            Matcher::new(label, Op::Eq, &s).map(Some).map_err(bad)
        }
    }
}

/// The label names in `by`: a string (comma separated) or an array.
pub(super) fn labels_of(v: &Value) -> Vec<String> {
    let items: Vec<String> = match v {
        Value::Array(a) => a.iter().map(text).collect(),
        v => text(v).split(',').map(str::to_string).collect(),
    };
    items.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty() && s != "$__all").collect()
}

/// The payload's label filters.
pub(super) fn payload_filters(payload: &Value) -> Result<Vec<Matcher>, ApiError> {
    let mut out = Vec::new();
    if let Value::Object(map) = payload {
        for (k, v) in map {
            if OPTIONS.contains(&k.as_str()) || k == "metric" || k == "target" || k == "name" {
                continue;
            }
            out.extend(filter_of(k, v)?);
        }
    }
    Ok(out)
}

pub(super) fn payload_str<'a>(payload: &'a Value, key: &str) -> Option<&'a str> {
    payload.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------
// Discovery: /metrics, /metric-payload-options, /variable, /tag-keys, /tag-values

fn display_name(metric: &str) -> String {
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
fn builder_name(metric: &str) -> &str {
    if metric == "latency_ns" { "latency" } else { metric }
}

fn statistics(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Distribution => {
            &["p50", "p90", "p95", "p99", "mean", "min", "max", "count", "rate", "sum", "buckets"]
        }
        MetricKind::Counter => &["rate", "count", "sum"],
        MetricKind::Gauge => &["max", "min", "mean"],
    }
}

fn options(values: impl IntoIterator<Item = String>) -> Value {
    Value::Array(values.into_iter().map(|v| json!({ "label": v, "value": v })).collect())
}

async fn metrics(State(state): State<Arc<AppState>>, body: Body) -> Answer {
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
                        "options": options(statistics(*kind).iter().map(|s| s.to_string())) }),
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
                                          "options": options(["wasserstein_norm", "psi", "ks", "js", "hellinger", "chi2", "share"].map(String::from)) }),
                                  select("feature", true), select("model", false), select("segment", true)] }));
    out.push(json!({ "value": "quality", "label": "Model quality, realised and estimated",
                     "payloads": [json!({ "name": "statistic", "type": "select",
                                          "options": options(["precision", "recall", "f1", "auc"].map(String::from)) }),
                                  json!({ "name": "show", "type": "select",
                                          "options": options(["both", "realised", "estimated"].map(String::from)) }),
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

async fn payload_options(State(state): State<Arc<AppState>>, body: Body) -> Answer {
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
            let events = event_rows(&state, now - DISCOVERY_MS, now).await?;
            events.iter().map(|e| e.kind.to_string()).collect::<BTreeSet<_>>().into_iter().collect()
        }
        name => {
            // Narrowed by the metric and by the payload's other fields (not by this one).
            let mut filters: Vec<Matcher> = metric_filter(&req.metric)?.into_iter().collect();
            if let Value::Object(map) = &req.payload {
                let others: serde_json::Map<String, Value> =
                    map.iter().filter(|(k, _)| *k != name).map(|(k, v)| (k.clone(), v.clone())).collect();
                filters.extend(payload_filters(&Value::Object(others))?);
            }
            label_values(&catalog, name, &filters)
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
async fn variable(State(state): State<Arc<AppState>>, body: Body) -> Answer {
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
    let mut filters: Vec<Matcher> = metric_filter(&metric)?.into_iter().collect();
    filters.extend(payload_filters(&req.payload)?);
    let mut values = label_values(&catalog, &label, &filters);
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

async fn tag_keys(State(state): State<Arc<AppState>>, body: Body) -> Answer {
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

async fn tag_values(State(state): State<Arc<AppState>>, body: Body) -> Answer {
    let req: TagRequest = json_body(body)?;
    if req.key.is_empty() {
        return Err(ApiError::bad_request("`key` (the tag whose values are wanted) is missing"));
    }
    let now = state.now_ms();
    let (from, to) = req.time_range.bounds(now)?;
    let catalog = state.catalog(from, to, state.deadline()).await?;
    // The other complete filters narrow the values, as Prometheus' label values API does.
    let filters = req
        .filters
        .iter()
        .filter(|f| f.key != req.key)
        .map(AdhocFilter::matcher)
        .collect::<Result<Vec<_>, _>>()?;
    let mut values = label_values(&catalog, &req.key, &filters);
    if req.key == "metric" {
        values = values.iter().map(|m| builder_name(m).to_string()).collect();
    }
    Ok(axum::Json(Value::Array(values.into_iter().map(|v| json!({ "text": v })).collect())))
}

// ---------------------------------------------------------------------------------------
// /query

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
struct Target {
    ref_id: String,
    target: Option<String>,
    payload: Value,
    hide: bool,
}

/// `/query`. Whole responses are cached too (per store generation): a dashboard open on
/// many screens asks the same panels with ranges that snap to the same windows.
async fn query(State(state): State<Arc<AppState>>, body: Body) -> Result<axum::response::Response, ApiError> {
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
            frames.push(annotations(state, t, from, to).await.map_err(at)?);
            continue;
        }
        if target == "drift" || target == "quality" {
            let series = if target == "drift" {
                super::reports::drift_series(state, &t.payload, &adhoc, range, deadline).await
            } else {
                super::reports::quality_series(state, &t.payload, &adhoc, range, deadline).await
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
            error_ratio(state, &q, range, deadline).await.map_err(at)?
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
    if let Some(stat) = payload_str(payload, "statistic") {
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
    let format = payload_str(payload, "format").unwrap_or("time_series").to_string();
    if !matches!(format.as_str(), "time_series" | "timeseries" | "table" | "heatmap") {
        return Err(ApiError::bad_request(format!(
            "payload.format {format:?}: expected time_series, table or heatmap"
        )));
    }
    let bins = match payload.get("bins") {
        None | Some(Value::Null) => 20,
        Some(v) => {
            text(v).trim().parse::<usize>().ok().filter(|b| (1..=1_000).contains(b)).ok_or_else(|| {
                ApiError::bad_request(format!("payload.bins {v}: expected a number from 1 to 1000"))
            })?
        }
    };
    let alias = payload_str(payload, "alias").map(str::to_string);
    Ok((q, Options { format, alias, bins }))
}

/// errors / (predictions + errors) per window and group.
async fn error_ratio(
    state: &Arc<AppState>,
    q: &Query,
    range: Range,
    deadline: Instant,
) -> Result<Vec<Series>, ApiError> {
    let with = |metric: &str, keep_kind: bool| Query {
        func: Func::Sum,
        explicit: true,
        metric: metric.to_string(),
        matchers: q.matchers.iter().filter(|m| keep_kind || m.label != "kind").cloned().collect(),
        by: q.by.clone(),
    };
    let errors = state.query(with("errors", true), range, deadline).await?;
    let predictions = state.query(with("predictions", false), range, deadline).await?;
    let mut out = Vec::new();
    for p in predictions.iter() {
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

async fn event_rows(
    state: &Arc<AppState>,
    from: i64,
    to: i64,
) -> Result<Vec<modelwatch_store::EventRow>, ApiError> {
    state
        .blocking(state.deadline(), move |store| {
            let mut rows = store.read(&ReadRequest::new(Table::Events, from, to, Resolution::Raw))?.events;
            // Retraining events live in the trigger engine's own event store.
            rows.extend(crate::triggers::events(store.dir(), from, to));
            Ok(rows)
        })
        .await
}

/// Annotations: events in the range, filtered by the payload's `model`, `version`,
/// `variant` and `kind`.
async fn annotations(state: &Arc<AppState>, t: &Target, from: i64, to: i64) -> Result<Value, ApiError> {
    let mut events = event_rows(state, from, to).await?;
    let filters = payload_filters(&t.payload)?;
    events.retain(|e| {
        filters.iter().all(|m| {
            m.matches(match m.label.as_str() {
                "model" => &e.model,
                "version" => &e.version,
                "variant" => &e.variant,
                "kind" => &e.kind,
                _ => "",
            })
        })
    });
    events.sort_by_key(|e| e.time_ms);
    let col = |f: &dyn Fn(&modelwatch_store::EventRow) -> Value| events.iter().map(f).collect::<Vec<_>>();
    Ok(json!({
        "name": "events",
        "refId": t.ref_id,
        "fields": [
            { "name": "time", "type": "time", "values": col(&|e| json!(e.time_ms)) },
            { "name": "title", "type": "string", "values": col(&|e| json!(e.kind.to_string())) },
            { "name": "text", "type": "string", "values": col(&|e| json!(format!("{} {} ({}): {}", e.model, e.version, e.variant, e.message))) },
            { "name": "tags", "type": "string", "values": col(&|e| json!(format!("{},{},{}", e.kind, e.model, e.variant))) },
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_values_arrive_in_every_form_grafana_sends() {
        let m = |v: Value| filter_of("segment", &v).unwrap();
        let eq = m(json!("email")).unwrap();
        assert!(eq.op == Op::Eq && eq.matches("email") && !eq.matches("phone"));
        for v in [
            json!(["email", "phone"]),
            json!("(email|phone)"),
            json!("{email,phone}".replace(['{', '}'], "").replace(',', "|")),
        ] {
            let f = m(v.clone()).unwrap();
            assert!(f.matches("email") && f.matches("phone") && !f.matches("ssn"), "{v}");
        }
        // Grafana's regex format escapes the values it interpolates.
        let v = m(json!("(1\\.4\\.0|1\\.5\\.0-rc1)")).unwrap();
        assert!(v.matches("1.4.0") && v.matches("1.5.0-rc1") && !v.matches("1x4x0"));
        for all in [json!("$__all"), json!(["$__all"]), json!(""), json!(null), json!([]), json!("All")] {
            assert!(m(all.clone()).is_none(), "{all}");
        }
        assert!(filter_of("segment", &json!({"a": 1})).unwrap_err().message().contains("payload.segment"));
    }

    #[test]
    fn adhoc_filters_cover_grafanas_operators() {
        let f = |op: &str, value: Value, values: Option<Vec<Value>>| {
            AdhocFilter { key: "variant".into(), operator: op.into(), value, values }.matcher()
        };
        assert!(f("=", json!("canary"), None).unwrap().matches("canary"));
        assert!(!f("!=", json!("canary"), None).unwrap().matches("canary"));
        assert!(f("=~", json!("can.*"), None).unwrap().matches("canary"));
        assert!(!f("!~", json!("can.*"), None).unwrap().matches("canary"));
        let any = f("=|", json!(""), Some(vec![json!("a.b"), json!("canary")])).unwrap();
        assert!(any.matches("a.b") && any.matches("canary") && !any.matches("axb"));
        assert!(!f("!=|", json!(""), Some(vec![json!("canary")])).unwrap().matches("canary"));
        let e = f("<", json!("3"), None).unwrap_err();
        assert!(e.message().contains("\"<\"") && e.message().contains("variant"), "{}", e.message());
    }

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
