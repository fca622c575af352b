//! Trainers and models: what turns labelled examples into a model that scores (the seed's
//! `MLConfidenceScorer.train_model()`).
//!
//! A [`Trainer`] takes [`TrainingData`] — a training and a hold-out
//! [`ExampleSet`], the labelled examples the store
//! keeps (`modelwatch_store::examples`, fed by the agent's examples and by `modelwatch
//! import` with `label` and `label_time`) — and writes a model into an empty output
//! directory. It answers a [`Trained`]: the trainer's kind, the directory and its files, and
//! the metadata the trainer reports. That is what the model registry (`store/src/registry/`)
//! registers as a version; the registry later loads a version's model through the kind that
//! made it, with a [`ModelLoader`] (or [`load_model`] for the built-in kinds).
//!
//! Three trainers:
//!
//! | kind | trainer | model |
//! |---|---|---|
//! | `logistic` | [`LogisticTrainer`]: L2 logistic regression in process (linfa), scikit-learn's objective | [`LinearModel`] |
//! | `command` | [`CommandTrainer`]: a user's program (a Python script, say) given the data as Parquet files | [`LinearModel`] from its `model.json` |
//! | `closure:<name>` | [`ClosureTrainer`]: a Rust closure returning a serialisable [`Model`] | the closure's type, loaded through [`ModelLoader::register_closure`] |
//!
//! [`train_and_register`] trains, checks that the model loads, scores it on the hold-out
//! set overall and per segment ([`holdout_metrics`]) and registers it as a candidate version
//! in the store's registry (`modelwatch_store::registry`); [`load_version`] and
//! [`load_alias`] load a version back.
//!
//! Every trainer leaves the same two files in the directory: `model.json` (what the kind's
//! loader reads) and `metadata.json` (a JSON object: coefficients, hold-out figures,
//! anything the trainer reports). The contract and the reasons are in
//! `docs/decisions/0008-trainer-interface.md`.

mod closure;
mod command;
pub mod gate;
pub mod importance;
mod linear;
mod logistic;
mod manager;
mod metrics;
mod versions;
mod worker;

pub use closure::{BoxError, ClosureTrainer};
pub use command::CommandTrainer;
pub use linear::LinearModel;
pub use logistic::LogisticTrainer;
pub use manager::{
    Acknowledge, ManagerError, Outcome, RetrainConfig, RetrainManager, RunLock, RunRecord, Step,
};
pub use metrics::{auc, figures, holdout_metrics};
pub use versions::{Registration, RetrainError, load_alias, load_version, train_and_register};
pub use worker::RetrainWorker;

use modelwatch_store::examples::{ExampleSet, ExamplesError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The file every trainer writes its model into, inside the output directory.
pub const MODEL_FILE: &str = "model.json";
/// The file every trainer writes its metadata into (a JSON object), inside the output
/// directory.
pub const METADATA_FILE: &str = "metadata.json";

/// A trained model: scores one feature vector.
///
/// Scoring is on the hot path of a scorer, so it never panics and never blocks, whatever
/// the input: each model documents what it makes of a missing (NaN) or infinite value and
/// of a vector of the wrong length.
pub trait Model: Send + Sync {
    /// The feature names, in the order [`score`](Model::score) takes the values.
    fn features(&self) -> &[String];

    /// The probability of the positive class for these feature values (one per name of
    /// [`features`](Model::features), in that order).
    fn score(&self, features: &[f64]) -> f64;

    /// The model as a [`LinearModel`], where it is one: feature importance then also has
    /// exact SHAP values in closed form ([`importance::linear_shap`]).
    fn as_linear(&self) -> Option<&LinearModel> {
        None
    }
}

/// What a trainer learns from: labelled examples for fitting and a hold-out set for the
/// trainer's own figures, with the same feature names in the same order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingData {
    /// The examples to fit on.
    pub train: ExampleSet,
    /// The examples kept out of the fit (the newest slice, by default), for hold-out figures.
    pub holdout: ExampleSet,
}

