//! `modelwatch serve`: the HTTP read side over a store.
//!
//! The handlers only parse requests and format answers; every number comes from the query
//! engine ([`modelwatch_query`]). Routes:
//!
//! - `/grafana/...`: the Grafana JSON datasource contract (`GET /`, `POST /metrics`,
//!   `/metric-payload-options`, `/query`, `/variable`, `/tag-keys`, `/tag-values`).
//! - `/api/v1/query`, `/api/v1/series`, `/api/v1/labels/{label}/values`, `/api/v1/events`:
//!   plain REST for scripts and Grafana's Infinity datasource.
//! - `GET /metrics`: Prometheus text exposition.
//! - `GET /healthz` (the process answers) and `GET /readyz` (the store was read).
//!
//! The store is opened read-only (the scorer owns the WAL) and refreshed every
//! [`ServeConfig::refresh_every`]. Answers are cached per query and store generation: a
//! dashboard watched by many people costs one evaluation per panel and store change.
//! Queries run on blocking threads, at most [`ServeConfig::max_concurrent`] at a time, and
//! any request that would run past [`ServeConfig::timeout`] is answered with an error
//! before Grafana's 30 s proxy timeout.

mod frames;
mod grafana;
mod prom;
mod reports;
mod rest;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modelwatch_query::{Limits, MetricKind, NICE_STEPS, Query, QueryError, Range, Series};
use modelwatch_store::{SeriesKey, Store, StoreError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen (loopback by default).
    pub listen: SocketAddr,
    /// When set, every route but `/healthz` and `/readyz` needs `Authorization: Bearer
    /// <token>` (or `X-API-Key: <token>`).
    pub token: Option<String>,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Most series and points one query may return.
    pub limits: Limits,
    /// Longest time range one query may cover, ms.
    pub max_range_ms: i64,
    /// Longest time a request may take before it is answered with an error.
    pub timeout: Duration,
    /// How often the read-only store looks for new rows and files.
    pub refresh_every: Duration,
    /// Queries evaluated at once; more wait (within the timeout).
    pub max_concurrent: usize,
    /// Keep answers per query and store generation (on by default; the load benchmark turns
    /// it off to measure evaluation itself).
    pub cache_answers: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            token: None,
            max_body_bytes: 1 << 20,
            limits: Limits { max_series: 1_000, max_points: 500_000 },
            max_range_ms: 400 * 86_400_000,
            timeout: Duration::from_secs(25),
            refresh_every: Duration::from_secs(2),
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            cache_answers: true,
        }
    }
}

/// A request that cannot be answered: its status and a message naming the problem, sent as
/// `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    fn too_costly(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, message: message.into() }
    }

    fn internal(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Store(e) => ApiError::internal(e.to_string()),
            QueryError::TooLarge(_) => ApiError::too_costly(e.to_string()),
            QueryError::NotADistribution { .. } | QueryError::BadRange(_) => {
                ApiError::bad_request(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(serde_json::json!({ "message": self.message }))).into_response()
    }
}

/// The server's state, shared by the handlers.
pub struct AppState {
    store: Arc<Store>,
    config: ServeConfig,
    cache: Mutex<Cache>,
    permits: tokio::sync::Semaphore,
    exposition: Mutex<prom::Exposition>,
    /// Commands to the trigger engine's thread, when the server runs one.
    triggers: Mutex<Option<crossbeam_channel::Sender<TriggerCommand>>>,
}

/// A request to the trigger engine running beside the server, with where to answer.
pub enum TriggerCommand {
    /// Fire by hand.
    Fire {
        /// Why.
        reason: String,
        /// Past the cool-down.
        force: bool,
        /// The event, or the message why not.
        reply: crossbeam_channel::Sender<Result<crate::triggers::RetrainEvent, String>>,
    },
    /// Acknowledge an event.
    Ack {
        /// Its ID.
        id: String,
        /// Done, or why not.
        reply: crossbeam_channel::Sender<Result<(), String>>,
    },
}

/// Answers by query and range, valid for one store generation.
#[derive(Default)]
struct Cache {
    generation: u64,
    answers: HashMap<String, Arc<Vec<Series>>>,
    catalog: HashMap<(i64, i64), Catalog>,
    /// Whole `/grafana/query` responses by normalised request.
    responses: HashMap<String, axum::body::Bytes>,
}

const CACHE_ENTRIES: usize = 4_096;

/// Every series of a range, with its kind.
type Catalog = Arc<Vec<(SeriesKey, MetricKind)>>;

