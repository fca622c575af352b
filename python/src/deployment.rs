//! `modelwatch.Deployment`: a Python scorer that follows the registry as a Rust one does with
//! [`ModelWatcher`] (see its docs, and `modelwatch canary-scorer`).
//!
//! The retraining loop promotes versions and starts canaries in the registry; a scorer must
//! load what the loop promoted, send the challenger its sticky share of the keys and tag
//! each record with its arm and version, or the canary judge has nothing to judge. A
//! deployment is that scorer's side, for Python.
//!
//! # How
//!
//! One deployment holds, per process ([`Process`]): one store (one writer slot) that every
//! agent of the deployment writes to, the data directory's registry, a [`ModelWatcher`]
//! whose loader calls the user's Python `loader`, and a Rust thread that refreshes every
//! `refresh` seconds without the GIL. When a refresh published a new serving, its thread
//! takes the GIL, builds the serving's Python [`Variant`]s once (each with a
//! `modelwatch.Agent` over the watcher's agent), swaps them in and calls the `on_promote`
//! callbacks. `variant_for` is then two lock-free loads and the router's hash.
//!
//! # Forks
//!
//! As for `Agent` (see the crate docs): a forked child's first call sees a new fork
//! generation and builds its own store handle, watcher and thread; the parent's are leaked,
//! never dropped (their threads do not exist in the child, and their locks may be held
//! forever). The child keeps the models the parent loaded (the same Python objects, shared
//! copy-on-write, which is why pre-forked servers load before they fork) instead of calling
//! the loader again.

use crate::FORK_GENERATION;
use crate::agent::{
    Agent, Location, Owner, Spec, in_callback, lock, lock_attached, not_in_callback, open_store,
};
use arc_swap::{ArcSwap, ArcSwapOption};
use modelwatch::canary::{AgentFactory, Loader, ModelWatcher, Refresh, Serving, WatcherConfig, variant_tag};
#[allow(clippy::disallowed_types)] // a Python scorer's registry runs on the wall clock
use modelwatch_agent::SystemClock;
use modelwatch_agent::router::Arm;
use modelwatch_agent::{Clock, Handle, NullSink};
use modelwatch_store::registry::{Registry, RegistryConfig, VersionInfo};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the loader made of a version.
type Model = Py<PyAny>;
type Watcher = ModelWatcher<Model>;

/// What a deployment was built from: enough to build it again in a forked child.
struct Config {
    data: Location,
    fraction: f64,
    /// `None`: only `refresh()` refreshes.
    every: Option<Duration>,
    loader: Option<Py<PyAny>>,
    /// The agents' spec, without version and variant.
    agents: Spec,
}

/// The deployment, shared by its Python object, its thread (weakly) and its agents (weakly,
/// to find their handle again after a fork).
struct Shared {
    config: Config,
    process: ArcSwap<Process>,
    /// The `on_promote` callbacks (a Python list: touched with the GIL only).
    callbacks: Py<PyList>,
    /// Callbacks that raised, in every process.
    callback_errors: AtomicU64,
    closed: AtomicBool,
    /// Serialises the rebuild after a fork and `close`.
    rebuild: Mutex<()>,
}

/// The deployment of one process.
struct Process {
    generation: u64,
    /// `None` once closed.
    watcher: ArcSwapOption<Watcher>,
    current: ArcSwap<Current>,
    stop: Arc<Stop>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Where versions' artifacts are fetched; removed at close.
    scratch: Mutex<Option<tempfile::TempDir>>,
    refreshes: AtomicU64,
    refresh_errors: AtomicU64,
    last: ArcSwapOption<Result<Refresh, String>>,
}

/// The serving as Python sees it: its variants built once per serving.
struct Current {
    /// `None` once closed.
    serving: Option<Arc<Serving<Model>>>,
    control: Option<Py<Variant>>,
    challenger: Option<Py<Variant>>,
}

