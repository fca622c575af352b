//! A scorer that follows the registry: [`ModelWatcher`] reads a model's head every
//! [`refresh`](ModelWatcher::refresh), and when the `control` or `challenger` alias moved it
//! fetches and checks the version's artifact, hands it to the scorer's [`Loader`], builds the
//! agent of the new (arm, version) through the scorer's [`AgentFactory`] (so every metric
//! carries its variant and version), publishes one new [`Serving`] and retires the agents
//! it no longer names, each delivering its last interval. Scorer threads pick the variant
//! of each request through their own [`Reader`]: one atomic load and the router's hash.
//!
//! ```
//! use modelwatch::canary::{AgentFactory, ModelWatcher, WatcherConfig, variant_tag};
//! use modelwatch::store::registry::{Action, NewVersion, Registry, RegistryConfig};
//! use modelwatch::{Agent, ManualClock, MemorySink, Prediction, Timestamp};
//! use std::sync::Arc;
//! # let (dir, art) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! # let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)));
//! # let open = || Registry::open(RegistryConfig::new(dir.path(), clock.clone()));
//! # std::fs::write(art.path().join("weights.txt"), "0.87")?;
//! # let v1 = open()?.register(NewVersion::new("pii", "text", art.path()))?;
//! # open()?.promote("pii", v1.meta.version, &Action::new("cli", "first"))?;
//! let sink = MemorySink::new();
//! let (s, c) = (sink.clone(), clock.clone());
//! let agents: AgentFactory = Box::new(move |arm, version| {
//!     let b = Agent::builder("pii").variant(variant_tag(arm)).version(&version.to_string());
//!     b.clock(c.clone()).build(s.clone())
//! });
//! let loader = Box::new(|_: &_, dir: &std::path::Path| {
//!     std::fs::read_to_string(dir.join("weights.txt")).map_err(|e| e.to_string())
//! });
//! let config = WatcherConfig::new("pii", dir.path().join("scratch"));
//! let watcher = ModelWatcher::new(open()?, config, agents, loader)?;
//! watcher.refresh()?; // on a timer thread, every few seconds
//! let mut reader = watcher.reader(); // one per scorer thread
//! let variant = reader.pick(b"doc-42").expect("a control is registered");
//! let confidence: f64 = variant.model.trim().parse()?; // model.score(features)
//! variant.handle.record(&Prediction::new("email", std::time::Duration::from_millis(3), confidence));
//! watcher.shutdown()?;
//! assert_eq!(sink.snapshots().iter().map(|s| s.predictions()).sum::<u64>(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A version that fails to fetch, check or load is reported in [`Refresh::failed`] and
//! tried again at the next refresh; meanwhile a failed control keeps the old control
//! serving, and a failed challenger serves no traffic (all of it goes to the control).

use crate::registry::ModelGauges;
use modelwatch_agent::router::{Arm, decide, salt_of, threshold};
use modelwatch_agent::{Agent, BuildError, Handle, SinkError};
use modelwatch_store::registry::{Registry, RegistryError, VersionInfo, check_model};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The challenger's share of the keys unless the configuration says otherwise.
pub const DEFAULT_FRACTION: f64 = 0.10;

/// How many refreshes a retired agent stays open while a reader may still hold a serving
/// that names it, unless the configuration says otherwise.
pub const DEFAULT_GRACE: u32 = 2;

/// What a watcher follows and how it splits the traffic.
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    /// The model's name in the registry.
    pub model: String,
    /// The challenger's share of the keys, in [0, 1] (default [`DEFAULT_FRACTION`]).
    pub fraction: f64,
    /// Where versions' artifacts are fetched, one directory per version (`v<N>`), removed
    /// once the version no longer serves.
    pub scratch: PathBuf,
    /// A retired agent is shut down at the first refresh no reader holds a serving that
    /// names it, or this many refreshes after it retired, whichever comes first (default
    /// [`DEFAULT_GRACE`]): a reader picks again for each request, so only a request still
    /// in flight that long could record into an agent already shut down.
    pub grace: u32,
}

impl WatcherConfig {
    /// Follows `model`, 10 % to the challenger, artifacts fetched under `scratch`.
    pub fn new(model: &str, scratch: impl Into<PathBuf>) -> WatcherConfig {
        WatcherConfig {
            model: model.to_string(),
            fraction: DEFAULT_FRACTION,
            scratch: scratch.into(),
            grace: DEFAULT_GRACE,
        }
    }
}

/// Builds the agent of one (arm, version); tag it with [`variant_tag`] and the version
/// number, so the judge can tell the arms apart in the store.
pub type AgentFactory = Box<dyn Fn(Arm, u32) -> Result<Agent, BuildError> + Send + Sync>;

