//! The retraining manager (the seed's `MLRetrainingManager`): from a retraining event to a
//! judged challenger, exactly once per event, whatever crashes in between.
//!
//! [`RetrainManager::run`] takes a [`RetrainEvent`] (from the trigger engine, `modelwatch
//! retrain --event ID` or `--force`) through four steps, each recorded in the run's
//! journal (`<data>/retrain/runs/<event>.json`, replaced atomically) before the next:
//!
//! 1. **train**: the examples predicted in `window` before the event, whose labels had
//!    arrived when it fired and whose cohort had matured (`maturity`), split into training
//!    and hold-out sets, train, score and register a candidate version carrying the
//!    event's ID and its feature importance;
//! 2. **judge**: challenger and control scored on the same hold-out set, the
//!    [`gate`](super::gate) applied;
//! 3. **record**: the gate report stored with the version, then the version made the
//!    `challenger` or rejected with the reasons (unless an operator settled it meanwhile:
//!    [`Outcome::Settled`]);
//! 4. **acknowledge**: the trigger event acknowledged with the outcome.
//!
//! A run that finds its journal finished returns it and does nothing; one that finds it
//! cut short resumes at the step it reached. The steps with effects outside the journal
//! check the registry before acting, because a crash can fall between an effect and the
//! journal write that records it: a version registered for the event is found by its
//! event ID; a gate report or outcome already in the audit log with the event's ID is not
//! written again. So each event leads to one version and one outcome, recorded once. The
//! data of a resumed run is the same: the window ends at the event, and labels that
//! arrived after it are left out.
//!
//! A run that cannot train (too few examples, one class, a trainer that fails) ends with
//! the outcome `failed` and is acknowledged too: the next trigger fires a new event. A
//! run stopped by an I/O or registry error is not acknowledged; running it again resumes.
//! One run at a time per data directory (`<data>/retrain/lock`).
//!
//! # Embedded
//!
//! ```
//! use modelwatch::retrain::gate::{FixedLatency, GateConfig};
//! use modelwatch::retrain::{Outcome, RetrainConfig, RetrainManager};
//! use modelwatch::store::examples::{Example, ExampleSet};
//! use modelwatch::store::registry::{Registry, RegistryConfig};
//! use modelwatch::triggers::{TriggerConfig, TriggerEngine};
//! use modelwatch::{ManualClock, Timestamp};
//! use modelwatch_store::{Store, StoreConfig};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let now = 1_764_115_200_000;
//! let clock = Arc::new(ManualClock::new(Timestamp::from_millis(now as u64)));
//! let store = Arc::new(Store::open(StoreConfig::new(dir.path()))?);
//! // Labelled examples, as the agent's `handle.example` or `modelwatch import` writes them.
//! let mut set = ExampleSet::new(vec!["len".into()]);
//! for i in 0..400i64 {
//!     let t = now - 86_400_000 + i * 60_000;
//!     let len = (i % 40) as f64;
//!     set.rows.push(Example { prediction_id: format!("p{i}"), predicted_ms: t, label_ms: t + 1,
//!         segment: "email".into(), features: vec![len], confidence: 0.5, label: len > 15.0 + (i % 7) as f64 });
//! }
//! store.append_examples("pii", set)?;
//!
//! let mut triggers = TriggerEngine::open(TriggerConfig::default(), store.clone(), dir.path(), clock.clone(), vec![])?;
//! let event = triggers.fire("first model", true)?; // or from the triggers, as they fire
//! let registry = Registry::open(RegistryConfig::new(dir.path(), clock.clone()))?;
//! let config = RetrainConfig { model: "pii".into(), ..RetrainConfig::default() };
//! let probe = Box::new(FixedLatency { control: Duration::from_millis(1), challenger: Duration::from_millis(1) });
//! let manager = RetrainManager::new(config, GateConfig::default(), store, registry, dir.path(), clock, probe)?;
//! let run = manager.run(&event, &mut triggers)?; // the engine is told the outcome
//! // No control yet: nothing to compare with, so the first version becomes the challenger.
//! assert_eq!(run.outcome, Some(Outcome::Challenger { version: 1 }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::gate::{self, GateConfig, GateReport, LatencyProbe, Side};
use super::importance::{ImportanceConfig, ImportanceReport, importance};
use super::{
    CommandTrainer, LogisticTrainer, ModelLoader, Registration, RetrainError, TrainError, Trainer,
    TrainingData, load_version, train_and_register,
};
use crate::triggers::{RetrainEvent, TriggerEngine, TriggerError};
use modelwatch_agent::Clock;
use modelwatch_store::examples::{ExampleSet, SplitSpec};
use modelwatch_store::registry::{Action, Alias, MAX_REASON, Op, Registry, RegistryError, Status};
use modelwatch_store::{RealFs, Store, publish};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The `[retrain]` section of the configuration file; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrainConfig {
    /// The model to retrain (its examples in the store, its versions in the registry);
    /// empty: `triggers.model`, else the event's model.
    pub model: String,
    /// How far back before the event the examples go (by prediction time; default 30d).
    pub window: String,
    /// Predictions younger than this at the event are left out (default 0s): where some
    /// labels take longer than others (fraud confirmed weeks later), a young cohort's
    /// labels are the fast ones only, and would bias both training and hold-out.
    pub maturity: String,
    /// The share of examples held out (default 0.2).
    pub holdout: f64,
    /// `time` (the newest examples, default) or `stratified` (the newest of each segment).
    pub split: String,
    /// The seed of the split's ties and of the importance permutations.
    pub seed: u64,
    /// Fewer labelled examples than this: the run fails rather than train (default 200).
    pub min_examples: usize,
    /// `logistic` (in process, default) or `command` (an external program).
    pub trainer: String,
    /// The logistic trainer's `C` (inverse regularisation, default 1).
    pub c: f64,
    /// The command trainer's program and arguments.
    pub command: Vec<String>,
    /// The command trainer's timeout (default 30m).
    pub timeout: String,
    /// The score from which a prediction is positive (default 0.5).
    pub threshold: f64,
    /// Permutation importance, stored with every version and compared by the gate.
    pub importance: ImportanceConfig,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        RetrainConfig {
            model: String::new(),
            window: "30d".into(),
            maturity: "0s".into(),
            holdout: 0.2,
            split: "time".into(),
            seed: 0,
            min_examples: 200,
            trainer: "logistic".into(),
            c: 1.0,
            command: Vec::new(),
            timeout: "30m".into(),
            threshold: 0.5,
            importance: ImportanceConfig::default(),
        }
    }
}