/// Tells the refresh thread to stop, waking it.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn stop(&self) {
        *lock(&self.stopped) = true;
        self.wake.notify_all();
    }

    /// Waits `d`, or less if told to stop: whether it was.
    fn wait(&self, d: Duration) -> bool {
        let g = lock(&self.stopped);
        let (g, _) = self.wake.wait_timeout_while(g, d, |s| !*s).unwrap_or_else(|p| p.into_inner());
        *g
    }
}

/// Every deployment not yet dropped, closed at interpreter exit (`modelwatch/__init__.py`
/// registers [`close_deployments`] with `atexit`), so each agent delivers its last interval
/// and no refresh thread takes the GIL of a finalising interpreter.
static OPEN: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Closes every open deployment; called at exit, not for users.
#[pyfunction]
pub fn close_deployments(py: Python<'_>) {
    let open: Vec<Arc<Shared>> = lock(&OPEN).iter().filter_map(Weak::upgrade).collect();
    for shared in open {
        if let Err(e) = shared.close(py) {
            eprintln!("modelwatch.Deployment {:?} at exit: {e}", shared.config.agents.model());
        }
    }
}

/// `info` as the dict `modelwatch models show --format json` prints.
fn info_dict<'py>(py: Python<'py>, info: &VersionInfo) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(info).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (json,))
}

/// The user's loader on a fetched version, or the artifact directory's path without one.
fn load(py: Python<'_>, loader: Option<&Py<PyAny>>, info: &VersionInfo, dir: &Path) -> PyResult<Model> {
    let path = PyString::new(py, &dir.to_string_lossy());
    match loader {
        None => Ok(path.into_any().unbind()),
        Some(f) => {
            let info = info_dict(py, info)?;
            in_callback("the deployment's loader", || f.call1(py, (info, path)))
        }
    }
}