impl AppState {
    /// State over an open store; `now_ms` starts the Prometheus counters.
    pub fn new(store: Arc<Store>, config: ServeConfig, now_ms: i64) -> Arc<AppState> {
        let permits = tokio::sync::Semaphore::new(config.max_concurrent.max(1));
        Arc::new(AppState {
            store,
            config,
            cache: Mutex::new(Cache::default()),
            permits,
            exposition: Mutex::new(prom::Exposition::new(now_ms)),
            triggers: Mutex::new(None),
        })
    }

    /// Routes `POST /api/v1/triggers/fire` and `/ack/{id}` to a trigger engine's thread.
    pub fn set_trigger_commands(&self, tx: crossbeam_channel::Sender<TriggerCommand>) {
        *self.triggers.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    fn trigger_commands(&self) -> Option<crossbeam_channel::Sender<TriggerCommand>> {
        self.triggers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.store.generation();
        if c.generation != generation {
            *c = Cache { generation, ..Cache::default() };
        }
        c
    }

    /// Runs blocking store work on the blocking pool, within the concurrency limit and the
    /// time left before `deadline`.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        deadline: Instant,
        work: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let late = || {
            ApiError::too_costly(format!(
                "the request ran past the server's {} s limit; narrow the range, raise the step or filter more",
                self.config.timeout.as_secs()
            ))
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let permit = tokio::time::timeout(left, self.permits.acquire()).await.map_err(|_| late())?;
        let _permit = permit.map_err(|_| ApiError::internal("the server is shutting down"))?;
        let store = self.store.clone();
        // (A file a writer's compaction replaced is read again by the store itself.)
        let task = tokio::task::spawn_blocking(move || work(&store));
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, task).await {
            Err(_) => Err(late()),
            Ok(Err(e)) => Err(ApiError::internal(format!("the query failed: {e}"))),
            Ok(Ok(r)) => r,
        }
    }

    /// Evaluates a query (cached per store generation).
    async fn query(
        self: &Arc<Self>,
        q: Query,
        range: Range,
        deadline: Instant,
    ) -> Result<Arc<Vec<Series>>, ApiError> {
        if range.to_ms - range.from_ms > self.config.max_range_ms {
            return Err(ApiError::too_costly(format!(
                "the range covers {} days, at most {} are allowed",
                (range.to_ms - range.from_ms) / 86_400_000,
                self.config.max_range_ms / 86_400_000
            )));
        }
        let key = format!("{q}|{}|{}|{}", range.from_ms, range.to_ms, range.step_ms);
        if let Some(hit) = self.cache().answers.get(&key) {
            return Ok(hit.clone());
        }
        let generation = self.store.generation();
        let limits = self.config.limits;
        let answer = Arc::new(
            self.blocking(deadline, move |store| {
                modelwatch_query::run(store, &q, range, limits).map_err(ApiError::from)
            })
            .await?,
        );
        let mut cache = self.cache();
        if cache.generation == generation && self.config.cache_answers {
            if cache.answers.len() >= CACHE_ENTRIES {
                cache.answers.clear();
            }
            cache.answers.insert(key, answer.clone());
        }
        Ok(answer)
    }

    /// Every series with rows in the range, with its kind (cached per store generation).
    async fn catalog(
        self: &Arc<Self>,
        from_ms: i64,
        to_ms: i64,
        deadline: Instant,
    ) -> Result<Catalog, ApiError> {
        // Hour-aligned so that dashboards refreshing every few seconds share one entry.
        let (from_ms, to_ms) =
            (from_ms.div_euclid(3_600_000) * 3_600_000, (to_ms / 3_600_000 + 1) * 3_600_000);
        if let Some(hit) = self.cache().catalog.get(&(from_ms, to_ms)) {
            return Ok(hit.clone());
        }
        let generation = self.store.generation();
        let answer = Arc::new(
            self.blocking(deadline, move |store| {
                modelwatch_query::catalog(store, from_ms, to_ms).map_err(ApiError::from)
            })
            .await?,
        );
        let mut cache = self.cache();
        if cache.generation == generation {
            cache.catalog.insert((from_ms, to_ms), answer.clone());
        }
        Ok(answer)
    }

