//! The server's shared state: the store, the limits, the clock, the answer cache and the
//! permits that bound concurrent evaluations.

use super::cache::Bounded;
use super::{ApiError, ServeConfig, prom};
use modelwatch_agent::Clock;
use modelwatch_query::{MetricKind, Query, Range, Series};
use modelwatch_store::{SeriesKey, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The server's state, shared by the handlers.
pub struct AppState {
    pub(super) store: Arc<Store>,
    pub(super) config: ServeConfig,
    clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Evaluations running now on blocking threads, and the most at once (see
    /// [`AppState::evaluations`]).
    running: Arc<(AtomicUsize, AtomicUsize)>,
    pub(super) exposition: Mutex<prom::Exposition>,
    /// Commands to the trigger engine's thread, when the server runs one.
    triggers: Mutex<Option<crossbeam_channel::Sender<crate::triggers::TriggerCommand>>>,
}

/// Answers by query and range, valid for one store generation, bounded in bytes
/// ([`ServeConfig::cache_bytes`]: half for answers, a quarter each for whole responses and
/// discovery).
pub(super) struct Cache {
    generation: u64,
    answers: Bounded<AnswerKey, Arc<Vec<Series>>>,
    catalog: Bounded<(i64, i64), Catalog>,
    /// Whole `/grafana/query` responses by normalised request.
    pub(super) responses: Bounded<super::grafana::ResponseKey, axum::body::Bytes>,
}

impl Cache {
    fn new(generation: u64, bytes: usize) -> Self {
        Cache {
            generation,
            answers: Bounded::new(bytes / 2),
            catalog: Bounded::new(bytes / 4),
            responses: Bounded::new(bytes / 4),
        }
    }
}

/// One target's answer among several evaluated together ([`AppState::query_each`]), or
/// its own error.
pub(super) type TargetAnswer = Result<Arc<Vec<Series>>, ApiError>;

/// The heap an answer holds, roughly: what the cache weighs it as.
pub(super) fn answer_bytes(series: &[Series]) -> usize {
    series
        .iter()
        .map(|s| {
            s.points.len() * 16
                + s.buckets.iter().map(|b| b.len() * 24 + 24).sum::<usize>()
                + s.tags.iter().map(|(k, v)| k.len() + v.len() + 64).sum::<usize>()
                + 96
        })
        .sum()
}

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
    /// The heap the key holds (a filter's value can be most of a request).
    fn bytes(&self) -> usize {
        self.func.len()
            + self.metric.len()
            + self.matchers.iter().map(|(l, o, v)| l.len() + o.len() + v.len() + 72).sum::<usize>()
            + self.by.iter().map(|l| l.len() + 24).sum::<usize>()
            + 64
    }

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
        let permits = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent.max(1)));
        let now_ms = clock.now().as_millis() as i64;
        let cache = Cache::new(store.generation(), config.cache_bytes);
        Arc::new(AppState {
            store,
            config,
            clock,
            cache: Mutex::new(cache),
            permits,
            running: Arc::default(),
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
            *c = Cache::new(generation, self.config.cache_bytes);
        }
        c
    }

    /// Runs blocking store work on the blocking pool, within the concurrency limit and the
    /// time left before `deadline` (see [`AppState::run_limited`]).
    pub(super) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        deadline: Instant,
        work: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_limited(deadline, move |state| work(&state.store)).await
    }

    /// Runs `work` on the blocking pool — evaluation, regex compilation, building and
    /// serialising answers never run on the async workers that accept connections and
    /// answer `/healthz` — holding one of [`ServeConfig::max_concurrent`] slots from the
    /// moment it starts until it really returns. Past `deadline` the request is answered
    /// with a timeout (503) at once, and the work stops at the engine's next cancellation
    /// check ([`modelwatch_query::cancel`]); its slot is freed only then, so timed-out
    /// work cannot pile up beyond the limit.
    pub async fn run_limited<T: Send + 'static>(
        self: &Arc<Self>,
        deadline: Instant,
        work: impl FnOnce(&Arc<AppState>) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let late = || {
            ApiError::TimedOut(format!(
                "the request ran past the server's {} s limit; narrow the range, raise the step or filter more",
                self.config.timeout.as_secs_f64()
            ))
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let permit =
            tokio::time::timeout(left, self.permits.clone().acquire_owned()).await.map_err(|_| late())?;
        let permit = permit.map_err(|_| ApiError::internal("the server is shutting down"))?;
        let state = self.clone();
        // (A file a writer's compaction replaced is read again by the store itself.)
        let task = tokio::task::spawn_blocking(move || {
            let _running = Running::start(&state.running);
            let answer = modelwatch_query::cancel::within(deadline, || work(&state));
            drop(_running);
            drop(permit);
            answer
        });
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), task).await {
            Err(_) => Err(late()),
            Ok(Err(e)) => Err(ApiError::internal(format!("the query failed: {e}"))),
            // Stopped by the engine's own check: the same answer as the timer's.
            Ok(Ok(Err(ApiError::TimedOut(_)))) => Err(late()),
            Ok(Ok(r)) => r,
        }
    }

    /// Evaluations running now, and the most that ever ran at once: never more than
    /// [`ServeConfig::max_concurrent`], timed-out ones included.
    pub fn evaluations(&self) -> (usize, usize) {
        (self.running.0.load(Ordering::Relaxed), self.running.1.load(Ordering::Relaxed))
    }

    /// Refuses (422) an answer of more than [`ServeConfig::max_response_bytes`].
    pub(super) fn check_response(&self, bytes: usize) -> Result<(), ApiError> {
        if bytes > self.config.max_response_bytes {
            return Err(ApiError::too_costly(format!(
                "the answer would be {bytes} bytes, at most {} are sent; narrow the range, raise the step or filter more",
                self.config.max_response_bytes
            )));
        }
        Ok(())
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

    /// Evaluates a query on this thread (cached per store generation), within `limits`:
    /// a request of several targets runs it for each with the budget its earlier targets
    /// left.
    pub(super) fn query_now(
        self: &Arc<Self>,
        q: &Query,
        range: Range,
        limits: modelwatch_query::Limits,
    ) -> Result<Arc<Vec<Series>>, ApiError> {
        self.check_range("the range", range.from_ms, range.to_ms)?;
        let key = AnswerKey::new(q, range);
        if let Some(hit) = self.cache().answers.get(&key) {
            return Ok(hit.clone());
        }
        let generation = self.store.generation();
        let answer = Arc::new(modelwatch_query::run(&self.store, q, range, limits)?);
        let mut cache = self.cache();
        if cache.generation == generation && self.config.cache_answers {
            let bytes = answer_bytes(&answer) + key.bytes();
            cache.answers.insert(key, answer.clone(), bytes);
        }
        Ok(answer)
    }

    /// [`Self::query_now`] of several queries that differ only in their function (a panel's
    /// p50, p95 and p99 of one selector), evaluated together: the store is read and each
    /// window merged once for all of them ([`modelwatch_query::run_each`]). Each answer is
    /// checked against `limits` on its own (the caller spends them in order) and cached as
    /// `query_now` caches it. The outer error is the first query's, which evaluating them
    /// one after the other would have met first.
    pub(super) fn query_each(
        self: &Arc<Self>,
        qs: &[Query],
        range: Range,
        limits: modelwatch_query::Limits,
    ) -> Result<Vec<TargetAnswer>, ApiError> {
        self.check_range("the range", range.from_ms, range.to_ms)?;
        let keys: Vec<AnswerKey> = qs.iter().map(|q| AnswerKey::new(q, range)).collect();
        let hits: Vec<Option<Arc<Vec<Series>>>> = {
            let cache = self.cache();
            keys.iter().map(|k| cache.answers.get(k).cloned()).collect()
        };
        if hits.iter().all(Option::is_some) {
            return Ok(hits.into_iter().flatten().map(Ok).collect());
        }
        let generation = self.store.generation();
        let funcs: Vec<modelwatch_query::Func> = qs.iter().map(|q| q.func.clone()).collect();
        let answers = modelwatch_query::run_each(&self.store, &qs[0], &funcs, range, limits)?;
        let mut cache = self.cache();
        let keep = cache.generation == generation && self.config.cache_answers;
        Ok(answers
            .into_iter()
            .zip(keys)
            .map(|(a, key)| {
                let answer = Arc::new(a?);
                if keep {
                    let bytes = answer_bytes(&answer) + key.bytes();
                    cache.answers.insert(key, answer.clone(), bytes);
                }
                Ok(answer)
            })
            .collect())
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
            let bytes = answer.iter().map(|(k, _)| catalog_entry_bytes(k)).sum();
            cache.catalog.insert((from_ms, to_ms), answer.clone(), bytes);
        }
        Ok(answer)
    }

    pub(super) fn remember_response(
        &self,
        generation: u64,
        key: super::grafana::ResponseKey,
        bytes: axum::body::Bytes,
    ) {
        let mut cache = self.cache();
        if cache.generation == generation && self.config.cache_answers {
            let weight = bytes.len() + key.bytes();
            cache.responses.insert(key, bytes, weight);
        }
    }

    /// Bytes held by the caches now (answers, responses, discovery).
    pub fn cache_bytes(&self) -> usize {
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.answers.bytes() + c.responses.bytes() + c.catalog.bytes()
    }

    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.config.timeout
    }
}

/// A catalog entry's heap: its tag strings are shared with the store's decoded rows, but a
/// catalog outlives them, so they are counted.
fn catalog_entry_bytes(k: &SeriesKey) -> usize {
    [&k.model, &k.version, &k.variant, &k.instance, &k.segment, &k.metric, &k.feature, &k.tags]
        .iter()
        .map(|s| s.len() + 16)
        .sum::<usize>()
        + 48
}

/// Counts an evaluation as running while alive, and keeps the high-water mark.
struct Running(Arc<(AtomicUsize, AtomicUsize)>);

impl Running {
    fn start(counters: &Arc<(AtomicUsize, AtomicUsize)>) -> Self {
        let now = counters.0.fetch_add(1, Ordering::SeqCst) + 1;
        counters.1.fetch_max(now, Ordering::SeqCst);
        Running(counters.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}
