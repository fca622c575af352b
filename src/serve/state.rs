//! The server's shared state: the store, the limits, the clock, the answer cache and the
//! permits that bound concurrent evaluations.

use super::{ApiError, ServeConfig, prom};
use modelwatch_agent::Clock;
use modelwatch_query::{MetricKind, Query, Range, Series};
use modelwatch_store::{SeriesKey, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The server's state, shared by the handlers.
pub struct AppState {
    pub(super) store: Arc<Store>,
    pub(super) config: ServeConfig,
    clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
    permits: tokio::sync::Semaphore,
    pub(super) exposition: Mutex<prom::Exposition>,
    /// Commands to the trigger engine's thread, when the server runs one.
    triggers: Mutex<Option<crossbeam_channel::Sender<crate::triggers::TriggerCommand>>>,
}

/// Answers by query and range, valid for one store generation.
#[derive(Default)]
pub(super) struct Cache {
    generation: u64,
    answers: HashMap<AnswerKey, Arc<Vec<Series>>>,
    catalog: HashMap<(i64, i64), Catalog>,
    /// Whole `/grafana/query` responses by normalised request.
    pub(super) responses: HashMap<String, axum::body::Bytes>,
}

const CACHE_ENTRIES: usize = 4_096;

/// A cached answer's identity: the query's parts and the range, as values. A printed query
/// would not do: label names are not escaped when printed, so a crafted name could print
/// like another query's matchers and be served its answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AnswerKey {
    func: String,
    explicit: bool,
    metric: String,
    /// (label, operator, value) per matcher.
    matchers: Vec<(String, String, String)>,
    by: Vec<String>,
    range: (i64, i64, i64),
}

impl AnswerKey {
    fn new(q: &Query, range: Range) -> Self {
        AnswerKey {
            func: q.func.to_string(),
            explicit: q.explicit,
            metric: q.metric.clone(),
            matchers: q
                .matchers
                .iter()
                .map(|m| (m.label.clone(), format!("{:?}", m.op), m.value.clone()))
                .collect(),
            by: q.by.clone(),
            range: (range.from_ms, range.to_ms, range.step_ms),
        }
    }
}

/// Every series of a range, with its kind.
type Catalog = Arc<Vec<(SeriesKey, MetricKind)>>;

impl AppState {
    /// State over an open store. Every `now` (relative times, default ranges, the start of
    /// the Prometheus counters) comes from `clock`.
    pub fn new(store: Arc<Store>, config: ServeConfig, clock: Arc<dyn Clock>) -> Arc<AppState> {
        let permits = tokio::sync::Semaphore::new(config.max_concurrent.max(1));
        let now_ms = clock.now().as_millis() as i64;
        Arc::new(AppState {
            store,
            config,
            clock,
            cache: Mutex::new(Cache::default()),
            permits,
            exposition: Mutex::new(prom::Exposition::new(now_ms)),
            triggers: Mutex::new(None),
        })
    }

    /// Routes `POST /api/v1/triggers/fire` and `/ack/{id}` to a trigger engine's thread.
    pub fn set_trigger_commands(&self, tx: crossbeam_channel::Sender<crate::triggers::TriggerCommand>) {
        *self.triggers.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Now, from the server's clock (ms).
    pub fn now_ms(&self) -> i64 {
        self.clock.now().as_millis() as i64
    }

    pub(super) fn trigger_commands(
        &self,
    ) -> Option<crossbeam_channel::Sender<crate::triggers::TriggerCommand>> {
        self.triggers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.store.generation();
        if c.generation != generation {
            *c = Cache { generation, ..Cache::default() };
        }
        c
    }

    /// Runs blocking store work on the blocking pool, within the concurrency limit and the
    /// time left before `deadline`.
    pub(super) async fn blocking<T: Send + 'static>(
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

    /// Refuses (422) a window `[from_ms, to_ms)` longer than `max_range_ms`: every route that
    /// reads a range (queries, drift, quality, events, discovery) asks this first, since each
    /// of them reads everything in its window. `what` names the window in the message.
    pub(super) fn check_range(&self, what: &str, from_ms: i64, to_ms: i64) -> Result<(), ApiError> {
        if to_ms.saturating_sub(from_ms) > self.config.max_range_ms {
            return Err(ApiError::too_costly(format!(
                "{what} covers {} days, at most {} are allowed",
                to_ms.saturating_sub(from_ms) / 86_400_000,
                self.config.max_range_ms / 86_400_000
            )));
        }
        Ok(())
    }

    /// Evaluates a query (cached per store generation).
    pub(super) async fn query(
        self: &Arc<Self>,
        q: Query,
        range: Range,
        deadline: Instant,
    ) -> Result<Arc<Vec<Series>>, ApiError> {
        self.check_range("the range", range.from_ms, range.to_ms)?;
        let key = AnswerKey::new(&q, range);
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
    pub(super) async fn catalog(
        self: &Arc<Self>,
        from_ms: i64,
        to_ms: i64,
        deadline: Instant,
    ) -> Result<Catalog, ApiError> {
        self.check_range("the discovery range", from_ms, to_ms)?;
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

    pub(super) fn remember_response(&self, generation: u64, key: String, bytes: axum::body::Bytes) {
        let mut cache = self.cache();
        if cache.generation == generation && self.config.cache_answers {
            if cache.responses.len() >= CACHE_ENTRIES {
                cache.responses.clear();
            }
            cache.responses.insert(key, bytes);
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.config.timeout
    }
}
