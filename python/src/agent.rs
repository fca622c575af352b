//! `modelwatch.Agent` and its `timer`: the Rust agent behind a Python class.
//!
//! Every recording method takes `&self` on a frozen class and reaches the Rust [`Handle`]
//! through one lock-free load ([`ArcSwap`]), so Python threads never wait for one another
//! here; the hook itself is the Rust one, lock-free per thread. `record` keeps the GIL: a
//! 16-feature record costs about as much as releasing and re-taking it (BENCHMARKS.md,
//! "Python hook"), and Python threads cannot run Python code in between anyway.
//!
//! An agent either owns its Rust agent (built here, over a store or a Python sink) or
//! records into one a `modelwatch.Deployment`'s registry watcher owns ([`Owner`]): the same
//! recording methods either way; the watcher flushes and shuts its agents down.

use crate::FORK_GENERATION;
use crate::convert::{Shape, feature_row, number, segment_name, timestamp_of, truth};
use arc_swap::ArcSwap;
#[allow(clippy::disallowed_types)] // a Python scorer's agent runs on the wall clock
use modelwatch_agent::SystemClock;
use modelwatch_agent::{
    Agent as RustAgent, AgentBuilder, Feature, Handle, Latency, OTHER, Prediction, Sink, SinkError, Snapshot,
    Timestamp,
};
use modelwatch_store::{ObjectStoreConfig, Store, StoreConfig};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// What an agent was built from: enough to build it again in a forked child.
#[derive(Clone)]
pub(crate) struct Spec {
    model: String,
    version: Option<String>,
    variant: Option<String>,
    instance: Option<String>,
    segments: Vec<String>,
    error_kinds: Vec<String>,
    features: Vec<Feature>,
    interval: Duration,
    memory_budget: Option<usize>,
}

/// Where snapshots go.
enum Target {
    /// A store in this data directory (`./modelwatch-data` by default), durable once a
    /// flush returns.
    Store(Location),
    /// A Python callable, given one dict per interval.
    Python(Py<PyAny>),
    /// An agent the registry watcher of a `Deployment` owns.
    Watched(Box<dyn Owner>),
}

