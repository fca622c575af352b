//! From trainer to registry and back: [`train_and_register`] trains a model, checks that it
//! loads, scores it on the hold-out set and registers it as a candidate version;
//! [`load_version`] fetches a version's checked artifact and loads its model through the
//! kind that made it.
//!
//! Nothing is registered unless every step before it succeeded: a trainer that fails,
//! writes no artifact or writes one its kind cannot load leaves the registry as it was.

use super::importance::ImportanceConfig;
use super::{Model, ModelLoader, TrainError, Trainer, TrainingData, metrics::holdout_metrics};
use modelwatch_store::registry::{Alias, NewVersion, Registry, RegistryError, TrainingWindow, VersionInfo};
use std::path::Path;

/// Why a model could not be trained and registered, or loaded.
#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    /// Training failed or its model does not load; nothing was registered.
    #[error("{0}; nothing was registered")]
    Train(Box<TrainError>),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A working directory could not be made.
    #[error("a working directory for the trainer: {0}")]
    Io(#[from] std::io::Error),
    /// The version's model failed to load.
    #[error("{model} version {version} (trainer kind {kind:?}) does not load: {source}")]
    Load {
        /// The model.
        model: String,
        /// The version.
        version: u32,
        /// Its trainer kind.
        kind: String,
        /// Why.
        source: Box<TrainError>,
    },
}

impl From<TrainError> for RetrainError {
    fn from(e: TrainError) -> Self {
        RetrainError::Train(Box::new(e))
    }
}

/// What the registry records about why and for whom a version is trained.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The model's name in the registry.
    pub model: String,
    /// The version it is trained to replace.
    pub parent: Option<u32>,
    /// The retraining event that caused it.
    pub event_id: Option<String>,
    /// `auto`, `cli` or a user.
    pub actor: String,
    /// Why, for the audit log.
    pub reason: String,
    /// The split record of the training data (`modelwatch_store::examples::Split`'s), or null.
    pub split: serde_json::Value,
    /// The score from which a prediction is positive, for the hold-out precision and recall.
    pub threshold: f64,
    /// How to measure the feature importance stored with the version, on the hold-out set
    /// (`None`: only what the trainer reports).
    pub importance: Option<ImportanceConfig>,
}

impl Registration {
    /// A version of `model` registered by `auto` for `reason`, threshold 0.5.
    pub fn new(model: &str, reason: &str) -> Registration {
        Registration {
            model: model.to_string(),
            parent: None,
            event_id: None,
            actor: "auto".to_string(),
            reason: reason.to_string(),
            split: serde_json::Value::Null,
            threshold: 0.5,
            importance: Some(ImportanceConfig::default()),
        }
    }
}

/// Trains `trainer` on `data`, loads its model through `loader` (so a version that cannot
/// be served is never registered), scores it on the hold-out set overall and per segment,
/// and registers it as a candidate with the trainer's metadata, captured output, the
/// training window (the prediction times of the training examples), the feature importance
/// on the hold-out set and the correlation between the features on the training rows
/// ([`crate::features::correlation`]).
pub fn train_and_register(
    registry: &Registry,
    trainer: &dyn Trainer,
    loader: &ModelLoader,
    data: &TrainingData,
    r: &Registration,
) -> Result<VersionInfo, RetrainError> {
    if data.holdout.is_empty() {
        return Err(TrainError::Data(
            "no hold-out examples: a version is registered with its hold-out figures, and there would be none".into(),
        )
        .into());
    }
    let work = tempfile::tempdir()?;
    let out = work.path().join("model");
    let trained = trainer.train(data, &out)?;
    let model = loader.load(&trained.kind, &trained.artifact_dir)?;
    let metrics = holdout_metrics(&*model, &data.holdout, r.threshold);
    let times = data.train.rows.iter().map(|e| e.predicted_ms);
    let window = match (times.clone().min(), times.max()) {
        (Some(from_ms), Some(last)) => TrainingWindow { from_ms, to_ms: last.saturating_add(1) },
        _ => TrainingWindow::default(),
    };
    let mut new = NewVersion::new(&r.model, &trained.kind, &trained.artifact_dir);
    new.training.training_window = window;
    new.training.rows = data.train.len() as u64;
    new.training.features = data.features().to_vec();
    new.training.metrics = metrics;
    // Ours on the hold-out (permutation, and exact SHAP for linear models), beside what the
    // trainer reported (under `trainer`).
    let reported = trained.metadata.get("feature_importance").cloned();
    let mut importance = match &r.importance {
        Some(c) => {
            let c = ImportanceConfig { threshold: r.threshold, ..c.clone() };
            serde_json::to_value(super::importance::importance(&*model, &data.holdout, &c))
                .unwrap_or_default()
        }
        None => serde_json::json!({}),
    };
    if let (Some(reported), Some(map)) = (reported, importance.as_object_mut()) {
        map.insert("trainer".into(), reported);
    }
    new.training.feature_importance = importance;
    // Between the features on the rows trained on, for the pruning report.
    new.training.correlation =
        serde_json::to_value(crate::features::correlation::correlation(&data.train)).unwrap_or_default();
    new.training.split = r.split.clone();
    new.training.parent = r.parent;
    new.training.event_id = r.event_id.clone();
    new.actor = r.actor.clone();
    new.reason = r.reason.clone();
    let (o, e) = (&trained.output.stdout, &trained.output.stderr);
    new.trainer_output = (!o.is_empty() || !e.is_empty()).then(|| format!("stdout:\n{o}\nstderr:\n{e}"));
    Ok(registry.register(new)?)
}

/// Fetches version `version` of `model` into `dir` (its artifact checked file by file) and
/// loads its model through the kind that made it.
pub fn load_version(
    registry: &Registry,
    loader: &ModelLoader,
    model: &str,
    version: u32,
    dir: &Path,
) -> Result<(VersionInfo, Box<dyn Model>), RetrainError> {
    let info = registry.fetch_artifact(model, version, dir)?;
    let loaded = loader.load(&info.meta.training.trainer_kind, dir).map_err(|source| RetrainError::Load {
        model: model.to_string(),
        version,
        kind: info.meta.training.trainer_kind.clone(),
        source: Box::new(source),
    })?;
    Ok((info, loaded))
}

/// [`load_version`] of the version an alias points at (`control`, `challenger`, `latest`).
pub fn load_alias(
    registry: &Registry,
    loader: &ModelLoader,
    model: &str,
    alias: Alias,
    dir: &Path,
) -> Result<(VersionInfo, Box<dyn Model>), RetrainError> {
    let info = registry.get_alias(model, alias)?;
    load_version(registry, loader, model, info.meta.version, dir)
}
