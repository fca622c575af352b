//! `/query`: each visible target becomes a query (its text, refined by its payload, the ad
//! hoc filters and the group-by keys), evaluated through the engine, and cut into frames.
//! Whole responses are cached per store generation.

use super::frames::{Frame, display, heatmap_frame, report_frame, series_frame, table_frame};
use super::payload::{
    AdhocFilter, MAX_GROUP_LABELS, TimeRange, check_filters, labels_of, option_str, payload_filters,
    payload_str, text, unescape,
};
use super::{Body, targets};
use crate::serve::{ApiError, AppState, range_for};
use axum::extract::State;
use axum::response::IntoResponse;
use modelwatch_query::{Func, Limits, Matcher, Query, Range, Series, parse};
use serde::Deserialize;
use serde_json::Value;
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

impl Target {
    /// Whether the target asks for annotations (the events table): answered for the exact
    /// range, not windows, which the response cache's key must then hold.
    fn is_annotation(&self) -> bool {
        let target = self.target.as_deref().map(str::trim).unwrap_or("");
        self.ref_id == "Anno" || target == "events" || target == "annotations"
    }
}

/// `/query`. Whole responses are cached too (per store generation): a dashboard open on
/// many screens asks the same panels with ranges that snap to the same windows.
///
/// A small request (as Grafana sends one panel's) is read and looked up in the response
/// cache here; anything else — reading a large body, compiling its filters, evaluating,
/// building and serialising frames — runs on a blocking thread within the request's slot
/// (`AppState::run_limited`).
pub(super) async fn query(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let now = state.now_ms();
    let cached = |state: &AppState, prepared: &Prepared| state.cache().responses.get(&prepared.key).cloned();
    let bytes = if body.len() <= INLINE_BODY_BYTES {
        let prepared = prepare(&state, &body, now)?;
        match cached(&state, &prepared) {
            Some(hit) => hit,
            None => state.run_limited(state.deadline(), move |state| answer(state, prepared)).await?,
        }
    } else {
        state
            .run_limited(state.deadline(), move |state| {
                let prepared = prepare(state, &body, now)?;
                match cached(state, &prepared) {
                    Some(hit) => Ok(hit),
                    None => answer(state, prepared),
                }
            })
            .await?
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// Bodies up to this size are parsed on the async worker (well under a millisecond).
const INLINE_BODY_BYTES: usize = 16 << 10;

/// A parsed request: what it asks, the range it is evaluated over, and its cache key.
struct Prepared {
    req: QueryRequest,
    from: i64,
    to: i64,
    range: Range,
    key: ResponseKey,
}

fn prepare(state: &AppState, body: &[u8], now: i64) -> Result<Prepared, ApiError> {
    let raw: Value = json_slice(body)?;
    let req: QueryRequest = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("malformed /query body: {e}")))?;
    let visible = req.targets.iter().filter(|t| !t.hide).count();
    if visible > state.config.max_targets {
        return Err(ApiError::too_costly(format!(
            "the request has {visible} targets, at most {} are allowed; split it over several panels",
            state.config.max_targets
        )));
    }
    if req.range.from.is_empty() || req.range.to.is_empty() {
        return Err(ApiError::bad_request("`range.from` and `range.to` are required"));
    }
    let (from, to) = req.range.bounds(now)?;
    let min_step = req.interval_ms.filter(|i| i.is_finite() && *i >= 1.0).unwrap_or(1_000.0) as i64;
    let max_points = req.max_data_points.filter(|p| p.is_finite() && *p >= 1.0).unwrap_or(1_000.0) as i64;
    let range = range_for(from, to, min_step, max_points)?;
    check_filters(req.filters.len() + req.adhoc_filters.len(), "ad hoc filters")?;
    let annotations = req.targets.iter().any(|t| !t.hide && t.is_annotation());
    let key = ResponseKey {
        parts: ["targets", "filters", "adhocFilters", "groupByKeys"].map(|k| Canon::of(&raw[k])),
        range: (range.from_ms, range.to_ms, range.step_ms),
        // Events are not windowed: their exact range matters.
        exact: annotations.then_some((from, to)),
    };
    Ok(Prepared { req, from, to, range, key })
}

/// Evaluates a prepared request into its response body (on a blocking thread), and keeps
/// it in the response cache.
fn answer(state: &Arc<AppState>, p: Prepared) -> Result<axum::body::Bytes, ApiError> {
    let generation = state.store.generation();
    // The same request may have been answered while this one waited for its slot.
    if let Some(hit) = state.cache().responses.get(&p.key) {
        return Ok(hit.clone());
    }
    let frames = frames(state, &p.req, p.from, p.to, p.range)?;
    let bytes = serde_json::to_vec(&frames).map_err(|e| ApiError::internal(e.to_string()))?;
    state.check_response(bytes.len())?;
    let bytes = axum::body::Bytes::from(bytes);
    state.remember_response(generation, p.key, bytes.clone());
    Ok(bytes)
}