/// The owner of an agent this class only records into: a `Deployment`'s watcher, which
/// builds, flushes and shuts down its agents itself.
pub(crate) trait Owner: Send + Sync {
    /// The handle of this agent's (arm, version) in this process, once the owner rebuilt
    /// itself after a fork; `None` when it no longer serves here (calls are then counted
    /// as after close).
    fn handle(&self, py: Python<'_>) -> PyResult<Option<Handle>>;
    /// Delivers what its agents recorded so far.
    fn flush(&self, py: Python<'_>) -> PyResult<()>;
    /// Whether the owner was closed (its agents shut down): calls are then counted as
    /// after close, not recorded into an agent nobody flushes.
    fn closed(&self) -> bool;
}

/// The agent of one process: rebuilt once in each forked child.
pub(crate) struct Live {
    generation: u64,
    agent: Mutex<Option<RustAgent>>,
    handle: Handle,
}

/// The in-process recorder of one model variant (see the module `modelwatch`'s docs).
#[pyclass(frozen, module = "modelwatch._modelwatch")]
pub struct Agent {
    spec: Spec,
    target: Target,
    shape: Shape,
    live: Arc<ArcSwap<Live>>,
    /// Serialises rebuilds after a fork and `close`.
    rebuild: Mutex<()>,
    closed: AtomicBool,
    /// Calls made after `close`: not recorded, counted.
    after_close: AtomicU64,
}

thread_local! {
    /// Set while this thread runs a Python sink or an `on_promote` callback: a `flush` or
    /// `close` from there would wait for the delivery it is part of.
    pub(crate) static IN_CALLBACK: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Refuses a `flush`/`close` made from inside a sink or callback (it would wait for itself).
pub(crate) fn not_in_callback(what: &str) -> PyResult<()> {
    match IN_CALLBACK.with(|c| c.get()) {
        Some(inside) => Err(PyRuntimeError::new_err(format!(
            "{what} from inside {inside} would wait for the delivery it is part of; do it after the callback returns"
        ))),
        None => Ok(()),
    }
}

/// Runs `f` marked as inside `what` (see [`IN_CALLBACK`]).
pub(crate) fn in_callback<T>(what: &'static str, f: impl FnOnce() -> T) -> T {
    let before = IN_CALLBACK.with(|c| c.replace(Some(what)));
    let out = f();
    IN_CALLBACK.with(|c| c.set(before));
    out
}

/// Every agent's cell, so that the agents still open when the interpreter exits deliver their
/// last interval (CPython does not promise to drop objects at exit).
static OPEN: Mutex<Vec<Weak<ArcSwap<Live>>>> = Mutex::new(Vec::new());

fn opened(live: Live) -> Arc<ArcSwap<Live>> {
    let cell = Arc::new(ArcSwap::from_pointee(live));
    let mut open = lock(&OPEN);
    open.retain(|w| w.strong_count() > 0);
    open.push(Arc::downgrade(&cell));
    cell
}

/// Closes every agent of this process still open; `modelwatch/__init__.py` registers it
/// with `atexit`. Agents copied from a parent process by a fork are left alone (their
/// threads are the parent's).
#[pyfunction]
pub fn close_all_at_exit(py: Python<'_>) {
    let cells: Vec<Arc<ArcSwap<Live>>> = lock(&OPEN).drain(..).filter_map(|w| w.upgrade()).collect();
    for cell in cells {
        let live = cell.load();
        if live.generation != FORK_GENERATION.load(Ordering::SeqCst) {
            continue;
        }
        let l: &Live = &live;
        let agent = py.detach(|| lock(&l.agent).take());
        if let Some(agent) = agent
            && let Err(e) = py.detach(|| agent.shutdown())
        {
            eprintln!("modelwatch: at exit, the agent of {:?}: {e}", live.handle.model().name);
        }
    }
}

/// Locks a mutex. An agent's `Live::agent` mutex is only ever locked with the GIL released
/// (inside `py.detach`): a thread that holds it may wait for the GIL (a Python sink, or
/// taking the GIL back after a flush), so a thread holding the GIL must never wait for it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Locks a mutex that a thread may hold while it waits for the GIL (a rebuild or a close
/// runs Python code or detaches): waits with the GIL released.
pub(crate) fn lock_attached<'a, T>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    m.lock_py_attached(py).unwrap_or_else(|p| p.into_inner())
}

/// Where a store lives: its data directory (the WAL, and the Parquet files unless
/// `objects` names an S3-compatible bucket for them, `s3://bucket/prefix`, reached through
/// the usual `AWS_*` variables, as the CLI's `--objects`).
#[derive(Clone, Debug)]
pub(crate) struct Location {
    pub dir: PathBuf,
    pub objects: Option<String>,
}

impl Location {
    pub(crate) fn new(data: Option<PathBuf>, objects: Option<String>) -> PyResult<Location> {
        if let Some(url) = &objects
            && !url.starts_with("s3://")
        {
            return Err(PyValueError::new_err(format!(
                "objects={url:?}: give an S3-compatible bucket as s3://bucket/prefix"
            )));
        }
        Ok(Location { dir: data.unwrap_or_else(|| PathBuf::from("./modelwatch-data")), objects })
    }

    pub(crate) fn config(&self) -> StoreConfig {
        StoreConfig {
            objects: self.objects.clone().map(|url| ObjectStoreConfig { url, options: Vec::new() }),
            ..StoreConfig::new(&self.dir)
        }
    }

    pub(crate) fn objects(&self) -> Option<ObjectStoreConfig> {
        self.config().objects
    }
}

/// The store at `at` (its directory made if missing), opened with the GIL released:
/// opening replays a dead writer's WAL.
pub(crate) fn open_store(py: Python<'_>, at: &Location) -> PyResult<Arc<Store>> {
    let dir = &at.dir;
    let store = py.detach(|| -> Result<Store, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Store::open(at.config()).map_err(|e| format!("cannot open the store in {}: {e}", dir.display()))
    });
    Ok(Arc::new(store.map_err(PyRuntimeError::new_err)?))
}

impl Spec {
    /// The spec of the agents of one model whose version and variant the caller sets.
    pub(crate) fn new(
        model: String,
        segments: Vec<String>,
        error_kinds: Vec<String>,
        features: Vec<Feature>,
        interval: Duration,
    ) -> Spec {
        Spec {
            model,
            version: None,
            variant: None,
            instance: None,
            segments,
            error_kinds,
            features,
            interval,
            memory_budget: None,
        }
    }