fn duration_ms(value: &str, key: &str) -> Result<i64, String> {
    // A maturity of none is a meaningful setting, which the duration parser refuses.
    if key == "maturity" && value.trim().trim_end_matches(['s', 'm', 'h', 'd']) == "0" {
        return Ok(0);
    }
    crate::time::parse_duration(value).map_err(|e| format!("retrain.{key}: {e}"))
}

impl RetrainConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if duration_ms(&self.window, "window")? <= 0 {
            return Err(format!("retrain.window must be positive; got {:?}", self.window));
        }
        duration_ms(&self.maturity, "maturity")?;
        duration_ms(&self.timeout, "timeout")?;
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            return Err(format!("retrain.holdout must be in (0, 1); got {}", self.holdout));
        }
        if !matches!(self.split.as_str(), "time" | "stratified") {
            return Err(format!("retrain.split must be \"time\" or \"stratified\"; got {:?}", self.split));
        }
        match self.trainer.as_str() {
            "logistic" if !(self.c.is_finite() && self.c > 0.0) => {
                Err(format!("retrain.c must be a positive number; got {}", self.c))
            }
            "logistic" => Ok(()),
            "command" if self.command.is_empty() => {
                Err("retrain.command must name the program when retrain.trainer = \"command\"".into())
            }
            "command" => Ok(()),
            other => Err(format!("retrain.trainer must be \"logistic\" or \"command\"; got {other:?}")),
        }?;
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(format!("retrain.threshold must be in (0, 1); got {}", self.threshold));
        }
        if self.importance.repeats == 0 || self.importance.repeats > 1_000 {
            return Err(format!(
                "retrain.importance.repeats must be 1 to 1000; got {}",
                self.importance.repeats
            ));
        }
        Ok(())
    }

    /// The trainer it names.
    pub fn trainer(&self) -> Result<Box<dyn Trainer>, String> {
        self.validate()?;
        Ok(match self.trainer.as_str() {
            "command" => Box::new(CommandTrainer::new(
                &self.command,
                Duration::from_millis(duration_ms(&self.timeout, "timeout")? as u64),
            )),
            _ => Box::new(LogisticTrainer { c: self.c, ..LogisticTrainer::default() }),
        })
    }
}