    fn remember_response(&self, generation: u64, key: String, bytes: axum::body::Bytes) {
        let mut cache = self.cache();
        if cache.generation == generation && self.config.cache_answers {
            if cache.responses.len() >= CACHE_ENTRIES {
                cache.responses.clear();
            }
            cache.responses.insert(key, bytes);
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.config.timeout
    }
}

/// The routes over a state.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .nest("/grafana", grafana::routes())
        // The plugin's Test button asks for `<url>/`; a nested "/" only matches `/grafana`.
        .route("/grafana/", get(|| async { "ok" }))
        .nest("/api/v1", rest::routes())
        .route("/metrics", get(prom::metrics))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(|| async { ApiError { status: StatusCode::NOT_FOUND, message: "no such endpoint".into() } })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    // Ready once the store answers a read (the manifest and every listed file's partition
    // are reachable).
    let now = now_ms();
    match state.catalog(now - 3_600_000, now, state.deadline()).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "message": e.message })))
            .into_response(),
    }
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authorize(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.config.token else { return next.run(request).await };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match given {
        Some(g) if same(g.trim().as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => {
            ApiError { status: StatusCode::UNAUTHORIZED, message: "wrong token".into() }.into_response()
        }
        None => {
            let mut r = ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "this server needs `Authorization: Bearer <token>` or `X-API-Key: <token>`".into(),
            }
            .into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// Parses a request body as JSON into `T`; an empty body reads as `{}`. The error names the
/// field and position serde could not read.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError { status: e.status(), message: e.body_text() })?;
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
    serde_json::from_slice(text).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// Query answers as JSON: a list of series, each `{"tags": {...}, "points": [[ms, value],
/// ...]}`, plus `"buckets": [[[lower, upper, count], ...], ...]` (one list per point) for
/// `buckets(...)`. The CLI's `--format json` and `/api/v1/query` share it.
pub fn series_json(series: &[Series]) -> serde_json::Value {
    use serde_json::json;
    let doc: Vec<serde_json::Value> = series
        .iter()
        .map(|s| {
            let points: Vec<_> = s.points.iter().map(|&(t, v)| json!([t, v])).collect();
            let mut v = json!({ "tags": s.tags, "points": points });
            if !s.buckets.is_empty() {
                let windows: Vec<Vec<_>> = s
                    .buckets
                    .iter()
                    .map(|w| w.iter().map(|b| json!([b.lower, b.upper, b.count])).collect())
                    .collect();
                v["buckets"] = json!(windows);
            }
            v
        })
        .collect();
    serde_json::Value::Array(doc)
}

/// Now, ms since the Unix epoch.
pub fn now_ms() -> i64 {
    use modelwatch_agent::Clock;
    modelwatch_agent::SystemClock.now().as_millis() as i64
}

/// A time given as epoch ms, epoch seconds (10 digits), RFC 3339, `now` or `now-6h`.
pub fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, d) = rest.split_at(1);
        let d = parse_duration(d)?;
        return match sign {
            "-" => Ok(now - d),
            "+" => Ok(now + d),
            _ => Err(format!("{s:?}: expected now, now-<duration> or now+<duration>")),
        };
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(if s.len() <= 10 { n * 1000 } else { n });
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("{s:?} is not a time (RFC 3339, epoch ms or s, now, now-6h)"))
}

/// A range `FROM..TO` (each as [`parse_time`] reads it), or a duration `7d` meaning the
/// last seven days.
pub fn parse_range(s: &str, now: i64) -> Result<(i64, i64), String> {
    let (from, to) = match s.split_once("..") {
        Some((f, t)) => (parse_time(f, now)?, parse_time(t, now)?),
        None => (now - parse_duration(s)?, now),
    };
    if to <= from {
        return Err(format!("{s:?}: the range ends before it starts"));
    }
    Ok((from, to))
}

/// Parses `30s`, `15m`, `24h`, `7d`, `2w` (or bare milliseconds, `500ms`) into ms.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 15m, 24h or 7d"))?;
    let unit_ms = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d, w)")),
    };
    if n <= 0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(n * unit_ms)
}