    /// The model's name.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// This spec for one version and variant.
    pub(crate) fn of(&self, version: &str, variant: &str) -> Spec {
        Spec { version: Some(version.to_string()), variant: Some(variant.to_string()), ..self.clone() }
    }

    pub(crate) fn builder(&self) -> AgentBuilder {
        let mut b = RustAgent::builder(&self.model)
            .segments(&self.segments)
            .error_kinds(&self.error_kinds)
            .features(self.features.iter().cloned())
            .interval(self.interval)
            .clock(SystemClock);
        if let Some(v) = &self.version {
            b = b.version(v);
        }
        if let Some(v) = &self.variant {
            b = b.variant(v);
        }
        if let Some(v) = &self.instance {
            b = b.instance(v);
        }
        if let Some(m) = self.memory_budget {
            b = b.memory_budget(m);
        }
        b
    }

    /// The agent of this process; `None` when the watcher that owns it no longer serves it.
    fn build(&self, py: Python<'_>, target: &Target) -> PyResult<Option<Live>> {
        let builder = self.builder();
        let agent = match target {
            Target::Store(dir) => builder.build(open_store(py, dir)?),
            Target::Python(callable) => builder.build(PySink { callable: callable.clone_ref(py) }),
            Target::Watched(owner) => return Ok(owner.handle(py)?.map(Live::watched)),
        }
        .map_err(|e| PyValueError::new_err(format!("agent {:?}: {e}", self.model)))?;
        let handle = agent.handle();
        Ok(Some(Live {
            generation: FORK_GENERATION.load(Ordering::SeqCst),
            agent: Mutex::new(Some(agent)),
            handle,
        }))
    }
}

impl Live {
    /// A handle whose agent someone else owns.
    fn watched(handle: Handle) -> Live {
        Live { generation: FORK_GENERATION.load(Ordering::SeqCst), agent: Mutex::new(None), handle }
    }
}

impl Agent {
    /// An agent that records into `handle`, whose Rust agent `owner` owns: `flush`
    /// delegates to the owner, `close` leaves the agent to it.
    pub(crate) fn watched(spec: Spec, handle: Handle, owner: Box<dyn Owner>) -> Agent {
        Agent {
            shape: Shape::new(&spec.features),
            spec,
            target: Target::Watched(owner),
            live: Arc::new(ArcSwap::from_pointee(Live::watched(handle))),
            rebuild: Mutex::new(()),
            closed: AtomicBool::new(false),
            after_close: AtomicU64::new(0),
        }
    }

    /// The agent of this process, rebuilt first when the process forked since it was
    /// built; `None` when a watched agent no longer serves in this process.
    #[inline]
    fn live(&self, py: Python<'_>) -> PyResult<Option<arc_swap::Guard<Arc<Live>>>> {
        let live = self.live.load();
        if live.generation == FORK_GENERATION.load(Ordering::Relaxed) {
            return Ok(Some(live));
        }
        drop(live);
        self.after_fork(py)?;
        Ok((!self.closed.load(Ordering::SeqCst)).then(|| self.live.load()))
    }