impl Process {
    /// Opens the store and the registry and makes the watcher; nothing serves until
    /// [`start`](Process::start). `inherited`: models a parent process loaded, by version.
    fn build(py: Python<'_>, config: &Config, mut inherited: HashMap<u32, Model>) -> PyResult<Process> {
        let model = config.agents.model().to_string();
        let store = open_store(py, &config.data)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let registry = Registry::open(RegistryConfig {
            dir: config.data.dir.clone(),
            objects: config.data.objects(),
            clock,
        })
        .map_err(|e| {
            PyRuntimeError::new_err(format!("the registry in {}: {e}", config.data.dir.display()))
        })?;
        let scratch = tempfile::Builder::new()
            .prefix("modelwatch-deployment-")
            .tempdir()
            .map_err(|e| PyRuntimeError::new_err(format!("a scratch directory for artifacts: {e}")))?;
        let spec = config.agents.clone();
        let agents: AgentFactory = Box::new(move |arm, version| {
            spec.of(&version.to_string(), variant_tag(arm)).builder().build(store.clone())
        });
        let user = config.loader.as_ref().map(|l| l.clone_ref(py));
        let loader: Loader<Model> = Box::new(move |info, dir| match inherited.remove(&info.meta.version) {
            Some(m) => Ok(m),
            None => Python::attach(|py| load(py, user.as_ref(), info, dir)).map_err(|e| e.to_string()),
        });
        let watcher_config =
            WatcherConfig { fraction: config.fraction, ..WatcherConfig::new(&model, scratch.path()) };
        let watcher = ModelWatcher::new(registry, watcher_config, agents, loader)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Process {
            generation: FORK_GENERATION.load(Ordering::SeqCst),
            current: ArcSwap::from_pointee(Current {
                serving: Some(watcher.serving()),
                control: None,
                challenger: None,
            }),
            watcher: ArcSwapOption::from_pointee(watcher),
            stop: Arc::new(Stop::default()),
            thread: Mutex::new(None),
            scratch: Mutex::new(Some(scratch)),
            refreshes: AtomicU64::new(0),
            refresh_errors: AtomicU64::new(0),
            last: ArcSwapOption::empty(),
        })
    }

    /// Refreshes once (a refresh that cannot read the registry raises when `strict`, else
    /// is counted), then starts the refresh thread.
    fn start(self: &Arc<Self>, py: Python<'_>, shared: &Arc<Shared>, strict: bool) -> PyResult<()> {
        let first = py.detach(|| self.refresh(shared));
        if let (Err(e), true) = (first, strict) {
            return Err(PyRuntimeError::new_err(e));
        }
        if let Some(every) = shared.config.every {
            let name = format!("mw-deploy-{}", shared.config.agents.model());
            let (process, shared, stop) = (self.clone(), Arc::downgrade(shared), self.stop.clone());
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    while !stop.wait(every) {
                        let Some(shared) = shared.upgrade() else { break };
                        let _ = process.refresh(&shared);
                    }
                })
                .map_err(|e| PyRuntimeError::new_err(format!("the refresh thread: {e}")))?;
            *lock(&self.thread) = Some(thread);
        }
        Ok(())
    }

    /// One refresh, called without the GIL (the loader and the publication take it): the
    /// watcher reads the registry; a new serving is published to Python.
    fn refresh(&self, shared: &Arc<Shared>) -> Result<Refresh, String> {
        let Some(watcher) = self.watcher.load_full() else { return Err("the deployment is closed".into()) };
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let result = watcher.refresh().map_err(|e| e.to_string());
        if result.is_err() {
            self.refresh_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.last.store(Some(Arc::new(result.clone())));
        let serving = watcher.serving();
        if self.current.load().serving.as_ref().map(|s| s.generation()) != Some(serving.generation()) {
            Python::attach(|py| self.publish(py, shared, &watcher));
        }
        result
    }

    /// Swaps in the Python view of the watcher's serving, unless another thread did, and
    /// tells the callbacks.
    fn publish(&self, py: Python<'_>, shared: &Arc<Shared>, watcher: &Watcher) {
        loop {
            let old = self.current.load_full();
            let serving = watcher.serving();
            let Some(generation) = old.serving.as_ref().map(|s| s.generation()) else { return };
            if generation >= serving.generation() {
                return;
            }
            let new = match Current::of(py, shared, serving) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    eprintln!("modelwatch.Deployment: the new serving's variants:");
                    e.display(py);
                    return;
                }
            };
            let prev = self.current.compare_and_swap(&old, new.clone());
            if Arc::ptr_eq(&prev, &old) {
                shared.promoted(py, &new);
                return;
            }
        }
    }

    /// Stops the thread and shuts the watcher down, every agent delivering its last
    /// interval; `variant_for` answers `None` from now on.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop.stop();
        let thread = lock(&self.thread).take();
        // The thread may wait for the GIL (a loader, a callback): join without it.
        py.detach(|| thread.map(JoinHandle::join));
        let watcher = self.watcher.swap(None);
        self.current.store(Arc::new(Current { serving: None, control: None, challenger: None }));
        let Some(mut watcher) = watcher else { return Ok(()) };
        let done = py.detach(|| {
            // A `refresh()` or `flush()` on another Python thread holds it for a moment.
            let watcher = loop {
                match Arc::try_unwrap(watcher) {
                    Ok(w) => break w,
                    Err(w) => {
                        watcher = w;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            };
            watcher.shutdown()
        });
        drop(lock(&self.scratch).take());
        done.map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}

impl Current {
    /// The Python view of `serving`.
    fn of(py: Python<'_>, shared: &Arc<Shared>, serving: Arc<Serving<Model>>) -> PyResult<Current> {
        let variant = |v: &Option<modelwatch::canary::Variant<Model>>| -> PyResult<Option<Py<Variant>>> {
            let Some(v) = v else { return Ok(None) };
            let owner = Watched { shared: Arc::downgrade(shared), arm: v.arm, version: v.version };
            let spec = shared.config.agents.of(&v.version.to_string(), variant_tag(v.arm));
            let agent = Py::new(py, Agent::watched(spec, v.handle.clone(), Box::new(owner)))?;
            let info = serde_json::to_string(&v.info).unwrap_or_default();
            let variant = Variant {
                arm: variant_tag(v.arm),
                version: v.version,
                model: v.model.clone_ref(py),
                agent,
                info,
                _serving: serving.clone(),
            };
            Ok(Some(Py::new(py, variant)?))
        };
        Ok(Current {
            control: variant(&serving.control)?,
            challenger: variant(&serving.challenger)?,
            serving: Some(serving.clone()),
        })
    }

    /// `{control, challenger, generation}`, as `on_promote` callbacks get it.
    fn dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let version = |v: &Option<Py<Variant>>| v.as_ref().map(|v| v.get().version);
        d.set_item("control", version(&self.control))?;
        d.set_item("challenger", version(&self.challenger))?;
        d.set_item("generation", self.serving.as_ref().map(|s| s.generation()))?;
        Ok(d)
    }

    /// The variant serving `key`.
    #[inline]
    fn pick(&self, py: Python<'_>, key: &[u8]) -> Option<Py<Variant>> {
        let v = self.serving.as_ref()?.pick(key)?;
        match v.arm {
            Arm::Control => self.control.as_ref(),
            Arm::Challenger => self.challenger.as_ref(),
        }
        .map(|v| v.clone_ref(py))
    }
}