/// The scorer's callback: turns a fetched, checked version (its metadata, and the directory
/// holding its artifact's files) into its model, or says why it cannot.
pub type Loader<M> = Box<dyn FnMut(&VersionInfo, &Path) -> Result<M, String> + Send>;

/// The variant tag of an arm's agent: `control` or `challenger`.
pub fn variant_tag(arm: Arm) -> &'static str {
    match arm {
        Arm::Control => "control",
        Arm::Challenger => "challenger",
    }
}

/// Why a watcher could not start, read the registry or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A canary fraction outside [0, 1], or NaN.
    #[error(
        "canary fraction {value} of model {model:?} is not a number in [0, 1]: give the challenger's share, e.g. 0.1"
    )]
    Fraction {
        /// The model.
        model: String,
        /// The fraction given.
        value: f64,
    },
    /// The registry could not be read (the serving stays as it was).
    // The errors are not `source`s: they are in the message already, and a chain printer
    // would say them twice.
    #[error("model {model:?}: {error}")]
    Registry {
        /// The model.
        model: String,
        /// What the registry said.
        error: Box<RegistryError>,
    },
    /// An agent's last interval did not reach its sink at shutdown.
    #[error("the {variant} agent of model {model:?} version {version}: {error}")]
    Shutdown {
        /// The model.
        model: String,
        /// Its variant tag.
        variant: &'static str,
        /// The version.
        version: u32,
        /// What the sink said.
        error: SinkError,
    },
}

/// One (arm, version) serving: its model and the handle of its agent.
pub struct Variant<M> {
    /// Its side of the split.
    pub arm: Arm,
    /// Its version number.
    pub version: u32,
    /// What the [`Loader`] made of it.
    pub model: Arc<M>,
    /// Its agent's handle: record the requests it answers here.
    pub handle: Handle,
    /// Its metadata as read when its agent was built.
    pub info: VersionInfo,
    /// Which agent of the watcher's the handle is.
    agent: u64,
}

impl<M> Clone for Variant<M> {
    fn clone(&self) -> Self {
        Variant {
            arm: self.arm,
            version: self.version,
            model: self.model.clone(),
            handle: self.handle.clone(),
            info: self.info.clone(),
            agent: self.agent,
        }
    }
}

/// What serves, as one value: the readers read it whole, so no request sees the control of
/// one setting and the split of another.
pub struct Serving<M> {
    /// The control: every key not sent to the challenger (`None` before a control is
    /// registered and loaded).
    pub control: Option<Variant<M>>,
    /// The challenger, if the registry names one and it loaded.
    pub challenger: Option<Variant<M>>,
    /// The router's salt: `salt_of("<model>/<challenger version>")`, the same in every
    /// replica, new for each challenger.
    pub salt: u32,
    /// The challenger's share of the keys.
    pub fraction: f64,
    threshold: u32,
    generation: u64,
}

impl<M> Serving<M> {
    fn empty(fraction: f64) -> Serving<M> {
        Serving { control: None, challenger: None, salt: 0, fraction, threshold: 0, generation: 0 }
    }

    /// Counts the servings published before this one (0 for the empty one a watcher starts
    /// with).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The variant that serves `key`: the challenger for the keys the router sends it, the
    /// control for the others; `None` while no control serves.
    #[inline]
    pub fn pick(&self, key: &[u8]) -> Option<&Variant<M>> {
        let control = self.control.as_ref()?;
        match &self.challenger {
            Some(c) if decide(self.salt, self.threshold, key) == Arm::Challenger => Some(c),
            _ => Some(control),
        }
    }

    fn agents(&self) -> impl Iterator<Item = &Variant<M>> {
        self.control.iter().chain(&self.challenger)
    }
}

/// The serving every reader reads.
///
/// Protocol: the watcher replaces `serving` under its mutex, then stores the new serving's
/// generation into `generation` (release). A reader loads `generation` (acquire) on each
/// pick and compares it with the generation of the serving it holds; only when they differ
/// does it take the mutex and clone the `Arc`. So a pick costs one atomic load while the
/// serving stays, and a reader that saw a new generation finds that serving (or a newer one)
/// under the mutex.
struct Published<M> {
    generation: AtomicU64,
    serving: Mutex<Arc<Serving<M>>>,
}

impl<M> Published<M> {
    fn current(&self) -> Arc<Serving<M>> {
        self.serving.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, serving: Arc<Serving<M>>) {
        let generation = serving.generation;
        *self.serving.lock().unwrap_or_else(|p| p.into_inner()) = serving;
        self.generation.store(generation, Ordering::Release);
    }
}