fn json_slice(body: &[u8]) -> Result<Value, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(text).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// A whole response's identity in the cache: the request's parts as values (never their
/// printed form) and the evaluated range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(in crate::serve) struct ResponseKey {
    /// `targets`, `filters`, `adhocFilters`, `groupByKeys`.
    parts: [Canon; 4],
    range: (i64, i64, i64),
    exact: Option<(i64, i64)>,
}

impl ResponseKey {
    /// The heap the key holds, roughly.
    pub(in crate::serve) fn bytes(&self) -> usize {
        self.parts.iter().map(Canon::bytes).sum::<usize>() + 64
    }
}

/// A JSON value as a hashable value: numbers by their exact text, objects as sorted pairs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Canon {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Canon>),
    Obj(Vec<(String, Canon)>),
}

impl Canon {
    fn of(v: &Value) -> Canon {
        match v {
            Value::Null => Canon::Null,
            Value::Bool(b) => Canon::Bool(*b),
            Value::Number(n) => Canon::Num(n.to_string()),
            Value::String(s) => Canon::Str(s.clone()),
            Value::Array(a) => Canon::Arr(a.iter().map(Canon::of).collect()),
            Value::Object(o) => {
                let mut pairs: Vec<(String, Canon)> =
                    o.iter().map(|(k, v)| (k.clone(), Canon::of(v))).collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                Canon::Obj(pairs)
            }
        }
    }

    fn bytes(&self) -> usize {
        32 + match self {
            Canon::Null | Canon::Bool(_) => 0,
            Canon::Num(s) | Canon::Str(s) => s.len(),
            Canon::Arr(a) => a.iter().map(Canon::bytes).sum(),
            Canon::Obj(o) => o.iter().map(|(k, v)| k.len() + v.bytes()).sum(),
        }
    }
}

/// What the request's targets have cost so far, against the request-wide limits.
struct Budget {
    limits: Limits,
    series: usize,
    points: usize,
}

impl Budget {
    /// The limits left for the next target's evaluation.
    fn left(&self) -> Limits {
        Limits {
            max_series: self.limits.max_series.saturating_sub(self.series),
            max_points: self.limits.max_points.saturating_sub(self.points),
        }
    }

    /// An engine refusal under the budget the earlier targets left, told as the request's.
    fn refused(&self, e: ApiError) -> ApiError {
        match e {
            ApiError::TooCostly(m) if self.series + self.points > 0 => ApiError::too_costly(format!(
                "the request's targets together need more than its limits of {} series and {} points \
                 ({m}, after {} series and {} points of the earlier targets)",
                self.limits.max_series, self.limits.max_points, self.series, self.points
            )),
            e => e,
        }
    }

    /// Counts a target's answer (`weight` cells per point: a heatmap's rows), refusing once
    /// the request as a whole is past a limit.
    fn spend(&mut self, series: &[Series], weight: usize) -> Result<(), ApiError> {
        self.series += series.len();
        self.points += series.iter().map(|s| s.points.len().max(1) * weight).sum::<usize>();
        if self.series > self.limits.max_series {
            return Err(ApiError::too_costly(format!(
                "the request's targets return {} series together, at most {}; filter more or split the panel",
                self.series, self.limits.max_series
            )));
        }
        if self.points > self.limits.max_points {
            return Err(ApiError::too_costly(format!(
                "the request's targets return {} points together, at most {}; narrow the range, raise the step or filter more",
                self.points, self.limits.max_points
            )));
        }
        Ok(())
    }
}