/// How a deployment's agent finds its handle again after a fork.
struct Watched {
    shared: Weak<Shared>,
    arm: Arm,
    version: u32,
}

impl Owner for Watched {
    fn handle(&self, py: Python<'_>) -> PyResult<Option<Handle>> {
        let Some(shared) = self.shared.upgrade() else { return Ok(None) };
        let Some(process) = shared.process(py)? else { return Ok(None) };
        let current = process.current.load();
        let Some(serving) = current.serving.as_ref() else { return Ok(None) };
        let v = serving.control.iter().chain(&serving.challenger);
        Ok(v.into_iter().find(|v| v.arm == self.arm && v.version == self.version).map(|v| v.handle.clone()))
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        match self.shared.upgrade() {
            Some(shared) => shared.flush(py),
            None => Ok(()),
        }
    }

    fn closed(&self) -> bool {
        self.shared.upgrade().is_none_or(|s| s.closed.load(Ordering::Relaxed))
    }
}

impl Shared {
    /// The deployment of this process, rebuilt first after a fork; `None` once closed.
    #[inline]
    fn process(self: &Arc<Self>, py: Python<'_>) -> PyResult<Option<Arc<Process>>> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let p = self.process.load();
        if p.generation == FORK_GENERATION.load(Ordering::Relaxed) {
            return Ok(Some(arc_swap::Guard::into_inner(p)));
        }
        drop(p);
        self.after_fork(py)?;
        Ok((!self.closed.load(Ordering::SeqCst)).then(|| self.process.load_full()))
    }

    #[cold]
    fn after_fork(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        let _one = lock_attached(py, &self.rebuild);
        let old = self.process.load_full();
        if old.generation == FORK_GENERATION.load(Ordering::SeqCst) || self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut inherited = HashMap::new();
        if let Some(serving) = old.current.load().serving.as_ref() {
            for v in serving.control.iter().chain(&serving.challenger) {
                inherited.insert(v.version, v.model.clone_ref(py));
            }
        }
        let fresh = Arc::new(Process::build(py, &self.config, inherited)?);
        fresh.start(py, self, false)?;
        let parents = self.process.swap(fresh);
        // The parent's store, watcher, thread and variants as the fork copied them: never
        // dropped (see the module docs).
        std::mem::forget(parents);
        Ok(())
    }