impl TrainingData {
    /// Training and hold-out sets, checked: the same feature names in the same order, and
    /// every example as wide as the names.
    pub fn new(train: ExampleSet, holdout: ExampleSet) -> Result<TrainingData, TrainError> {
        let data = TrainingData { train, holdout };
        data.check()?;
        Ok(data)
    }

    /// The feature names.
    pub fn features(&self) -> &[String] {
        &self.train.features
    }

    /// Checks what [`new`](TrainingData::new) checks, and that there is something to train
    /// on (the fields are public, so every trainer checks again).
    pub fn check(&self) -> Result<(), TrainError> {
        self.train.validate()?;
        self.holdout.validate()?;
        if self.train.features != self.holdout.features {
            return Err(TrainError::Data(format!(
                "the training set's features {:?} differ from the hold-out set's {:?}",
                self.train.features, self.holdout.features
            )));
        }
        if self.train.is_empty() {
            return Err(TrainError::Data("no training examples".into()));
        }
        Ok(())
    }
}

/// What a trainer answers: everything the registry records about the version it made.
///
/// A plain struct: the registry stores it as it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Trained {
    /// The trainer kind that made the model (`logistic`, `command`, `closure:<name>`); the
    /// model is loaded back through the loader of this kind.
    pub kind: String,
    /// The directory the trainer wrote into (the `out_dir` it was given).
    pub artifact_dir: PathBuf,
    /// The files in it, relative to it, `/`-separated and sorted; always includes
    /// [`MODEL_FILE`] and [`METADATA_FILE`].
    pub files: Vec<String>,
    /// The metadata the trainer reported (the contents of [`METADATA_FILE`]), a JSON object.
    pub metadata: serde_json::Value,
    /// What an external command printed, for the audit log: the last
    /// [`CommandTrainer::OUTPUT_LIMIT`] bytes of stdout and of stderr; empty for in-process
    /// trainers.
    pub output: CommandOutput,
}

/// The end of what an external command printed, each stream bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// The last bytes of its standard output (lossily UTF-8).
    pub stdout: String,
    /// The last bytes of its standard error (lossily UTF-8).
    pub stderr: String,
}

/// Why training or loading failed. Each message names what was wrong: the file, the
/// command and how it ended, or the data.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The training data cannot be trained on (empty, one class, mismatched features).
    #[error("training data: {0}")]
    Data(String),
    /// The trainer's settings are invalid.
    #[error("trainer settings: {0}")]
    Settings(String),
    /// The examples are malformed or their file cannot be written or read.
    #[error(transparent)]
    Examples(#[from] ExamplesError),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output directory already has files in it: a trainer that wrote nothing would be
    /// taken for one that wrote them.
    #[error("{0}: the output directory is not empty")]
    OutDirNotEmpty(PathBuf),
    /// The external command could not be started.
    #[error("cannot run the training command {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The external command exited unsuccessfully.
    #[error("the training command {program:?} {status}{}", stderr_end(&output.stderr))]
    Exit {
        /// The program.
        program: String,
        /// How it ended (`exited with status 3`, `was killed by signal 9`).
        status: String,
        /// What it printed.
        output: CommandOutput,
    },
    /// The external command ran past its timeout; its process group was killed.
    #[error(
        "the training command {program:?} ran past its {timeout:?} timeout and was killed with its process group{}",
        stderr_end(&output.stderr)
    )]
    Timeout {
        /// The program.
        program: String,
        /// The timeout.
        timeout: Duration,
        /// What it printed before it was killed.
        output: CommandOutput,
    },
    /// The trainer did not write a file the contract requires.
    #[error("{path}: missing: the trainer wrote no {what}")]
    MissingArtifact {
        /// The file that should be there.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// A file the trainer wrote is not what the contract says.
    #[error("{path}: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The in-process fit failed.
    #[error("fitting {kind}: {what}")]
    Fit {
        /// The trainer kind.
        kind: String,
        /// Why.
        what: String,
    },
    /// No loader knows this trainer kind.
    #[error("no model loader for the trainer kind {0:?} (known: {1})")]
    UnknownKind(String, String),
}