/// One scorer thread's view of the serving (see [`ModelWatcher::reader`]).
pub struct Reader<M> {
    published: Arc<Published<M>>,
    serving: Arc<Serving<M>>,
}

impl<M> Clone for Reader<M> {
    fn clone(&self) -> Self {
        Reader { published: self.published.clone(), serving: self.serving.clone() }
    }
}

impl<M> Reader<M> {
    /// The variant that serves `key`: one atomic load (the generation) and the router's
    /// hash; the lock only when the serving changed since this reader's last pick. `None`
    /// before any control serves (and after the watcher shut down).
    #[inline]
    pub fn pick(&mut self, key: &[u8]) -> Option<&Variant<M>> {
        if self.published.generation.load(Ordering::Acquire) != self.serving.generation {
            self.serving = self.published.current();
        }
        self.serving.pick(key)
    }

    /// The serving of this reader's last pick.
    pub fn serving(&self) -> &Arc<Serving<M>> {
        &self.serving
    }
}

/// What one refresh found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// The head's audit entry count as read (0 when the model is not registered yet).
    pub seq: u64,
    /// The control version serving after it.
    pub control: Option<u32>,
    /// The challenger version serving after it.
    pub challenger: Option<u32>,
    /// Whether it published a new serving.
    pub changed: bool,
    /// What went wrong without stopping it, each naming the arm and version: a version
    /// that did not fetch, check or load (tried again next refresh), an agent that could
    /// not be built, a retired agent whose last interval did not reach its sink.
    pub failed: Vec<String>,
}

/// A retired agent, open until no reader can still record into it.
struct Retiring {
    id: u64,
    arm: Arm,
    version: u32,
    agent: Agent,
}

/// A serving replaced by a newer one that readers may still hold, and the agents it names.
struct Superseded<M> {
    serving: Weak<Serving<M>>,
    agents: Vec<u64>,
    /// The refresh that replaced it.
    at: u64,
}

/// What only [`ModelWatcher::refresh`] touches, one refresh at a time.
struct State<M> {
    loader: Loader<M>,
    /// The agents of the published serving, by id.
    agents: Vec<(u64, Agent)>,
    retiring: Vec<Retiring>,
    superseded: Vec<Superseded<M>>,
    refreshes: u64,
    next_agent: u64,
}

/// Follows one model's aliases in the registry and publishes what serves (see the module
/// documentation). `Send + Sync`: [`refresh`](ModelWatcher::refresh) may run on a timer
/// thread while scorer threads pick through their readers.
pub struct ModelWatcher<M> {
    registry: Registry,
    config: WatcherConfig,
    factory: AgentFactory,
    gauges: Option<Arc<ModelGauges>>,
    published: Arc<Published<M>>,
    state: Mutex<State<M>>,
}