/// What became of an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The version passed the gate and is the challenger.
    Challenger {
        /// The version.
        version: u32,
    },
    /// The version failed the gate and was rejected.
    Rejected {
        /// The version.
        version: u32,
        /// Each failed criterion, with what it names.
        reasons: Vec<String>,
    },
    /// The version was settled by hand while the run judged it (promoted, say): the gate
    /// report is stored with it, its verdict not applied, because the gate only moves a
    /// version still waiting for judgement (a candidate or canary).
    Settled {
        /// The version.
        version: u32,
        /// Its status when the run came to record the verdict.
        status: String,
        /// The gate's verdict, for the record.
        passed: bool,
    },
    /// Nothing could be trained; nothing was registered.
    Failed {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Challenger { version } => write!(f, "challenger: version {version} passed the gate"),
            Outcome::Rejected { version, reasons } => {
                write!(f, "rejected: version {version}: {}", reasons.join("; "))
            }
            Outcome::Settled { version, status, passed } => write!(
                f,
                "settled by hand: version {version} became {status} during the run; the gate ({}) was not applied",
                if *passed { "passed" } else { "rejected" }
            ),
            Outcome::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// The step a run reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Begun; nothing registered yet.
    Started,
    /// A version is registered for the event (or training failed: then `outcome` is set).
    Trained,
    /// The gate has judged it.
    Judged,
    /// The outcome is in the registry.
    Recorded,
    /// The event is acknowledged: the run is over.
    Acknowledged,
}

/// A run's journal: what it did so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The event.
    pub event_id: String,
    /// The model.
    pub model: String,
    /// The step reached.
    pub step: Step,
    /// When it began (ms).
    pub started_ms: i64,
    /// The version registered for the event.
    pub version: Option<u32>,
    /// The gate's report.
    pub report: Option<GateReport>,
    /// The outcome.
    pub outcome: Option<Outcome>,
    /// How many times a run of this event was started (more than 1: it resumed).
    pub attempts: u32,
    /// When it ended (ms).
    pub finished_ms: Option<i64>,
}

/// The lock of a data directory's runs, held while it lives.
#[derive(Debug)]
pub struct RunLock(#[allow(dead_code)] std::fs::File);

/// Why a run stopped before its end; running it again resumes.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The event was acknowledged without a run here: someone else took it.
    #[error(
        "event {id} was acknowledged at {} without a retraining run here (by `triggers ack` or another retrainer): nothing to do; `modelwatch retrain --force` fires a new event",
        crate::time::rfc3339(*at_ms)
    )]
    Acknowledged {
        /// The event.
        id: String,
        /// When it was acknowledged (ms).
        at_ms: i64,
    },
    /// Another run holds the lock of this data directory.
    #[error("another retraining run holds {0} (one at a time per data directory); try again when it ends")]
    Busy(PathBuf),
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A journal or lock file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A journal is not valid.
    #[error("{path}: not a retraining journal: {what}")]
    Journal {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] modelwatch_store::StoreError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A version could not be loaded or registered.
    #[error(transparent)]
    Retrain(#[from] RetrainError),
    /// The acknowledgement failed.
    #[error("acknowledging the event: {0}")]
    Ack(String),
}

/// Who is told the outcome: the trigger engine (directly, or through its worker thread).
pub trait Acknowledge {
    /// Acknowledges `event_id` with `outcome`; an event already acknowledged is no error.
    fn acknowledge(&mut self, event_id: &str, outcome: &str) -> Result<(), String>;
}