/// The range to evaluate for `[from, to)`: a step of at least `min_step_ms` that keeps the
/// windows within `max_points`, rounded up to a nice step; the start aligned down and the
/// end up to it.
fn range_for(from: i64, to: i64, min_step_ms: i64, max_points: i64) -> Result<Range, ApiError> {
    if to <= from {
        return Err(ApiError::bad_request(format!("the range ends ({to}) before it starts ({from})")));
    }
    let wanted = min_step_ms.max((to - from + max_points.max(1) - 1) / max_points.max(1)).max(1);
    let step = NICE_STEPS
        .iter()
        .copied()
        .find(|&s| s >= wanted)
        .unwrap_or((wanted + 86_399_999) / 86_400_000 * 86_400_000);
    let from_ms = from.div_euclid(step) * step;
    let to_ms = (to - 1).div_euclid(step) * step + step;
    Ok(Range { from_ms, to_ms, step_ms: step })
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or the connection loop failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(store: Store, config: ServeConfig) -> Result<(), ServeError> {
    run_with(Arc::new(store), config, None)
}

/// Runs the server, and the trigger engine beside it when given (evaluated every
/// `every`, on its own thread), until Ctrl-C or SIGTERM.
pub fn run_with(
    store: Arc<Store>,
    config: ServeConfig,
    triggers: Option<(crate::triggers::TriggerEngine, Duration)>,
) -> Result<(), ServeError> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (commands, requests) = crossbeam_channel::unbounded::<TriggerCommand>();
    let has_triggers = triggers.is_some();
    let engine_thread = triggers.map(|(mut engine, every)| {
        let stop = stop.clone();
        let store = store.clone();
        std::thread::Builder::new().name("modelwatch-triggers".into()).spawn(move || {
            let mut next = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                if Instant::now() >= next {
                    next = Instant::now() + every;
                    let _ = store.refresh();
                    match engine.evaluate() {
                        Ok(out) => {
                            if let Some(e) = &out.event {
                                let why: Vec<&str> = e.reasons.iter().map(|r| r.summary.as_str()).collect();
                                tracing::warn!(id = %e.id, reasons = ?why, "retraining event");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "evaluating the triggers failed"),
                    }
                }
                // Commands from HTTP between evaluations; the short wait keeps stop prompt.
                match requests.recv_timeout(Duration::from_millis(100)) {
                    Ok(TriggerCommand::Fire { reason, force, reply }) => {
                        let r = match engine.fire(&reason, force) {
                            Ok(Ok(e)) => Ok(e),
                            Ok(Err(_)) => {
                                Err("suppressed by the cool-down (force to fire anyway)".to_string())
                            }
                            Err(e) => Err(e.to_string()),
                        };
                        let _ = reply.send(r);
                    }
                    Ok(TriggerCommand::Ack { id, reply }) => {
                        let _ = reply.send(engine.ack(&id).map_err(|e| e.to_string()));
                    }
                    Err(_) => {}
                }
            }
        })
    });
    let result = serve_until_signal(store, config, has_triggers.then_some(commands));
    stop.store(true, std::sync::atomic::Ordering::Release);
    if let Some(Ok(t)) = engine_thread {
        let _ = t.join();
    }
    result
}

fn serve_until_signal(
    store: Arc<Store>,
    config: ServeConfig,
    triggers: Option<crossbeam_channel::Sender<TriggerCommand>>,
) -> Result<(), ServeError> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("modelwatch-serve").build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && config.token.is_none() {
            tracing::warn!(%addr, "listening beyond loopback without a token: anyone who can reach it can read the store");
        }
        let state = AppState::new(store, config, now_ms());
        if let Some(tx) = triggers {
            state.set_trigger_commands(tx);
        }
        spawn_refresher(state.clone());
        eprintln!("modelwatch: serving {} on http://{addr}", state.store.dir().display());
        eprintln!("  Grafana JSON datasource: http://{addr}/grafana   Prometheus: http://{addr}/metrics");
        axum::serve(listener, router(state)).with_graceful_shutdown(shutdown_signal()).await?;
        Ok(())
    })
}

/// Refreshes the read-only store and feeds the Prometheus exposition every interval.
pub fn spawn_refresher(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.refresh_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = state.clone();
            let done = tokio::task::spawn_blocking(move || {
                if let Err(e) = s.store.refresh() {
                    tracing::warn!(error = %e, "refreshing the store failed; serving what was read before");
                }
            })
            .await;
            if done.is_err() {
                return;
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Store errors as API errors.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_snap_to_nice_steps_and_cover_the_request() {
        let day = 86_400_000;
        let from = 1_764_115_234_567;
        let r = range_for(from, from + day, 30_000, 1_000).unwrap();
        assert_eq!(r.step_ms, 120_000, "86.4 s per point rounds up to 2 min");
        assert!(r.from_ms <= from && r.from_ms % r.step_ms == 0);
        assert!(r.to_ms >= from + day && r.to_ms % r.step_ms == 0);
        assert!((r.to_ms - r.from_ms) / r.step_ms <= 1_001);
        assert_eq!(range_for(0, 60_000, 1, 1_000).unwrap().step_ms, 1_000);
        assert!(range_for(10, 10, 1, 10).is_err());
    }

    #[test]
    fn times_parse_in_every_form_grafana_and_people_use() {
        let now = 1_764_115_200_000;
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("now-6h", now), Ok(now - 6 * 3_600_000));
        assert_eq!(parse_time("2025-11-26T00:00:00.000Z", now), Ok(1_764_115_200_000));
        assert_eq!(parse_time("1764115200", now), Ok(1_764_115_200_000));
        assert_eq!(parse_time("1764115200000", now), Ok(1_764_115_200_000));
        assert!(parse_time("yesterday", now).unwrap_err().contains("yesterday"));
        assert!(parse_time("now-6x", now).unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
    }
}