    /// Calls every `on_promote` callback with `current`; one that raises is printed and
    /// counted, and the others still run.
    fn promoted(&self, py: Python<'_>, current: &Current) {
        let callbacks: Vec<Bound<'_, PyAny>> = self.callbacks.bind(py).iter().collect();
        if callbacks.is_empty() {
            return;
        }
        let arg = match current.dict(py) {
            Ok(d) => d,
            Err(e) => return e.display(py),
        };
        for f in callbacks {
            let arg = arg.copy().unwrap_or_else(|_| arg.clone());
            if let Err(e) = in_callback("an on_promote callback", || f.call1((arg,))) {
                self.callback_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("modelwatch.Deployment: an on_promote callback raised (the deployment goes on):");
                e.display(py);
            }
        }
    }

    fn flush(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        let Some(process) = self.process(py)? else { return Ok(()) };
        let Some(watcher) = process.watcher.load_full() else { return Ok(()) };
        py.detach(|| watcher.flush_now()).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    fn close(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        // This process's deployment (rebuilt first in a child that never used it, so that
        // what the child closes is its own).
        let Some(process) = self.process(py)? else { return Ok(()) };
        let _one = lock_attached(py, &self.rebuild);
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        process.close(py)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Only this process's thread exists to be told (a parent's copy has no thread).
        let p = self.process.load();
        if p.generation == FORK_GENERATION.load(Ordering::SeqCst) {
            p.stop.stop();
        }
    }
}

/// A scorer that serves the model the registry's aliases name (see the module
/// `modelwatch`'s docs): the control, and a challenger on its sticky share of the keys.
#[pyclass(frozen, module = "modelwatch._modelwatch")]
pub struct Deployment {
    shared: Arc<Shared>,
}

/// One (arm, version) serving: its loaded model and its agent.
#[pyclass(frozen, module = "modelwatch._modelwatch")]
pub struct Variant {
    arm: &'static str,
    version: u32,
    model: Model,
    agent: Py<Agent>,
    info: String,
    /// Held so that the watcher keeps this variant's agent open while a request holds it
    /// (up to its `grace` refreshes).
    _serving: Arc<Serving<Model>>,
}

#[pymethods]
impl Variant {
    /// `"control"` or `"challenger"`.
    #[getter]
    fn arm(&self) -> &'static str {
        self.arm
    }

    /// The version number in the registry.
    #[getter]
    fn version(&self) -> u32 {
        self.version
    }

    /// What the deployment's loader made of the version (by default its artifact's path).
    #[getter]
    fn model(&self, py: Python<'_>) -> Model {
        self.model.clone_ref(py)
    }

    /// The `modelwatch.Agent` to record the requests this variant answers (tagged with its
    /// arm as the variant and its version).
    #[getter]
    fn agent(&self, py: Python<'_>) -> Py<Agent> {
        self.agent.clone_ref(py)
    }

    /// The version's metadata as the registry had it when it started serving (as
    /// `modelwatch models show --format json` prints it).
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.call_method1("loads", (self.info.as_str(),))
    }

    fn __repr__(&self) -> String {
        format!("Variant(arm={:?}, version={})", self.arm, self.version)
    }
}

/// A number of seconds in [0, 86400] (or (0, 86400] unless `zero`), or an error naming it.
fn seconds(name: &str, v: f64, zero: bool, example: &str) -> PyResult<Duration> {
    if v.is_finite() && (v > 0.0 || (zero && v == 0.0)) && v <= 86_400.0 {
        return Ok(Duration::from_secs_f64(v));
    }
    let least = if zero { "at least 0" } else { "more than 0" };
    Err(PyValueError::new_err(format!(
        "{name}={v}: give seconds, {least} and at most 86400 (e.g. {example})"
    )))
}

impl Deployment {
    fn current(&self, py: Python<'_>) -> PyResult<Option<Arc<Current>>> {
        Ok(self.shared.process(py)?.map(|p| p.current.load_full()))
    }
}