fn frames(
    state: &Arc<AppState>,
    req: &QueryRequest,
    from: i64,
    to: i64,
    range: Range,
) -> Result<Vec<Frame>, ApiError> {
    // Each filter may be a regex to compile: stop at the deadline between them.
    let adhoc = req
        .filters
        .iter()
        .chain(&req.adhoc_filters)
        .filter(|f| !f.key.is_empty())
        .map(|f| modelwatch_query::cancel::check().map_err(ApiError::from).and_then(|_| f.matcher()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut budget = Budget { limits: state.config.limits, series: 0, points: 0 };
    let visible: Vec<&Target> = req.targets.iter().filter(|t| !t.hide).collect();
    // Every query target built first (its regexes compiled, between deadline checks), so
    // that targets of one selector can be evaluated together; a target's error is still
    // told when its turn comes, after the targets before it.
    let mut built: Vec<Option<Result<(Query, Options), ApiError>>> = Vec::with_capacity(visible.len());
    for t in &visible {
        modelwatch_query::cancel::check()?;
        built.push(query_target(t).map(|target| build_query(target, &t.payload, &adhoc, &req.group_by_keys)));
    }
    // Answers evaluated with an earlier target of the same selector, by target index.
    let mut shared: Vec<Option<crate::serve::state::TargetAnswer>> = visible.iter().map(|_| None).collect();
    let mut frames = Vec::new();
    for (k, t) in visible.iter().enumerate() {
        modelwatch_query::cancel::check()?;
        let Some(target) = t.target.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { continue };
        let at = |e: ApiError| e.context(format_args!("target {} ({target})", t.ref_id));
        if t.is_annotation() {
            state.check_range("the events range", from, to).map_err(at)?;
            let frame = Frame::Value(targets::annotations(state, t, from, to).map_err(at)?);
            budget.points += frame.values();
            budget.spend(&[], 1).map_err(at)?;
            frames.push(frame);
            continue;
        }
        if target == "drift" || target == "quality" {
            let series = if target == "drift" {
                crate::serve::reports::drift_series(state, &t.payload, &adhoc, range)
            } else {
                crate::serve::reports::quality_series(state, &t.payload, &adhoc, range)
            }
            .map_err(at)?;
            budget.spend(&series, 1).map_err(at)?;
            let unit = if target == "quality" { Some("percentunit") } else { None };
            let alias = payload_str(&t.payload, "alias").map(str::to_string);
            for s in &series {
                frames.push(Frame::Value(report_frame(
                    &display(&alias, s, target, &t.ref_id),
                    &t.ref_id,
                    s,
                    unit,
                )));
            }
            continue;
        }
        let Some(Ok((q, options))) = &built[k] else {
            let e = match built[k].take() {
                Some(Err(e)) => e,
                _ => ApiError::internal("a query target was not built"),
            };
            return Err(at(e));
        };
        let heatmap = q.func == Func::Buckets || options.format == "heatmap";
        if heatmap && q.func != Func::Buckets {
            return Err(at(ApiError::bad_request(
                "format heatmap needs the statistic buckets (or buckets(...))",
            )));
        }
        let series = if q.metric == "error_ratio" {
            Arc::new(targets::error_ratio(state, q, range, budget.left()).map_err(|e| at(budget.refused(e)))?)
        } else if let Some(answer) = shared[k].take() {
            let series = answer.map_err(|e| at(budget.refused(e)))?;
            // The refusals of an evaluation alone, in its order: its windows under what the
            // earlier targets left (empty windows cost no point, so the points check alone
            // could pass what the windows check refuses), then its series and points.
            modelwatch_query::check_range(range, budget.left())
                .and_then(|()| modelwatch_query::check_limits(&series, budget.left()))
                .map_err(|e| at(budget.refused(e.into())))?;
            series
        } else {
            // The later targets that ask the same selector with another function.
            let same: Vec<usize> = (k + 1..visible.len())
                .filter(|&j| match &built[j] {
                    Some(Ok((other, _))) => shared[j].is_none() && same_selector(q, other),
                    _ => false,
                })
                .collect();
            if same.is_empty() {
                state.query_now(q, range, budget.left()).map_err(|e| at(budget.refused(e)))?
            } else {
                let qs: Vec<Query> = std::iter::once(q.clone())
                    .chain(same.iter().filter_map(|&j| built[j].as_ref()?.as_ref().ok().map(|b| b.0.clone())))
                    .collect();
                let mut answers = state
                    .query_each(&qs, range, budget.left())
                    .map_err(|e| at(budget.refused(e)))?
                    .into_iter();
                let mine = answers.next().expect("an answer per query");
                for (&j, answer) in same.iter().zip(answers) {
                    shared[j] = Some(answer);
                }
                mine.map_err(|e| at(budget.refused(e)))?
            }
        };
        // A heatmap sends a cell per bin and window.
        budget.spend(&series, if heatmap { options.bins } else { 1 }).map_err(at)?;
        for (index, s) in series.iter().enumerate() {
            let name = display(&options.alias, s, target, &t.ref_id);
            let frame = if heatmap {
                Frame::Value(heatmap_frame(&name, &t.ref_id, s, q, options.bins))
            } else if options.format == "table" {
                Frame::Value(table_frame(&name, &t.ref_id, s, q))
            } else {
                series_frame(name, &t.ref_id, &series, index, q)
            };
            frames.push(frame);
        }
    }
    Ok(frames)
}

/// A target's query text, when it is a query (not empty, events, drift or quality).
fn query_target(t: &Target) -> Option<&str> {
    let target = t.target.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
    (!t.is_annotation() && target != "drift" && target != "quality").then_some(target)
}

/// Whether two queries read the same series the same way (metric, filters, grouping),
/// whatever their functions: then one evaluation answers both.
fn same_selector(a: &Query, b: &Query) -> bool {
    a.metric == b.metric
        && a.metric != "error_ratio"
        && a.by == b.by
        && a.matchers.len() == b.matchers.len()
        && a.matchers
            .iter()
            .zip(&b.matchers)
            .all(|(x, y)| x.label == y.label && x.op == y.op && x.value == y.value)
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
    check_filters(q.matchers.len(), "label filters in the query, its payload and the ad hoc filters")?;
    let by = payload.get("by").map(labels_of).unwrap_or_default();
    if by.len() + group_by.len() + q.by.len() > MAX_GROUP_LABELS {
        return Err(ApiError::TooCostly(format!(
            "{} labels to group by, at most {MAX_GROUP_LABELS} are allowed",
            by.len() + group_by.len() + q.by.len()
        )));
    }
    for l in by.into_iter().chain(group_by.iter().cloned()) {
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