impl Acknowledge for TriggerEngine {
    fn acknowledge(&mut self, event_id: &str, outcome: &str) -> Result<(), String> {
        match self.ack_with(event_id, Some(outcome)) {
            Ok(()) | Err(TriggerError::AlreadyAcknowledged(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The retraining manager of one store and its registry.
pub struct RetrainManager {
    config: RetrainConfig,
    gate: GateConfig,
    store: Arc<Store>,
    registry: Registry,
    data: PathBuf,
    clock: Arc<dyn Clock>,
    trainer: Box<dyn Trainer>,
    loader: ModelLoader,
    probe: Box<dyn LatencyProbe>,
}

impl RetrainManager {
    /// A manager over `store` (read for examples) and `registry`, keeping its journals in
    /// `<data>/retrain/`, training with the trainer `config` names and timing with `probe`.
    pub fn new(
        config: RetrainConfig,
        gate: GateConfig,
        store: Arc<Store>,
        registry: Registry,
        data: &Path,
        clock: Arc<dyn Clock>,
        probe: Box<dyn LatencyProbe>,
    ) -> Result<RetrainManager, ManagerError> {
        gate.validate().map_err(ManagerError::Config)?;
        let trainer = config.trainer().map_err(ManagerError::Config)?;
        Ok(RetrainManager {
            config,
            gate,
            store,
            registry,
            data: data.to_path_buf(),
            clock,
            trainer,
            loader: ModelLoader::new(),
            probe,
        })
    }

    /// Trains with `trainer` instead of the configured one (a closure trainer, say), loading
    /// its models with `loader`.
    pub fn with_trainer(mut self, trainer: Box<dyn Trainer>, loader: ModelLoader) -> RetrainManager {
        self.trainer = trainer;
        self.loader = loader;
        self
    }

    /// The model an event retrains.
    pub fn model_of(&self, event: &RetrainEvent) -> String {
        if self.config.model.is_empty() { event.model.clone() } else { self.config.model.clone() }
    }

    fn dir(&self) -> PathBuf {
        self.data.join("retrain")
    }

    /// The journal of an event's run: `<event>.json` for the trigger engine's IDs; any
    /// other ID (an embedder's `x/y`, `..`, 10 KB) gets a safe prefix and a hash of the
    /// whole ID, because a safe spelling alone maps `x/y` and `x_y` to one file (the
    /// second run would return the first's journal) and a long one past the file
    /// system's limit on a name.
    pub fn journal_path(&self, event_id: &str) -> PathBuf {
        let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        let name = if !event_id.is_empty()
            && event_id.len() <= 128
            && !event_id.starts_with('.')
            && event_id.chars().all(plain)
        {
            event_id.to_string()
        } else {
            let safe: String = event_id.chars().take(64).map(|c| if plain(c) { c } else { '_' }).collect();
            let digest = ring::digest::digest(&ring::digest::SHA256, event_id.as_bytes());
            let hash: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("_{safe}-{hash}")
        };
        self.dir().join("runs").join(format!("{name}.json"))
    }

    /// When the trigger state says `event_id` was acknowledged, if it was.
    fn acknowledged_at(&self, event_id: &str) -> Option<i64> {
        let state = crate::triggers::read_state(&self.data).ok()?;
        state.history.iter().find(|r| r.event.id == event_id)?.acked_at_ms
    }

    /// The hold-out set of an event's run, kept from training to judging.
    fn holdout_path(&self, event_id: &str) -> PathBuf {
        self.journal_path(event_id).with_extension("holdout.parquet")
    }

    /// The run's hold-out set: as kept at training; or, where the file is gone (it is
    /// written before the registration, so only a file removed by hand, or a version
    /// registered for the event by hand), the store's again, used only if it is the one
    /// the version records (the split's checksum), or the version records none.
    fn holdout(
        &self,
        event: &RetrainEvent,
        model: &str,
        version: u32,
    ) -> Result<Result<ExampleSet, String>, ManagerError> {
        let path = self.holdout_path(&event.id);
        if path.exists() {
            return ExampleSet::read_parquet(&path)
                .map(Ok)
                .map_err(|e| ManagerError::Retrain(TrainError::from(e).into()));
        }
        let (data, split) = match self.data(event, model)? {
            Ok(d) => d,
            Err(reason) => return Ok(Err(reason)),
        };
        let recorded = self.registry.get(model, version)?.meta.training.split["holdout_checksum"].clone();
        // A version registered for the event by other means (by hand, with no split
        // record) has nothing to check against: it is judged on the store's hold-out.
        if recorded.is_null() || recorded == split["holdout_checksum"] {
            return Ok(Ok(data.holdout));
        }
        Ok(Err(format!(
            "the hold-out set of version {version} is gone ({} is missing) and the store's examples no longer give the same one",
            path.display()
        )))
    }

    /// The journal of an event's run, if it has one.
    pub fn journal(&self, event_id: &str) -> Result<Option<RunRecord>, ManagerError> {
        let path = self.journal_path(event_id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ManagerError::Journal { path, what: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ManagerError::Io { path, source }),
        }
    }

    fn save(&self, rec: &RunRecord) -> Result<(), ManagerError> {
        let path = self.journal_path(&rec.event_id);
        let bytes = serde_json::to_vec_pretty(rec).unwrap_or_default();
        publish(&RealFs, &path, &bytes).map_err(|source| ManagerError::Io { path, source })
    }

    fn now(&self) -> i64 {
        self.clock.now().as_millis() as i64
    }

    /// Runs `event` to its end (or resumes it), acknowledging it through `ack`; returns
    /// the journal. A run already over returns its journal unchanged.
    pub fn run(&self, event: &RetrainEvent, ack: &mut dyn Acknowledge) -> Result<RunRecord, ManagerError> {
        let lock = self.lock()?;
        self.run_locked(&lock, event, ack)
    }

    /// Takes the lock of this data directory's runs (one at a time), without waiting: for
    /// a caller that must hold it before it fires the event it will run (`retrain
    /// --force`), so that losing the race leaves no event behind.
    pub fn lock(&self) -> Result<RunLock, ManagerError> {
        let dir = self.dir();
        std::fs::create_dir_all(dir.join("runs"))
            .map_err(|source| ManagerError::Io { path: dir.clone(), source })?;
        let lock_path = dir.join("lock");
        let file = crate::lockfile::try_lock(&lock_path)
            .map_err(|source| ManagerError::Io { path: lock_path.clone(), source })?
            .ok_or(ManagerError::Busy(lock_path))?;
        Ok(RunLock(file))
    }

    /// [`run`](RetrainManager::run) under a lock taken with [`lock`](RetrainManager::lock).
    /// An event acknowledged without a run here (by `triggers ack`, or another retrainer)
    /// is not run: [`ManagerError::Acknowledged`].
    pub fn run_locked(
        &self,
        _lock: &RunLock,
        event: &RetrainEvent,
        ack: &mut dyn Acknowledge,
    ) -> Result<RunRecord, ManagerError> {
        let model = self.model_of(event);
        let mut rec = match self.journal(&event.id)? {
            // Only a name crafted to equal another ID's hashed name gets here.
            Some(r) if r.event_id != event.id => {
                return Err(ManagerError::Journal {
                    path: self.journal_path(&event.id),
                    what: format!("it is the journal of event {:?}", bounded(&r.event_id)),
                });
            }
            Some(r) if r.step == Step::Acknowledged => return Ok(r),
            Some(r) => r,
            None if let Some(at_ms) = self.acknowledged_at(&event.id) => {
                return Err(ManagerError::Acknowledged { id: event.id.clone(), at_ms });
            }
            None => RunRecord {
                event_id: event.id.clone(),
                model: model.clone(),
                step: Step::Started,
                started_ms: self.now(),
                version: None,
                report: None,
                outcome: None,
                attempts: 0,
                finished_ms: None,
            },
        };
        rec.attempts += 1;
        self.save(&rec)?;
        let model = rec.model.clone();

        if rec.step < Step::Trained {
            match self.train(event, &model)? {
                Ok(version) => rec.version = Some(version),
                Err(reason) => rec.outcome = Some(Outcome::Failed { reason }),
            }
            rec.step = Step::Trained;
            self.save(&rec)?;
        }
        if let (Some(version), None) = (rec.version, &rec.outcome) {
            if rec.step < Step::Judged {
                match self.judge(event, &model, version)? {
                    Ok(report) => rec.report = Some(report),
                    Err(reason) => rec.outcome = Some(Outcome::Failed { reason }),
                }
                rec.step = Step::Judged;
                self.save(&rec)?;
            }
            if rec.step < Step::Recorded
                && let Some(report) = &rec.report
            {
                rec.outcome = Some(self.record(event, &model, version, report)?);
                rec.step = Step::Recorded;
                self.save(&rec)?;
            }
        }
        let outcome =
            rec.outcome.as_ref().map(ToString::to_string).unwrap_or_else(|| "failed: no outcome".into());
        ack.acknowledge(&event.id, &bounded(&outcome)).map_err(ManagerError::Ack)?;
        rec.step = Step::Acknowledged;
        rec.finished_ms = Some(self.now());
        self.save(&rec)?;
        // Judged and recorded: the version keeps the split's record; the rows can go.
        let _ = std::fs::remove_file(self.holdout_path(&event.id));
        Ok(rec)
    }

    /// The examples of the run: predicted in the window before the event (less the
    /// maturity), labelled by the time it fired.
    fn data(
        &self,
        event: &RetrainEvent,
        model: &str,
    ) -> Result<Result<(TrainingData, serde_json::Value), String>, ManagerError> {
        let window = duration_ms(&self.config.window, "window").map_err(ManagerError::Config)?;
        let maturity = duration_ms(&self.config.maturity, "maturity").map_err(ManagerError::Config)?;
        let to = event.fired_at_ms.saturating_sub(maturity);
        let mut set = self.store.examples(model, to.saturating_sub(window), to)?;
        set.rows.retain(|e| e.label_ms <= event.fired_at_ms);
        if set.len() < self.config.min_examples {
            return Ok(Err(format!(
                "{} labelled examples of {model} predicted in the {} before {} (less the {} maturity), fewer than retrain.min_examples = {}",
                set.len(),
                self.config.window,
                crate::time::rfc3339(event.fired_at_ms),
                self.config.maturity,
                self.config.min_examples
            )));
        }
        let spec = if self.config.split == "stratified" {
            SplitSpec::stratified(self.config.holdout)
        } else {
            SplitSpec::time(self.config.holdout)
        }
        .seed(self.config.seed);
        let split = match set.split(&spec) {
            Ok(s) => s,
            Err(e) => return Ok(Err(format!("splitting the examples: {e}"))),
        };
        let record = serde_json::to_value(&split.record).unwrap_or_default();
        Ok(TrainingData::new(split.train, split.holdout).map(|d| (d, record)).map_err(|e| e.to_string()))
    }

    /// Step 1: the version registered for the event (found, or trained and registered
    /// now), or why none can be.
    fn train(&self, event: &RetrainEvent, model: &str) -> Result<Result<u32, String>, ManagerError> {
        if let Some(v) = self.version_of(model, &event.id)? {
            return Ok(Ok(v));
        }
        let (data, split) = match self.data(event, model)? {
            Ok(d) => d,
            Err(reason) => return Ok(Err(reason)),
        };
        // The hold-out the version is judged on, kept before anything is registered: a
        // resumed run reads it back rather than reading the store again, which examples
        // written since (a late import of older labelled rows) would change, and which
        // could then overlap the challenger's training set.
        let path = self.holdout_path(&event.id);
        let bytes =
            data.holdout.to_parquet().map_err(|e| ManagerError::Retrain(TrainError::from(e).into()))?;
        publish(&RealFs, &path, &bytes).map_err(|source| ManagerError::Io { path, source })?;
        let mut r = Registration::new(
            model,
            &bounded(&format!("retraining event {}: {}", event.id, event.triggers())),
        );
        r.event_id = Some(event.id.clone());
        r.parent = self.registry.alias(model, Alias::Control).unwrap_or(None);
        r.split = split;
        r.threshold = self.config.threshold;
        r.importance = Some(self.config.importance.clone());
        match train_and_register(&self.registry, &*self.trainer, &self.loader, &data, &r) {
            Ok(v) => Ok(Ok(v.meta.version)),
            Err(RetrainError::Train(e)) => Ok(Err(e.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// The version registered for `event_id`, if any (a crash may have fallen between the
    /// registration and the journal).
    fn version_of(&self, model: &str, event_id: &str) -> Result<Option<u32>, ManagerError> {
        let versions = match self.registry.versions(model) {
            Ok(v) => v,
            Err(RegistryError::UnknownModel { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(versions
            .iter()
            .find(|v| v.meta.training.event_id.as_deref() == Some(event_id))
            .map(|v| v.meta.version))
    }

    /// Step 2: the gate's report on `version` against the control, on the run's hold-out.
    fn judge(
        &self,
        event: &RetrainEvent,
        model: &str,
        version: u32,
    ) -> Result<Result<GateReport, String>, ManagerError> {
        let holdout = match self.holdout(event, model, version)? {
            Ok(h) => h,
            Err(reason) => return Ok(Err(reason)),
        };
        let work =
            tempfile::tempdir().map_err(|source| ManagerError::Io { path: std::env::temp_dir(), source })?;
        // Both loaded before anything is computed. A version whose artifact fails its
        // checksums or its loader fails the same way on every retry: that ends the run (the
        // event acknowledged, saying so) rather than stopping it to be retried forever; a
        // bucket that does not answer stops it, to be resumed.
        let load = |v: u32, dir: &str| match load_version(
            &self.registry,
            &self.loader,
            model,
            v,
            &work.path().join(dir),
        ) {
            Ok((_, m)) => Ok(Ok(m)),
            Err(e @ (RetrainError::Load { .. } | RetrainError::Registry(RegistryError::Tampered { .. }))) => {
                Ok(Err(format!("{dir} version {v} cannot be judged: {e}")))
            }
            Err(e) => Err(ManagerError::from(e)),
        };
        let challenger = match load(version, "challenger")? {
            Ok(m) => m,
            Err(reason) => return Ok(Err(reason)),
        };
        let control_version = self.registry.alias(model, Alias::Control)?.filter(|c| *c != version);
        let control = match control_version {
            Some(c) => match load(c, "control")? {
                Ok(m) => Some(m),
                Err(reason) => return Ok(Err(reason)),
            },
            None => None,
        };
        let mut icfg = self.config.importance.clone();
        icfg.threshold = self.config.threshold;
        // Registration measured the challenger's importance on this same hold-out with these
        // settings; measured again only where it did not (a version registered by hand).
        let stored: Option<ImportanceReport> =
            serde_json::from_value(self.registry.get(model, version)?.meta.training.feature_importance).ok();
        let challenger_importance = match stored {
            Some(r)
                if r.permutation.repeats == icfg.repeats
                    && r.permutation.seed == icfg.seed
                    && r.permutation.metric == icfg.metric
                    && r.permutation.overall.rows == holdout.len() =>
            {
                r
            }
            _ => importance(&*challenger, &holdout, &icfg),
        };
        let control_importance = control.as_ref().map(|m| importance(&**m, &holdout, &icfg));
        let ch = Side { version, model: &*challenger, importance: &challenger_importance };
        let co = match (&control, &control_importance, control_version) {
            (Some(m), Some(imp), Some(v)) => Some(Side { version: v, model: &**m, importance: imp }),
            _ => None,
        };
        let mut gate = self.gate.clone();
        gate.threshold = self.config.threshold;
        let case = gate::Case { model, event_id: Some(&event.id), now_ms: self.now() };
        Ok(Ok(gate::judge(&gate, case, &holdout, &ch, co.as_ref(), &*self.probe)))
    }

    /// Step 3: the report and the outcome into the registry, each unless the audit log
    /// already has it for this event.
    fn record(
        &self,
        event: &RetrainEvent,
        model: &str,
        version: u32,
        report: &GateReport,
    ) -> Result<Outcome, ManagerError> {
        let mine: Vec<_> = self
            .registry
            .log(model)?
            .into_iter()
            .filter(|e| e.event_id.as_deref() == Some(event.id.as_str()) && e.version == Some(version))
            .collect();
        let outcome = if report.passed {
            Outcome::Challenger { version }
        } else {
            Outcome::Rejected { version, reasons: report.reasons() }
        };
        let summary = bounded(&format!("gate for event {}: {outcome}", event.id));
        let action = Action::new("auto", &summary).event(&event.id);
        if !mine.iter().any(|e| e.op == Op::GateReport) {
            let doc = serde_json::to_value(report).unwrap_or_default();
            self.registry.set_gate_report(model, version, doc, &action)?;
        }
        let done = mine.iter().any(|e| matches!(e.op, Op::Challenger | Op::Reject));
        if !done {
            // An operator may have promoted (or retired, or rejected) the version since it
            // was registered: the registry would refuse the gate's move on every rerun, and
            // the event would never be acknowledged. Their decision stands.
            let status = self.registry.get(model, version)?.status;
            // (A version rejected by hand that the gate rejects too is simply rejected.)
            let gate_decides = matches!(status, Status::Candidate | Status::Canary)
                || (status == Status::Rejected && !report.passed);
            if !gate_decides {
                return Ok(Outcome::Settled {
                    version,
                    status: status.as_str().into(),
                    passed: report.passed,
                });
            }
            if report.passed {
                self.registry.set_challenger(model, version, &action)?;
            } else if status != Status::Rejected {
                self.registry.reject(model, version, &action)?;
            }
        }
        Ok(outcome)
    }
}

/// `text` cut to what the registry's reasons and the trigger state take.
fn bounded(text: &str) -> String {
    let max = MAX_REASON / 2;
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

impl From<TrainError> for ManagerError {
    fn from(e: TrainError) -> Self {
        ManagerError::Retrain(e.into())
    }
}
