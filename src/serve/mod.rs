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
//! dashboard watched by many people costs one evaluation per panel and store change; the
//! caches are bounded in bytes ([`ServeConfig::cache_bytes`]).
//!
//! One request's cost is bounded as a whole: its targets ([`ServeConfig::max_targets`]),
//! the series and points summed over them ([`ServeConfig::limits`]), its answer's bytes
//! ([`ServeConfig::max_response_bytes`]), its range ([`ServeConfig::max_range_ms`]) and
//! its time ([`ServeConfig::timeout`], answered with a 503 before Grafana's 30 s proxy
//! timeout). Evaluation, regex compilation and serialisation run on blocking threads, at
//! most [`ServeConfig::max_concurrent`] at a time, each holding its slot until its work
//! has really stopped (the engine checks the deadline as it reads).

mod auth;
mod cache;
mod error;
mod grafana;
mod prom;
mod reports;
mod rest;
mod run;
mod state;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modelwatch_query::{Limits, NICE_STEPS, Range};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use error::ApiError;
pub use run::{RetrainSetup, ServeError, run, run_with, spawn_refresher};
pub use state::AppState;

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
    /// Most series and points one request may return, summed over its targets.
    pub limits: Limits,
    /// Most targets in one `/grafana/query` request (Grafana sends one request per panel,
    /// rarely with more than a few dozen targets).
    pub max_targets: usize,
    /// Largest answer body, bytes: past it the request is refused (422) rather than built.
    pub max_response_bytes: usize,
    /// Bytes the answer, response and discovery caches may hold together.
    pub cache_bytes: usize,
    /// Longest time range one query may cover, ms.
    pub max_range_ms: i64,
    /// Longest time a request may take before it is answered with an error.
    pub timeout: Duration,
    /// How often the read-only store looks for new rows and files.
    pub refresh_every: Duration,
    /// Queries evaluated at once (at least one); more wait (within the timeout).
    pub max_concurrent: usize,
    /// Keep answers per query and store generation (on by default; the load benchmark turns
    /// it off to measure evaluation itself).
    pub cache_answers: bool,
    /// Longest a client may take to send a request head (request line and headers): from
    /// the moment a connection is accepted, or from the first byte of a later request on a
    /// kept-alive connection (10 s). A client sending its head slowly is disconnected; its
    /// body then has as long again (408 past it).
    pub header_read_timeout: Duration,
    /// Longest a kept-alive connection may wait, idle, for its next request (60 s: longer
    /// than the usual scrape and dashboard refresh intervals, so those reuse connections).
    pub idle_timeout: Duration,
    /// Connections held at once (1,024, and no more than the process may open files for
    /// beside the store's own). Past it a new connection is answered 503 and closed.
    pub max_connections: usize,
    /// Connections held at once from one client address (an IPv6 client: its /64; 64, room
    /// for a Grafana loading a large dashboard). Past it a new connection from that address
    /// is answered 429 and closed. Behind a reverse proxy every client has its address:
    /// raise it to [`ServeConfig::max_connections`] there.
    pub max_connections_per_address: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            token: None,
            max_body_bytes: 1 << 20,
            limits: Limits { max_series: 1_000, max_points: 500_000 },
            max_targets: 100,
            max_response_bytes: 32 << 20,
            cache_bytes: 256 << 20,
            max_range_ms: 400 * 86_400_000,
            timeout: Duration::from_secs(25),
            refresh_every: Duration::from_secs(2),
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            cache_answers: true,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1_024,
            max_connections_per_address: 64,
        }
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
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authorize));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this endpoint takes another method".into())
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    // Ready once the store answers a read (the manifest and every listed file's partition
    // are reachable).
    let now = state.now_ms();
    match state.catalog(now - 3_600_000, now, state.deadline()).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => ApiError::Unavailable(e.message().to_string()).into_response(),
    }
}

/// Parses a request body as JSON into `T`; an empty body reads as `{}`. The error names the
/// field and position serde could not read.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
    serde_json::from_slice(text).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// The range to evaluate for `[from, to)`: a step of at least `min_step_ms` that keeps the
/// windows within `max_points`, rounded up to a nice step; the start aligned down and the
/// end up to it.
fn range_for(from: i64, to: i64, min_step_ms: i64, max_points: i64) -> Result<Range, ApiError> {
    if to <= from {
        return Err(ApiError::bad_request(format!("the range ends ({to}) before it starts ({from})")));
    }
    let bounds = crate::time::EARLIEST..crate::time::LATEST;
    if !bounds.contains(&from) || !bounds.contains(&to) {
        return Err(ApiError::bad_request(format!("the range {from}..{to} (ms) lies outside 1970 to 2500")));
    }
    // Whatever a client sends (intervalMs 1e300, maxDataPoints 0), a step between a
    // millisecond and the longest nice step, and at least one point.
    let longest = NICE_STEPS[NICE_STEPS.len() - 1];
    let (min_step_ms, max_points) = (min_step_ms.clamp(1, longest), max_points.clamp(1, 1 << 40));
    let wanted = min_step_ms.max((to - from - 1) / max_points + 1).max(1);
    let step = NICE_STEPS
        .iter()
        .copied()
        .find(|&s| s >= wanted)
        .unwrap_or((wanted + 86_399_999) / 86_400_000 * 86_400_000);
    let from_ms = from.div_euclid(step) * step;
    let to_ms = (to - 1).div_euclid(step) * step + step;
    Ok(Range { from_ms, to_ms, step_ms: step })
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
        // Hostile numbers neither overflow nor panic.
        let r = range_for(from, from + day, i64::MAX, i64::MAX).unwrap();
        assert_eq!(r.step_ms, NICE_STEPS[NICE_STEPS.len() - 1]);
        assert!(range_for(from, from + day, i64::MIN, 0).unwrap().step_ms >= 1);
        assert!(range_for(i64::MIN, i64::MAX, 1, 1).unwrap_err().message().contains("1970"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(auth::same(b"secret", b"secret"));
        assert!(!auth::same(b"secret", b"secreT"));
        assert!(!auth::same(b"secret", b"secret2"));
    }
}