    /// The agent a recording call records into: `None`, the call counted, once closed.
    #[inline]
    fn recorder(&self, py: Python<'_>) -> PyResult<Option<arc_swap::Guard<Arc<Live>>>> {
        if self.is_closed() {
            return Ok(None);
        }
        if let Target::Watched(owner) = &self.target
            && owner.closed()
        {
            self.after_close.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let live = self.live(py)?;
        if live.is_none() {
            self.after_close.fetch_add(1, Ordering::Relaxed);
        }
        Ok(live)
    }

    #[cold]
    fn after_fork(&self, py: Python<'_>) -> PyResult<()> {
        let _one = lock_attached(py, &self.rebuild);
        if self.live.load().generation == FORK_GENERATION.load(Ordering::SeqCst) {
            return Ok(());
        }
        let fresh = match self.spec.build(py, &self.target)? {
            Some(live) => Arc::new(live),
            None => {
                // Its watcher serves another version here: the parent's handle stays in
                // place (never used: the agent is closed) with this generation.
                self.closed.store(true, Ordering::SeqCst);
                let parents = self.live.load();
                Arc::new(Live::watched(parents.handle.clone()))
            }
        };
        if self.closed.load(Ordering::SeqCst) {
            // Closed in the parent before the fork: the child's agent stays closed too.
            if let Some(a) = lock(&fresh.agent).take() {
                std::mem::forget(a);
            }
        }
        let parents = self.live.swap(fresh);
        // The parent's agent, store and threads as they were copied at the fork: never
        // dropped (see the crate docs).
        std::mem::forget(parents);
        Ok(())
    }

    fn is_closed(&self) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            self.after_close.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Records one prediction; every odd value is counted by the Rust agent, never raised.
    #[allow(clippy::too_many_arguments)]
    fn record_row(
        &self,
        py: Python<'_>,
        segment: &str,
        latency: Latency,
        confidence: f64,
        features: Option<&Bound<'_, PyAny>>,
        predicted: Option<bool>,
    ) -> PyResult<()> {
        self.record_in(py, segment, latency, confidence, features, predicted, false)
    }

    /// [`Agent::record_row`], the Rust call made with the GIL released when `detach`.
    #[allow(clippy::too_many_arguments)]
    fn record_in(
        &self,
        py: Python<'_>,
        segment: &str,
        latency: Latency,
        confidence: f64,
        features: Option<&Bound<'_, PyAny>>,
        predicted: Option<bool>,
        detach: bool,
    ) -> PyResult<()> {
        let Some(live) = self.recorder(py)? else { return Ok(()) };
        feature_row(&self.shape, features, |values: &[f64]| {
            let mut p = Prediction::new(segment, latency, confidence).features(values);
            if let Some(positive) = predicted {
                p = p.predicted(positive);
            }
            if detach {
                py.detach(|| live.handle.record(&p));
            } else {
                live.handle.record(&p);
            }
        });
        Ok(())
    }
}

#[pymethods]
impl Agent {
    #[new]
    #[pyo3(signature = (
        model, *, version=None, variant=None, instance=None, segments=None, features=None,
        error_kinds=None, interval=10.0, data=None, objects=None, sink=None, memory_budget=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: String,
        version: Option<String>,
        variant: Option<String>,
        instance: Option<String>,
        segments: Option<Vec<String>>,
        features: Option<&Bound<'_, PyAny>>,
        error_kinds: Option<Vec<String>>,
        interval: f64,
        data: Option<PathBuf>,
        objects: Option<String>,
        sink: Option<Py<PyAny>>,
        memory_budget: Option<usize>,
    ) -> PyResult<Agent> {
        // Names end up in the store's columns and the CLI's filters: an empty one could not
        // be asked for, a NUL or a line break breaks the tables that print them.
        let names = [("model", Some(&model)), ("version", version.as_ref()), ("variant", variant.as_ref())];
        let names = names.into_iter().chain([("instance", instance.as_ref())]);
        let segs = segments.iter().flatten().map(|s| ("segment", Some(s)));
        for (what, name) in names.chain(segs) {
            if let Some(name) = name
                && (name.is_empty() || name.chars().any(char::is_control))
            {
                return Err(PyValueError::new_err(format!(
                    "{what}={name:?}: give a name that is not empty and has no control characters"
                )));
            }
        }
        if !(interval.is_finite() && interval > 0.0 && interval <= 86_400.0) {
            return Err(PyValueError::new_err(format!(
                "interval={interval}: give the flush interval in seconds, more than 0 and at most 86400 (e.g. 10.0)"
            )));
        }
        let target = match (data, sink) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "give data= (a store directory) or sink= (a callable), not both",
                ));
            }
            (None, Some(_)) if objects.is_some() => {
                return Err(PyValueError::new_err(
                    "objects= is where a store keeps its files: give it with data=, not sink=",
                ));
            }
            (None, Some(sink)) => {
                if !sink.bind(py).is_callable() {
                    return Err(PyValueError::new_err(
                        "sink= must be callable: it is called with one dict per interval",
                    ));
                }
                Target::Python(sink)
            }
            (data, None) => Target::Store(Location::new(data, objects)?),
        };
        let features = match features {
            None => Vec::new(),
            Some(f) => crate::convert::schema(f)?,
        };
        let spec = Spec {
            model,
            version,
            variant,
            instance,
            segments: segments.unwrap_or_default(),
            error_kinds: error_kinds.unwrap_or_default(),
            features,
            interval: Duration::from_secs_f64(interval),
            memory_budget,
        };
        let shape = Shape::new(&spec.features);
        let live = spec.build(py, &target)?.ok_or_else(|| PyRuntimeError::new_err("no agent was built"))?;
        Ok(Agent {
            spec,
            target,
            shape,
            live: opened(live),
            rebuild: Mutex::new(()),
            closed: AtomicBool::new(false),
            after_close: AtomicU64::new(0),
        })
    }

    /// Records one prediction: its segment, latency in seconds, confidence in [0, 1], the
    /// features (list, tuple, dict by name, or a float64 buffer such as a NumPy array) and
    /// the predicted label. Odd values are counted, never raised.
    #[pyo3(signature = (segment, latency_s, confidence, features=None, predicted=None))]
    fn record(
        &self,
        py: Python<'_>,
        segment: &Bound<'_, PyAny>,
        latency_s: &Bound<'_, PyAny>,
        confidence: &Bound<'_, PyAny>,
        features: Option<&Bound<'_, PyAny>>,
        predicted: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.record_row(
            py,
            segment_name(segment),
            Latency::from_secs_f64(number(latency_s)),
            number(confidence),
            features,
            predicted.and_then(truth),
        )
    }

    /// `record` releasing the GIL around the Rust call, for the benchmark that chose to
    /// keep it (BENCHMARKS.md, "Python hook"); not part of the API.
    #[pyo3(signature = (segment, latency_s, confidence, features=None, predicted=None))]
    fn _record_releasing_gil(
        &self,
        py: Python<'_>,
        segment: &Bound<'_, PyAny>,
        latency_s: &Bound<'_, PyAny>,
        confidence: &Bound<'_, PyAny>,
        features: Option<&Bound<'_, PyAny>>,
        predicted: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let latency = Latency::from_secs_f64(number(latency_s));
        let (confidence, predicted) = (number(confidence), predicted.and_then(truth));
        self.record_in(py, segment_name(segment), latency, confidence, features, predicted, true)
    }

    /// A context manager that times its block and records the prediction on exit; set
    /// `confidence` (and `features`, `predicted`) on it inside the block. An exception in
    /// the block records an error instead, of kind `exception` when `error_kinds` declares
    /// it, else `other`.
    fn timer(slf: Py<Agent>, segment: &Bound<'_, PyAny>) -> Timer {
        let segment = segment_name(segment).to_string();
        Timer { agent: slf, segment, start: None, confidence: None, features: None, predicted: None }
    }

    /// A label for a prediction: its segment, the confidence the model gave, the true label,
    /// and when the prediction was made (epoch seconds or a datetime; default now). The label
    /// counts with the predictions of that time's interval, however late it arrives.
    #[pyo3(signature = (segment, confidence, label, predicted_at=None))]
    fn feedback(
        &self,
        py: Python<'_>,
        segment: &Bound<'_, PyAny>,
        confidence: &Bound<'_, PyAny>,
        label: &Bound<'_, PyAny>,
        predicted_at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let Some(live) = self.recorder(py)? else { return Ok(()) };
        let (segment, confidence) = (segment_name(segment), number(confidence));
        // A label that is no truth value (None, a raising __bool__) is a label of unknown
        // confidence: the agent counts it as invalid feedback.
        let (label, confidence) = match truth(label) {
            Some(l) => (l, confidence),
            None => (false, f64::NAN),
        };
        match predicted_at {
            None => live.handle.feedback(segment, confidence, label),
            Some(t) => match timestamp_of(t) {
                Some(at) => live.handle.feedback_for(at, segment, confidence, label),
                // A time that is no time (NaN, before 1970, not a number): counted by the
                // agent as a label for an unknown prediction time, like Rust's far-past one.
                None => live.handle.feedback_for(Timestamp::from_nanos(0), segment, confidence, label),
            },
        }
        Ok(())
    }

    /// Counts a scoring error of `kind` (a declared error kind; others count as `other`).
    #[pyo3(signature = (segment, kind=None))]
    fn error(
        &self,
        py: Python<'_>,
        segment: &Bound<'_, PyAny>,
        kind: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let Some(live) = self.recorder(py)? else { return Ok(()) };
        let kind = kind.and_then(|k| k.cast::<PyString>().ok()).and_then(|k| k.to_str().ok());
        let k = live.handle.error_kind(kind.unwrap_or(OTHER));
        live.handle.error(segment_name(segment), k);
        Ok(())
    }

    /// Marks the model loaded (the `models_loaded` gauge).
    fn model_loaded(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(live) = self.recorder(py)? {
            live.handle.model_loaded();
        }
        Ok(())
    }

    /// Marks the model unloaded.
    fn model_unloaded(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(live) = self.recorder(py)? {
            live.handle.model_unloaded();
        }
        Ok(())
    }

    /// Records a value of a generic metric with tags (a dict of strings).
    #[pyo3(signature = (name, value, tags=None))]
    fn log_metric(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let Some(live) = self.recorder(py)? else { return Ok(()) };
        let Some(name) = name.cast::<PyString>().ok().and_then(|n| n.to_str().ok()) else {
            self.shape.bad_values.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        // Tags as strings; a tag that cannot be one (not a dict, a raising __str__) is
        // counted in `bad_values` and left out.
        let mut owned: Vec<(String, String)> = Vec::new();
        let text = |x: &Bound<'_, PyAny>| x.str().ok().and_then(|s| s.to_str().ok().map(str::to_owned));
        match tags.map(|t| t.cast::<PyDict>()) {
            None => {}
            Some(Ok(tags)) => {
                let items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> =
                    tags.items().iter().filter_map(|kv| kv.extract().ok()).collect();
                for (k, v) in items {
                    match (text(&k), text(&v)) {
                        (Some(k), Some(v)) => owned.push((k, v)),
                        _ => {
                            self.shape.bad_values.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Some(Err(_)) => {
                self.shape.bad_values.fetch_add(1, Ordering::Relaxed);
            }
        }
        let value = number(value);
        let pairs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        live.handle.log_metric(name, value, &pairs);
        Ok(())
    }

    /// Records a batch of predictions of one segment (or one segment per row): arrays (or
    /// sequences) of latencies in seconds and confidences, an optional 2-D float64 array of
    /// features (one row per prediction) and optional predicted labels. The GIL is released
    /// while the rows are recorded.
    #[pyo3(signature = (segment, latency_s, confidence, features=None, predicted=None))]
    fn record_batch(
        &self,
        py: Python<'_>,
        segment: &Bound<'_, PyAny>,
        latency_s: &Bound<'_, PyAny>,
        confidence: &Bound<'_, PyAny>,
        features: Option<&Bound<'_, PyAny>>,
        predicted: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let Some(live) = self.recorder(py)? else { return Ok(0) };
        crate::convert::record_batch(
            py,
            &self.shape,
            &live.handle,
            segment,
            latency_s,
            confidence,
            features,
            predicted,
        )
    }

    /// Delivers everything recorded so far to the store (durable when this returns) or the
    /// sink; a deployment's agent flushes every agent of the deployment. The GIL is released
    /// meanwhile.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        if let Target::Watched(owner) = &self.target {
            not_in_callback("flush()")?;
            return owner.flush(py);
        }
        not_in_callback("flush()")?;
        let Some(live) = self.live(py)? else { return Ok(()) };
        let l: &Live = &live;
        py.detach(|| lock(&l.agent).as_ref().map_or(Ok(()), |a| a.flush_now()))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Flushes the last partial interval and stops the agent's threads; later calls are
    /// counted in `stats()["after_close"]`, not recorded. Safe to call twice. A
    /// deployment's agent is left to the deployment (its `close` delivers the last
    /// interval), so this does nothing there.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Target::Watched(_) = &self.target {
            return Ok(());
        }
        not_in_callback("close()")?;
        let Some(live) = self.live(py)? else { return Ok(()) };
        let _one = lock_attached(py, &self.rebuild);
        self.closed.store(true, Ordering::SeqCst);
        let l: &Live = &live;
        let agent = py.detach(|| lock(&l.agent).take());
        match agent {
            None => Ok(()),
            Some(agent) => py.detach(|| agent.shutdown()).map_err(|e| PyRuntimeError::new_err(e.to_string())),
        }
    }

    /// The agent's own figures: snapshots made and waiting, shards, memory, calls after close.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("after_close", self.after_close.load(Ordering::Relaxed))?;
        let owner_closed = matches!(&self.target, Target::Watched(o) if o.closed());
        d.set_item("closed", self.closed.load(Ordering::Relaxed) || owner_closed)?;
        let live = self.live(py)?;
        let figures = live.as_ref().and_then(|l| {
            let l: &Live = l;
            py.detach(|| lock(&l.agent).as_ref().map(|a| a.stats()))
        });
        d.set_item("bad_values", self.shape.bad_values.load(Ordering::Relaxed))?;
        d.set_item("unknown_feature_names", self.shape.unknown_names.load(Ordering::Relaxed))?;
        if let Some(s) = figures {
            d.set_item("snapshots", s.snapshots)?;
            d.set_item("pending", s.pending)?;
            d.set_item("dropped_snapshots", s.dropped_snapshots)?;
            d.set_item("shards", s.shards)?;
            d.set_item("memory_budget", s.memory_budget)?;
            d.set_item("memory_reserved", s.memory_reserved)?;
        }
        Ok(d)
    }

    /// The model's name.
    #[getter]
    fn model(&self) -> &str {
        &self.spec.model
    }

    /// The declared features' names, in schema order.
    #[getter]
    fn features(&self) -> Vec<String> {
        self.spec.features.iter().map(|f| f.name.to_string()).collect()
    }

    fn __enter__(slf: Py<Agent>) -> Py<Agent> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let target = match &self.target {
            Target::Store(d) => format!("data={:?}", d.dir.display().to_string()),
            Target::Python(_) => "sink=<callable>".to_string(),
            Target::Watched(_) => format!(
                "version={:?}, variant={:?}, deployment",
                self.spec.version.as_deref().unwrap_or(""),
                self.spec.variant.as_deref().unwrap_or("")
            ),
        };
        format!("Agent({:?}, features={}, {target})", self.spec.model, self.spec.features.len())
    }
}