/// The end of a command's stderr for an error message: enough lines to see why it failed,
/// not the whole log (that is in the error's `output`).
fn stderr_end(stderr: &str) -> String {
    const SHOWN: usize = 2048;
    let t = stderr.trim_end();
    if t.is_empty() {
        return "; it printed nothing on stderr".into();
    }
    let mut start = t.len().saturating_sub(SHOWN);
    while !t.is_char_boundary(start) {
        start += 1;
    }
    format!("; its stderr ends with:\n{}", &t[start..])
}

/// Turns training data into a model in a directory.
pub trait Trainer: Send + Sync {
    /// The kind recorded with what it trains ([`Trained::kind`]), naming the loader of its
    /// models.
    fn kind(&self) -> String;

    /// Trains on `data` and writes the model into `out_dir`, which must be empty or absent
    /// (it is created). Writes at least [`MODEL_FILE`] and [`METADATA_FILE`].
    fn train(&self, data: &TrainingData, out_dir: &Path) -> Result<Trained, TrainError>;
}

/// Loads one kind's model from its artifact directory.
pub type LoadFn = dyn Fn(&Path) -> Result<Box<dyn Model>, TrainError> + Send + Sync;

/// Loaders of models by trainer kind: the registry loads a version through the kind that
/// made it.
///
/// [`ModelLoader::new`] knows the built-in kinds, `logistic` and `command` (both a
/// [`LinearModel`] in `model.json`); a closure trainer's kind is added with
/// [`register_closure`](ModelLoader::register_closure), any other with
/// [`register`](ModelLoader::register).
#[derive(Clone)]
pub struct ModelLoader {
    kinds: HashMap<String, Arc<LoadFn>>,
}

impl Default for ModelLoader {
    fn default() -> Self {
        ModelLoader::new()
    }
}

impl std::fmt::Debug for ModelLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelLoader").field("kinds", &self.known()).finish()
    }
}

impl ModelLoader {
    /// A loader of the built-in kinds, `logistic` and `command`.
    pub fn new() -> ModelLoader {
        let mut loader = ModelLoader { kinds: HashMap::new() };
        for kind in [LogisticTrainer::KIND, CommandTrainer::KIND] {
            loader.register(kind, |dir| Ok(Box::new(LinearModel::load(&dir.join(MODEL_FILE))?)));
        }
        loader
    }

    /// Adds (or replaces) the loader of a kind.
    pub fn register(
        &mut self,
        kind: impl Into<String>,
        load: impl Fn(&Path) -> Result<Box<dyn Model>, TrainError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.kinds.insert(kind.into(), Arc::new(load));
        self
    }

    /// Adds the loader of [`ClosureTrainer`] `name`'s models: `model.json` deserialised as
    /// `M`, the type its closure returns.
    pub fn register_closure<M>(&mut self, name: &str) -> &mut Self
    where
        M: Model + serde::de::DeserializeOwned + 'static,
    {
        self.register(closure::kind_of(name), |dir| {
            Ok(Box::new(read_json::<M>(&dir.join(MODEL_FILE), "model")?))
        })
    }

    /// The kinds it knows, sorted and comma-separated (for messages).
    pub fn known(&self) -> String {
        let mut kinds: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds.join(", ")
    }

    /// Loads the model a trainer of `kind` wrote into `artifact_dir`.
    pub fn load(&self, kind: &str, artifact_dir: &Path) -> Result<Box<dyn Model>, TrainError> {
        let load = self.kinds.get(kind).ok_or_else(|| TrainError::UnknownKind(kind.into(), self.known()))?;
        load(artifact_dir)
    }
}

/// Loads the model a trainer of a built-in `kind` (`logistic`, `command`) wrote into
/// `artifact_dir`; closure kinds need a [`ModelLoader`] they are registered with.
pub fn load_model(kind: &str, artifact_dir: &Path) -> Result<Box<dyn Model>, TrainError> {
    ModelLoader::new().load(kind, artifact_dir)
}

