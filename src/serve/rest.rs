//! Plain REST under `/api/v1`, for scripts and Grafana's Infinity datasource. Times are
//! epoch ms or s, RFC 3339, `now` or `now-6h`; answers are the CLI's JSON shapes.
//!
//! - `GET /query?query=<expr>&from=now-24h&to=now[&step=5m]` → `[{"tags", "points"}]`
//!   (without `step`, one chosen for about 1,000 points).
//! - `GET /series?from&to[&match=<selector>]` → `[{"metric", "kind", "model", ...}]`
//! - `GET /labels/{label}/values?from&to[&match=<selector>]` → `["a", "b"]`
//! - `GET /events?from&to[&kind=..&model=..]` → `[{"time_ms", "kind", ...}]`
//! - `GET /drift?reference=<baseline|FROM..TO>[&current=24h][&model=..&variant=..&segment=..]`
//!   → the drift report of `modelwatch drift --format json`.
//! - `GET /triggers` → the trigger state: `{"counting_since_ms", "last_fire_ms", "suppressed",
//!   "history": [{"event": {"id", "model", "fired_at_ms", "reasons"}, "deliveries", "acked_at_ms", ...}]}`.
//! - `POST /triggers/fire` with `{"reason": "...", "force": false}` → the event (409 inside
//!   the cool-down), and `POST /triggers/ack/{id}`: for a server started with `--triggers`.
//! - `GET /quality?from&to[&by=segment][&reference=FROM..TO][&threshold=0.5]` → realised and
//!   estimated quality per group, as `modelwatch quality --format json`.

use super::grafana::check_filters;
use super::{ApiError, AppState, range_for};
use crate::baseline::BaselineError;
use crate::time::{parse_duration, parse_range, parse_time};
use crate::triggers::{TriggerCommand, TriggerError};
use axum::Router;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modelwatch_query::parse;
use modelwatch_store::{ReadRequest, Resolution, Table};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/query", get(query))
        .route("/series", get(series))
        .route("/labels/{label}/values", get(label_values))
        .route("/events", get(events))
        .route("/drift", get(drift))
        .route("/quality", get(quality))
        .route("/triggers", get(triggers))
        .route("/status/runtime", get(runtime))
        .route("/triggers/fire", axum::routing::post(fire))
        .route("/triggers/ack/{id}", axum::routing::post(ack))
}

type Params = Result<UrlQuery<RangeParams>, axum::extract::rejection::QueryRejection>;
type PathParam = Result<Path<String>, axum::extract::rejection::PathRejection>;

/// A path segment, or a JSON 400 naming what is wrong with it (not UTF-8, ...).
fn path(p: PathParam) -> Result<String, ApiError> {
    p.map(|Path(s)| s).map_err(|e| ApiError::bad_request(format!("the path: {}", e.body_text())))
}
type Answer = Result<axum::Json<Value>, ApiError>;

#[derive(Deserialize, Default)]
#[serde(default)]
struct RangeParams {
    query: Option<String>,
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    #[serde(rename = "match")]
    selector: Option<String>,
    kind: Option<String>,
    model: Option<String>,
    reference: Option<String>,
    current: Option<String>,
    by: Option<String>,
    threshold: Option<f64>,
    min_label_age: Option<String>,
    min_bin_labels: Option<u64>,
    segment: Option<String>,
    variant: Option<String>,
}

impl RangeParams {
    fn from_url(p: Params) -> Result<RangeParams, ApiError> {
        p.map(|UrlQuery(p)| p).map_err(|e| ApiError::bad_request(e.body_text()))
    }

    /// `[from, to)`, by default the last hour.
    fn bounds(&self, now: i64) -> Result<(i64, i64), ApiError> {
        let t = |v: &Option<String>, default: i64, what: &str| match v {
            None => Ok(default),
            Some(s) => parse_time(s, now).map_err(|e| ApiError::bad_request(format!("{what}: {e}"))),
        };
        Ok((t(&self.from, now - 3_600_000, "from")?, t(&self.to, now, "to")?))
    }

    /// The series a `match` selector keeps (all without one).
    fn matches(&self) -> Result<Option<modelwatch_query::Query>, ApiError> {
        let q = self
            .selector
            .as_deref()
            .map(|s| parse(s).map_err(|e| ApiError::bad_request(format!("match: {e}"))))
            .transpose()?;
        if let Some(q) = &q {
            check_filters(q.matchers.len(), "label filters in `match`")?;
        }
        Ok(q)
    }
}