impl<M: Send + Sync + 'static> ModelWatcher<M> {
    /// A watcher of `config.model` in `registry`; nothing serves until the first
    /// [`refresh`](ModelWatcher::refresh). Refuses a fraction outside [0, 1] or NaN, and a
    /// model name the registry would not accept.
    pub fn new(
        registry: Registry,
        config: WatcherConfig,
        agents: AgentFactory,
        loader: Loader<M>,
    ) -> Result<ModelWatcher<M>, WatchError> {
        if !(0.0..=1.0).contains(&config.fraction) {
            return Err(WatchError::Fraction { model: config.model.clone(), value: config.fraction });
        }
        check_model(&config.model)
            .map_err(|error| WatchError::Registry { model: config.model.clone(), error: Box::new(error) })?;
        let published = Arc::new(Published {
            generation: AtomicU64::new(0),
            serving: Mutex::new(Arc::new(Serving::empty(config.fraction))),
        });
        let state = State {
            loader,
            agents: Vec::new(),
            retiring: Vec::new(),
            superseded: Vec::new(),
            refreshes: 0,
            next_agent: 1,
        };
        Ok(ModelWatcher {
            registry,
            config,
            factory: agents,
            gauges: None,
            published,
            state: Mutex::new(state),
        })
    }

    /// Reports the versions that come and go through `gauges` (`models_loaded`,
    /// `model_age_seconds`), refreshed at every refresh.
    pub fn with_gauges(mut self, gauges: Arc<ModelGauges>) -> ModelWatcher<M> {
        self.gauges = Some(gauges);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The serving now.
    pub fn serving(&self) -> Arc<Serving<M>> {
        self.published.current()
    }

    /// A reader for one scorer thread.
    pub fn reader(&self) -> Reader<M> {
        Reader { published: self.published.clone(), serving: self.published.current() }
    }

    /// Reads the model's head once; when the control or the challenger moved, fetches and
    /// checks the new version's artifact, loads it, builds its agent and publishes one new
    /// serving, then shuts down the agents no reader can reach any more (their last
    /// interval delivered). An error only when the head cannot be read: the serving stays.
    pub fn refresh(&self) -> Result<Refresh, WatchError> {
        let mut st = self.lock();
        st.refreshes += 1;
        let model = self.config.model.as_str();
        let (seq, want_control, want_challenger) = match self.registry.state(model) {
            Ok(s) => (s.seq(), s.aliases().control, s.aliases().challenger),
            Err(RegistryError::UnknownModel { .. }) => (0, None, None),
            Err(error) => {
                return Err(WatchError::Registry { model: model.to_string(), error: Box::new(error) });
            }
        };
        let old = self.published.current();
        let mut failed = Vec::new();
        let control = match self.variant(&mut st, &old, Arm::Control, want_control, &mut failed) {
            Some(v) => v,
            None => old.control.clone(),
        };
        let challenger = self.variant(&mut st, &old, Arm::Challenger, want_challenger, &mut failed).flatten();
        let ids = |s: (&Option<Variant<M>>, &Option<Variant<M>>)| {
            (s.0.as_ref().map(|v| v.agent), s.1.as_ref().map(|v| v.agent))
        };
        let changed = ids((&control, &challenger)) != ids((&old.control, &old.challenger));
        if changed {
            let name = format!("{model}/{}", challenger.as_ref().map_or(0, |c| c.version));
            let serving = Serving {
                control,
                challenger,
                salt: salt_of(&name),
                fraction: self.config.fraction,
                threshold: threshold(self.config.fraction),
                generation: old.generation + 1,
            };
            let serving = Arc::new(serving);
            self.published.publish(serving.clone());
            self.gauge_versions(&old, &serving);
            let keep: Vec<u64> = serving.agents().map(|v| v.agent).collect();
            let (stay, gone): (Vec<_>, Vec<_>) = st.agents.drain(..).partition(|(id, _)| keep.contains(id));
            st.agents = stay;
            for (id, agent) in gone {
                let v =
                    old.agents().find(|v| v.agent == id).map_or((Arm::Control, 0), |v| (v.arm, v.version));
                st.retiring.push(Retiring { id, arm: v.0, version: v.1, agent });
            }
            let at = st.refreshes;
            st.superseded.push(Superseded {
                serving: Arc::downgrade(&old),
                agents: old.agents().map(|v| v.agent).collect(),
                at,
            });
        }
        drop(old);
        self.retire(&mut st, &mut failed);
        if let Some(g) = &self.gauges {
            g.refresh();
        }
        let now = self.published.current();
        Ok(Refresh {
            seq,
            control: now.control.as_ref().map(|v| v.version),
            challenger: now.challenger.as_ref().map(|v| v.version),
            changed,
            failed,
        })
    }

    /// The variant `want` names for `arm`: `Some(None)` when none is wanted, `Some(v)` when
    /// it serves already or was built now, `None` when it failed (reported in `failed`).
    fn variant(
        &self,
        st: &mut State<M>,
        old: &Serving<M>,
        arm: Arm,
        want: Option<u32>,
        failed: &mut Vec<String>,
    ) -> Option<Option<Variant<M>>> {
        let Some(version) = want else { return Some(None) };
        if let Some(v) = old.agents().find(|v| v.arm == arm && v.version == version) {
            return Some(Some(v.clone()));
        }
        let model = self.config.model.as_str();
        let what = format!("{} version {version}", variant_tag(arm));
        // A challenger promoted to control keeps its model; it gets a new agent (its variant
        // tag changes) and fresh metadata (its status and aliases changed).
        let loaded = match old.agents().find(|v| v.version == version) {
            Some(v) => self
                .registry
                .get(model, version)
                .map(|info| (v.model.clone(), info))
                .map_err(|e| e.to_string()),
            None => self.load(st, version),
        };
        let (m, info) = match loaded {
            Ok(l) => l,
            Err(e) => {
                failed.push(format!("{what}: {e}"));
                return None;
            }
        };
        let agent = match (self.factory)(arm, version) {
            Ok(a) => a,
            Err(e) => {
                failed.push(format!("{what}: its agent: {e}"));
                return None;
            }
        };
        let id = st.next_agent;
        st.next_agent += 1;
        let handle = agent.handle();
        st.agents.push((id, agent));
        Some(Some(Variant { arm, version, model: m, handle, info, agent: id }))
    }

    /// Fetches `version`'s artifact into the scratch directory (every file checked against
    /// its registered checksum) and loads it.
    fn load(&self, st: &mut State<M>, version: u32) -> Result<(Arc<M>, VersionInfo), String> {
        let dir = self.scratch(version);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let info =
            self.registry.fetch_artifact(&self.config.model, version, &dir).map_err(|e| e.to_string())?;
        let m = (st.loader)(&info, &dir).map_err(|e| format!("does not load: {e}"))?;
        Ok((Arc::new(m), info))
    }

    fn scratch(&self, version: u32) -> PathBuf {
        self.config.scratch.join(format!("v{version}"))
    }

    /// Reports the versions that started or stopped serving, and removes the artifacts of
    /// the ones that stopped.
    fn gauge_versions(&self, old: &Serving<M>, new: &Serving<M>) {
        for v in new.agents() {
            if !old.agents().any(|o| o.version == v.version)
                && let Some(g) = &self.gauges
            {
                g.loaded(&v.info);
            }
        }
        for v in old.agents() {
            if !new.agents().any(|n| n.version == v.version) {
                if let Some(g) = &self.gauges {
                    g.unloaded(&self.config.model, v.version);
                }
                let _ = std::fs::remove_dir_all(self.scratch(v.version));
            }
        }
    }

    /// Shuts down the retired agents that no serving a reader may hold names any more.
    fn retire(&self, st: &mut State<M>, failed: &mut Vec<String>) {
        let (now, grace) = (st.refreshes, u64::from(self.config.grace));
        st.superseded.retain(|s| s.serving.strong_count() > 0 && now - s.at < grace);
        let held: Vec<u64> = st.superseded.iter().flat_map(|s| s.agents.iter().copied()).collect();
        let (keep, done): (Vec<_>, Vec<_>) = st.retiring.drain(..).partition(|r| held.contains(&r.id));
        st.retiring = keep;
        for r in done {
            if let Err(e) = self.stop(r.arm, r.version, r.agent) {
                failed.push(e.to_string());
            }
        }
    }

    fn stop(&self, arm: Arm, version: u32, agent: Agent) -> Result<(), WatchError> {
        agent.shutdown().map_err(|error| WatchError::Shutdown {
            model: self.config.model.clone(),
            variant: variant_tag(arm),
            version,
            error,
        })
    }

    /// Flushes every agent the watcher holds, serving or retiring, whose interval has ended
    /// ([`Agent::flush_due`]): for agents built without a background flusher, such as a
    /// simulation's on a manual clock.
    pub fn flush_due(&self) -> Result<(), SinkError> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (_, agent) in &st.agents {
            agent.flush_due()?;
        }
        for r in &st.retiring {
            r.agent.flush_due()?;
        }
        Ok(())
    }

    /// Delivers what every agent the watcher holds, serving or retiring, recorded so far, as
    /// a partial interval ending now ([`Agent::flush_now`]): the first error, if any, after
    /// trying them all. For a scorer that wants its records durable before it goes on.
    pub fn flush_now(&self) -> Result<(), SinkError> {
        let st = self.lock();
        let mut first = Ok(());
        for agent in st.agents.iter().map(|(_, a)| a).chain(st.retiring.iter().map(|r| &r.agent)) {
            if let (Err(e), true) = (agent.flush_now(), first.is_ok()) {
                first = Err(e);
            }
        }
        first
    }

    /// Publishes an empty serving (readers pick `None` from now on) and shuts down every
    /// agent, each delivering its last interval: the first that could not, if any.
    pub fn shutdown(self) -> Result<(), WatchError> {
        let old = self.published.current();
        self.published.publish(Arc::new(Serving {
            generation: old.generation + 1,
            ..Serving::empty(self.config.fraction)
        }));
        let mut st = self.lock();
        let mut first = Ok(());
        let live: Vec<(u64, Agent)> = st.agents.drain(..).collect();
        for (id, agent) in live {
            let (arm, version) =
                old.agents().find(|v| v.agent == id).map_or((Arm::Control, 0), |v| (v.arm, v.version));
            if let (Err(e), true) = (self.stop(arm, version, agent), first.is_ok()) {
                first = Err(e);
            }
        }
        let retiring: Vec<Retiring> = st.retiring.drain(..).collect();
        for r in retiring {
            if let (Err(e), true) = (self.stop(r.arm, r.version, r.agent), first.is_ok()) {
                first = Err(e);
            }
        }
        if let Some(g) = &self.gauges {
            for v in old.agents() {
                g.unloaded(&self.config.model, v.version);
            }
        }
        first
    }
}

#[cfg(test)]
mod tests;