#[pymethods]
impl Deployment {
    #[new]
    #[pyo3(signature = (
        model, data=None, *, objects=None, fraction=0.1, segments=None, features=None, error_kinds=None,
        interval=10.0, loader=None, refresh=5.0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: String,
        data: Option<PathBuf>,
        objects: Option<String>,
        fraction: f64,
        segments: Option<Vec<String>>,
        features: Option<&Bound<'_, PyAny>>,
        error_kinds: Option<Vec<String>>,
        interval: f64,
        loader: Option<Py<PyAny>>,
        refresh: f64,
    ) -> PyResult<Deployment> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(PyValueError::new_err(format!(
                "fraction={fraction}: give the challenger's share of the keys, in [0, 1] (e.g. 0.1)"
            )));
        }
        let interval = seconds("interval", interval, false, "10.0")?;
        let every = seconds("refresh", refresh, true, "5.0")?;
        if let Some(l) = &loader
            && !l.bind(py).is_callable()
        {
            return Err(PyTypeError::new_err(
                "loader= must be callable: loader(version_info: dict, path: str) returns the model",
            ));
        }
        let features = match features {
            None => Vec::new(),
            Some(f) => crate::convert::schema(f)?,
        };
        let agents = Spec::new(
            model,
            segments.unwrap_or_default(),
            error_kinds.unwrap_or_default(),
            features,
            interval,
        );
        // The agents' schema, checked now rather than when the first version serves.
        drop(
            agents
                .builder()
                .background_flush(false)
                .build(NullSink)
                .map_err(|e| PyValueError::new_err(format!("agent {:?}: {e}", agents.model())))?,
        );
        let config = Config {
            data: Location::new(data, objects)?,
            fraction,
            every: (!every.is_zero()).then_some(every),
            loader,
            agents,
        };
        let process = Arc::new(Process::build(py, &config, HashMap::new())?);
        let shared = Arc::new(Shared {
            config,
            process: ArcSwap::new(process.clone()),
            callbacks: PyList::empty(py).unbind(),
            callback_errors: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            rebuild: Mutex::new(()),
        });
        if let Err(e) = process.start(py, &shared, true) {
            // Nothing of it may outlive the error: its agents deliver what they have.
            let _ = shared.close(py);
            return Err(e);
        }
        let mut open = lock(&OPEN);
        open.retain(|w| w.strong_count() > 0);
        open.push(Arc::downgrade(&shared));
        Ok(Deployment { shared })
    }

    /// The variant serving `key` (str or bytes): the challenger for the keys the router
    /// sends it (the same key always the same arm, in every process and replica), the
    /// control for the others; `None` while no control serves.
    fn variant_for(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<Variant>>> {
        let Some(current) = self.current(py)? else { return Ok(None) };
        if let Ok(s) = key.cast::<PyString>() {
            return Ok(current.pick(py, s.to_str()?.as_bytes()));
        }
        if let Ok(b) = key.cast::<PyBytes>() {
            return Ok(current.pick(py, b.as_bytes()));
        }
        Err(PyTypeError::new_err(format!("key={}: give a str or bytes", key.repr()?)))
    }

    /// The agent of `variant` (a `Variant`, or `"control"` / `"challenger"` for the one
    /// serving now, `None` if none does).
    fn agent(&self, py: Python<'_>, variant: &Bound<'_, PyAny>) -> PyResult<Option<Py<Agent>>> {
        if let Ok(v) = variant.cast::<Variant>() {
            return Ok(Some(v.get().agent.clone_ref(py)));
        }
        let arm: String = variant.extract().map_err(|_| {
            PyTypeError::new_err("give a Variant (from variant_for) or \"control\" / \"challenger\"")
        })?;
        let Some(current) = self.current(py)? else { return Ok(None) };
        let v = match arm.as_str() {
            "control" => &current.control,
            "challenger" => &current.challenger,
            _ => return Err(PyValueError::new_err(format!("{arm:?}: give \"control\" or \"challenger\""))),
        };
        Ok(v.as_ref().map(|v| v.get().agent.clone_ref(py)))
    }

    /// Calls `callback(serving)` whenever a refresh publishes a new serving, with
    /// `{"control": version|None, "challenger": version|None, "generation": n}`, on the
    /// thread that refreshed. A callback that raises is printed and counted in
    /// `stats()["callback_errors"]`; the deployment goes on. Returns the callback (so it
    /// works as a decorator).
    fn on_promote(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<Py<PyAny>> {
        if !callback.bind(py).is_callable() {
            return Err(PyTypeError::new_err("on_promote takes a callable: callback(serving: dict)"));
        }
        self.shared.callbacks.bind(py).append(callback.clone_ref(py))?;
        Ok(callback)
    }

    /// Reads the registry now (the GIL released), as the refresh thread does every
    /// `refresh` seconds: `{"seq", "control", "challenger", "changed", "failed",
    /// "generation"}`; `failed` names each version that did not fetch, check or load (its
    /// loader's exception included), tried again at the next refresh.
    fn refresh<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        not_in_callback("Deployment.refresh()")?;
        let Some(process) = self.shared.process(py)? else {
            return Err(PyRuntimeError::new_err("the deployment is closed"));
        };
        let shared = self.shared.clone();
        let r = py.detach(|| process.refresh(&shared)).map_err(PyRuntimeError::new_err)?;
        let d = PyDict::new(py);
        d.set_item("seq", r.seq)?;
        d.set_item("control", r.control)?;
        d.set_item("challenger", r.challenger)?;
        d.set_item("changed", r.changed)?;
        d.set_item("failed", r.failed)?;
        let generation = process.current.load().serving.as_ref().map(|s| s.generation());
        d.set_item("generation", generation)?;
        Ok(d)
    }

    /// What serves now: `{"control", "challenger", "generation"}` (as `on_promote` gets it).
    fn serving<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        match self.current(py)? {
            Some(c) => c.dict(py),
            None => Current { serving: None, control: None, challenger: None }.dict(py),
        }
    }

    /// Delivers what every agent of the deployment recorded so far to the store (durable
    /// when this returns). The GIL is released meanwhile.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        not_in_callback("Deployment.flush()")?;
        self.shared.flush(py)
    }

    /// Stops the refresh thread and shuts the watcher down: every agent delivers its last
    /// interval. `variant_for` answers `None` afterwards. Safe to call twice.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        not_in_callback("Deployment.close()")?;
        self.shared.close(py)
    }

    /// The deployment's own figures: refreshes made and failed, the last refresh's
    /// outcome, callbacks that raised.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("closed", self.shared.closed.load(Ordering::Relaxed))?;
        d.set_item("callback_errors", self.shared.callback_errors.load(Ordering::Relaxed))?;
        let process = self.shared.process.load();
        d.set_item("refreshes", process.refreshes.load(Ordering::Relaxed))?;
        d.set_item("refresh_errors", process.refresh_errors.load(Ordering::Relaxed))?;
        match process.last.load().as_deref() {
            Some(Ok(r)) => {
                d.set_item("last_error", None::<String>)?;
                d.set_item("failed", r.failed.clone())?;
            }
            Some(Err(e)) => d.set_item("last_error", e)?,
            None => {}
        }
        Ok(d)
    }

    /// The model's name in the registry.
    #[getter]
    fn model(&self) -> &str {
        self.shared.config.agents.model()
    }

    fn __enter__(slf: Py<Deployment>) -> Py<Deployment> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let c = &self.shared.config;
        format!(
            "Deployment({:?}, data={:?}, fraction={})",
            c.agents.model(),
            c.data.dir.display().to_string(),
            c.fraction
        )
    }
}