/// Where each of a model's features is among a set's columns, by name (`None` for a
/// feature the set lacks), or `None` when the set's columns are the model's, in order. A
/// model is scored on its own features whatever the set holds: the hold-out's columns are
/// the union of the window's features, and a control was trained on the features of its day.
pub(crate) fn columns_by_name(model: &[String], set: &ExampleSet) -> Option<Vec<Option<usize>>> {
    (set.features.as_slice() != model)
        .then(|| model.iter().map(|f| set.features.iter().position(|g| g == f)).collect())
}

/// Creates `out_dir` if absent and refuses one with anything in it.
fn prepare_out_dir(out_dir: &Path) -> Result<(), TrainError> {
    let io = |source| TrainError::Io { path: out_dir.to_path_buf(), source };
    std::fs::create_dir_all(out_dir).map_err(io)?;
    if std::fs::read_dir(out_dir).map_err(io)?.next().is_some() {
        return Err(TrainError::OutDirNotEmpty(out_dir.to_path_buf()));
    }
    Ok(())
}

/// Writes `value` as pretty JSON into `path`.
fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), TrainError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| TrainError::Malformed {
        path: path.to_path_buf(),
        what: format!("cannot encode: {e}"),
    })?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })
}

/// Reads `path` as JSON of type `T`; `what` names the file's role in the errors.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, TrainError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TrainError::MissingArtifact { path: path.to_path_buf(), what });
        }
        Err(source) => return Err(TrainError::Io { path: path.to_path_buf(), source }),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        // Python's json.dump writes NaN and Infinity, which JSON does not have.
        let text = String::from_utf8_lossy(&bytes);
        let hint = if text.contains("NaN") || text.contains("Infinity") {
            " (it has NaN or Infinity, which JSON does not allow: a fit that did not converge? \
             Python's json.dump(..., allow_nan=False) refuses to write them)"
        } else {
            ""
        };
        TrainError::Malformed {
            path: path.to_path_buf(),
            what: format!("not a valid {what} JSON: {e}{hint}"),
        }
    })
}

/// Reads a metadata file: a JSON object.
fn read_metadata(path: &Path) -> Result<serde_json::Value, TrainError> {
    let value: serde_json::Value = read_json(path, "metadata")?;
    if !value.is_object() {
        return Err(TrainError::Malformed {
            path: path.to_path_buf(),
            what: "the metadata must be a JSON object".into(),
        });
    }
    Ok(value)
}

/// The files under `dir`, relative, `/`-separated, sorted.
fn list_files(dir: &Path) -> Result<Vec<String>, TrainError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), TrainError> {
        let io = |source| TrainError::Io { path: dir.to_path_buf(), source };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            if entry.file_type().map_err(io)?.is_dir() {
                walk(root, &path, out)?;
            } else if let Ok(rel) = path.strip_prefix(root) {
                let parts: Vec<String> =
                    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// A model's figures on a labelled set, for a trainer's metadata: rows, positives, mean
/// log loss (clipped as [`figures`] clips it), accuracy at 0.5 and the Brier score (`rows`
/// alone for an empty set). One scoring pass; the log loss is [`figures`]' own.
pub fn holdout_summary(model: &dyn Model, set: &ExampleSet) -> serde_json::Value {
    if set.is_empty() {
        return serde_json::json!({ "rows": 0 });
    }
    let scored: Vec<(f64, bool)> = set.rows.iter().map(|e| (model.score(&e.features), e.label)).collect();
    let n = scored.len() as f64;
    let correct = scored.iter().filter(|(p, y)| (*p >= 0.5) == *y).count();
    let brier = scored.iter().map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2)).sum::<f64>() / n;
    let f = figures(&scored, 0.5);
    serde_json::json!({
        "rows": set.len(),
        "positives": f["positives"] as u64,
        "log_loss": f["log_loss"],
        "accuracy": correct as f64 / n,
        "brier": brier,
    })
}