/// `with agent.timer(segment) as t: ...; t.confidence = ...`
#[pyclass(module = "modelwatch._modelwatch")]
pub struct Timer {
    agent: Py<Agent>,
    segment: String,
    start: Option<Instant>,
    /// The confidence to record (counted as invalid if never set, or not a number).
    #[pyo3(get, set)]
    confidence: Option<Py<PyAny>>,
    /// The features to record, as `record` takes them.
    #[pyo3(get, set)]
    features: Option<Py<PyAny>>,
    /// The predicted label to record (any truth value).
    #[pyo3(get, set)]
    predicted: Option<Py<PyAny>>,
}

#[pymethods]
impl Timer {
    fn __enter__(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        slf.start = Some(Instant::now());
        slf
    }

    #[pyo3(signature = (exc_type, _exc, _tb))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let elapsed = self.start.map(|s| s.elapsed()).unwrap_or_default();
        let agent = self.agent.get();
        if exc_type.is_some() {
            let kind = PyString::new(py, "exception");
            agent.error(py, PyString::new(py, &self.segment).as_any(), Some(kind.as_any()))?;
            return Ok(false);
        }
        let features = self.features.as_ref().map(|f| f.bind(py).clone());
        let confidence = self.confidence.as_ref().map_or(f64::NAN, |c| number(c.bind(py)));
        let predicted = self.predicted.as_ref().and_then(|p| truth(p.bind(py)));
        agent.record_row(
            py,
            &self.segment,
            Latency::from(elapsed),
            confidence,
            features.as_ref(),
            predicted,
        )?;
        Ok(false)
    }

    /// Seconds since the block started.
    #[getter]
    fn elapsed(&self) -> f64 {
        self.start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0)
    }
}

/// A sink that hands each interval to a Python callable as a dict.
struct PySink {
    callable: Py<PyAny>,
}

impl Sink for PySink {
    fn write(&self, snapshot: &Arc<Snapshot>) -> Result<(), SinkError> {
        Python::attach(|py| {
            let d = crate::convert::snapshot_dict(py, snapshot)?;
            in_callback("the agent's sink", || self.callable.call1(py, (d,)))?;
            Ok::<(), PyErr>(())
        })
        .map_err(|e| SinkError {
            sink: "python sink".into(),
            seq: snapshot.seq,
            message: e.to_string(),
        })
    }
}