async fn query(State(state): State<Arc<AppState>>, params: Params) -> Result<Response, ApiError> {
    let p = RangeParams::from_url(params)?;
    let expr = p.query.as_deref().ok_or_else(|| ApiError::bad_request("the `query` parameter is missing"))?;
    let q = parse(expr).map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    check_filters(q.matchers.len(), "label filters in the query")?;
    let (from, to) = p.bounds(state.now_ms())?;
    let range = match &p.step {
        Some(s) => {
            let step = parse_duration(s).map_err(|e| ApiError::bad_request(format!("step: {e}")))?;
            if to <= from {
                return Err(ApiError::bad_request("`to` must be after `from`"));
            }
            modelwatch_query::Range { from_ms: from.div_euclid(step) * step, to_ms: to, step_ms: step }
        }
        None => range_for(from, to, 1_000, 1_000)?,
    };
    let unit = q.unit();
    let limits = state.config.limits;
    // Evaluated and serialised on a blocking thread, within the request's slot.
    let bytes = state
        .run_limited(state.deadline(), move |state| {
            let series = state.query_now(&q, range, limits)?;
            let bytes = serde_json::to_vec(&modelwatch_query::SeriesJson::new(&series, unit))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            state.check_response(bytes.len())?;
            Ok(bytes)
        })
        .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

fn keep(q: &Option<modelwatch_query::Query>, s: &modelwatch_store::SeriesKey) -> bool {
    q.as_ref().is_none_or(|q| {
        (q.metric.is_empty() || &*s.metric == q.metric.as_str())
            && q.matchers.iter().all(|m| m.matches(s.tag(&m.label).unwrap_or("")))
    })
}

async fn series(State(state): State<Arc<AppState>>, params: Params) -> Answer {
    let p = RangeParams::from_url(params)?;
    let (from, to) = p.bounds(state.now_ms())?;
    let catalog = state.catalog(from, to, state.deadline()).await?;
    // The selector may hold regexes: compiled and applied on a blocking thread.
    let out = state
        .run_limited(state.deadline(), move |_| {
            let selector = p.matches()?;
            Ok(catalog
                .iter()
                .filter(|(s, _)| keep(&selector, s))
                .map(|(s, k)| {
                    json!({ "metric": s.metric, "kind": k.as_str(), "model": s.model, "version": s.version,
                            "variant": s.variant, "instance": s.instance, "segment": s.segment,
                            "feature": s.feature, "tags": s.tags })
                })
                .collect::<Vec<Value>>())
        })
        .await?;
    Ok(axum::Json(Value::Array(out)))
}

async fn label_values(State(state): State<Arc<AppState>>, label: PathParam, params: Params) -> Answer {
    let label = path(label)?;
    let p = RangeParams::from_url(params)?;
    let (from, to) = p.bounds(state.now_ms())?;
    let catalog = state.catalog(from, to, state.deadline()).await?;
    let values = state
        .run_limited(state.deadline(), move |_| {
            let selector = p.matches()?;
            let values: BTreeSet<&str> = catalog
                .iter()
                .filter(|(s, _)| keep(&selector, s))
                .filter_map(|(s, _)| s.tag(&label).filter(|v| !v.is_empty()))
                .collect();
            Ok(json!(values))
        })
        .await?;
    Ok(axum::Json(values))
}

async fn events(State(state): State<Arc<AppState>>, params: Params) -> Answer {
    let p = RangeParams::from_url(params)?;
    let (from, to) = p.bounds(state.now_ms())?;
    state.check_range("the events range", from, to)?;
    let mut req = ReadRequest::new(Table::Events, from, to, Resolution::Raw);
    if let Some(k) = &p.kind {
        req = req.tag("kind", k);
    }
    if let Some(m) = &p.model {
        req = req.tag("model", m);
    }
    let (kind, model) = (p.kind.clone(), p.model.clone());
    let mut rows = state
        .blocking(state.deadline(), move |store| {
            let mut rows = store.read(&req)?.events;
            rows.extend(crate::triggers::events(store.dir(), from, to).into_iter().filter(|e| {
                kind.as_ref().is_none_or(|k| &*e.kind == k) && model.as_ref().is_none_or(|m| &*e.model == m)
            }));
            Ok(rows)
        })
        .await?;
    rows.sort_by_key(|e| e.time_ms);
    Ok(axum::Json(json!(rows
        .iter()
        .map(|e| json!({ "time_ms": e.time_ms, "model": e.model, "version": e.version, "variant": e.variant,
                         "kind": e.kind, "message": e.message }))
        .collect::<Vec<_>>())))
}

impl RangeParams {
    fn given(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [("model", &self.model), ("variant", &self.variant), ("segment", &self.segment)]
            .into_iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }

    fn filters(&self) -> Vec<modelwatch_query::Matcher> {
        self.given().map(|(k, v)| modelwatch_query::drift::eq(k, v)).collect()
    }

    fn described_filters(&self) -> Vec<String> {
        self.given().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

async fn drift(State(state): State<Arc<AppState>>, params: Params) -> Answer {
    let p = RangeParams::from_url(params)?;
    let spec =
        p.reference.clone().ok_or_else(|| ApiError::bad_request("the `reference` parameter is missing"))?;
    let now = state.now_ms();
    let window = parse_range(p.current.as_deref().unwrap_or("24h"), now)
        .map_err(|e| ApiError::from(e).context("current"))?;
    state.check_range("current", window.0, window.1)?;
    // A baseline's name is a saved profile; a range is read whole.
    if let Ok((from, to)) = parse_range(&spec, now) {
        state.check_range("reference", from, to)?;
    }
    let matchers = p.filters();
    let filters = p.described_filters();
    let data = state.store.dir().to_path_buf();
    let doc = state
        .blocking(state.deadline(), move |store| {
            let cfg = modelwatch_query::drift::DriftConfig::default();
            crate::baseline::drift_document(store, &data, &spec, &matchers, filters, window, now, &cfg)
                .map_err(|e| match e {
                    BaselineError::Query(q) => ApiError::from(q),
                    e @ BaselineError::NoData { .. } => ApiError::bad_request(format!("current: {e}")),
                    e => ApiError::bad_request(format!("reference: {e}")),
                })
        })
        .await?;
    Ok(axum::Json(serde_json::to_value(doc).map_err(|e| ApiError::internal(e.to_string()))?))
}

async fn quality(State(state): State<Arc<AppState>>, params: Params) -> Answer {
    let p = RangeParams::from_url(params)?;
    let (from, to) = p.bounds(state.now_ms())?;
    let now = state.now_ms();
    let reference = match &p.reference {
        Some(r) => parse_range(r, now).map_err(|e| ApiError::bad_request(format!("reference: {e}")))?,
        None => (from - (to - from), from),
    };
    state.check_range("the range", from, to)?;
    state.check_range("reference", reference.0, reference.1)?;
    let threshold = p.threshold.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ApiError::bad_request(format!("threshold {threshold}: a confidence in [0, 1]")));
    }
    let min_label_age_ms = match &p.min_label_age {
        Some(a) => {
            crate::time::parse_age(a).map_err(|e| ApiError::bad_request(format!("min_label_age: {e}")))?
        }
        None => 0,
    };
    let opts = modelwatch_query::quality::QualityOptions {
        reference: Some(reference),
        threshold,
        min_label_age_ms,
        min_bin_labels: p.min_bin_labels.unwrap_or(modelwatch_query::quality::DEFAULT_MIN_BIN_LABELS),
    };
    let by: Vec<String> = p.by.iter().cloned().collect();
    let matchers = p.filters();
    let doc = state
        .blocking(state.deadline(), move |store| {
            Ok(modelwatch_query::quality::report(store, &matchers, &by, (from, to), now, &opts)?)
        })
        .await?;
    Ok(axum::Json(serde_json::to_value(doc).map_err(|e| ApiError::internal(e.to_string()))?))
}

/// The server's own load: evaluations running and the most ever at once (never past
/// `max_concurrent`, timed-out work included), and the caches' bytes.
async fn runtime(State(state): State<Arc<AppState>>) -> Answer {
    let (running, peak) = state.evaluations();
    Ok(axum::Json(json!({
        "evaluations_running": running,
        "evaluations_peak": peak,
        "max_concurrent": state.config.max_concurrent,
        "cache_bytes": state.cache_bytes(),
        "cache_budget_bytes": state.config.cache_bytes,
    })))
}

async fn triggers(State(state): State<Arc<AppState>>) -> Answer {
    let dir = state.store.dir().to_path_buf();
    let st = state
        .blocking(state.deadline(), move |_| {
            crate::triggers::read_state(&dir).map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
    Ok(axum::Json(serde_json::to_value(st).map_err(|e| ApiError::internal(e.to_string()))?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FireBody {
    reason: String,
    force: bool,
}

/// Sends a command to the trigger engine's thread and waits for its answer off the runtime;
/// the engine's typed errors become statuses in `ApiError`'s one mapping.
async fn command<T: Send + 'static>(
    state: &Arc<AppState>,
    make: impl FnOnce(crossbeam_channel::Sender<Result<T, TriggerError>>) -> TriggerCommand,
) -> Result<T, ApiError> {
    let tx = state.trigger_commands().ok_or_else(|| {
        ApiError::NotFound(
            "this server runs no triggers (start it with `modelwatch serve --triggers CONFIG`)".into(),
        )
    })?;
    let (reply, answer) = crossbeam_channel::bounded(1);
    tx.send(make(reply)).map_err(|_| ApiError::internal("the trigger engine has stopped"))?;
    let deadline = state.deadline();
    let answer = tokio::task::spawn_blocking(move || answer.recv_deadline(deadline))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|_| ApiError::too_costly("the trigger engine did not answer in time"))?;
    Ok(answer?)
}

async fn fire(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    let b: FireBody = super::json_body(body)?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::bad_request("`reason` is required: say why retraining is wanted"));
    }
    let event =
        command(&state, |reply| TriggerCommand::Fire { reason: b.reason, force: b.force, reply }).await?;
    Ok(axum::Json(serde_json::to_value(event).map_err(|e| ApiError::internal(e.to_string()))?))
}

async fn ack(State(state): State<Arc<AppState>>, id: PathParam) -> Answer {
    let id = path(id)?;
    command(&state, |reply| TriggerCommand::Ack { id: id.clone(), outcome: None, reply }).await?;
    Ok(axum::Json(json!({ "acknowledged": id })))
}
