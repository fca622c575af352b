//! The closure trainer: training code written in Rust by the user, with a model type that
//! saves itself as JSON.
//!
//! A closure's model must outlive the process that trained it (the registry loads it later,
//! perhaps elsewhere), so a trait object is not enough: the closure returns a concrete type
//! `M` that is a [`Model`] and serde-serialisable. Training writes it as `model.json`; a
//! process that loads it registers the type under the trainer's name with
//! [`ModelLoader::register_closure`](super::ModelLoader::register_closure), which is how
//! `closure:<name>` finds its deserialiser.

use super::{METADATA_FILE, MODEL_FILE, Model, TrainError, Trained, Trainer, TrainingData};
use std::marker::PhantomData;
use std::path::Path;

/// The error a training closure returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What adds a closure model's own description to its metadata.
type Describe<M> = Box<dyn Fn(&M) -> serde_json::Value + Send + Sync>;

/// The kind of the closure trainer named `name`.
pub(super) fn kind_of(name: &str) -> String {
    format!("closure:{name}")
}

/// A trainer that is a Rust closure returning a serialisable model.
///
/// Its kind is `closure:<name>`; its metadata is the row counts and
/// [`holdout_summary`](super::holdout_summary) of the model on the hold-out set, plus
/// whatever [`with_metadata`](ClosureTrainer::with_metadata) adds.
pub struct ClosureTrainer<M, F> {
    name: String,
    fit: F,
    extra: Option<Describe<M>>,
    model: PhantomData<fn() -> M>,
}

impl<M, F> std::fmt::Debug for ClosureTrainer<M, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosureTrainer").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<M, F> ClosureTrainer<M, F>
where
    M: Model + serde::Serialize + 'static,
    F: Fn(&TrainingData) -> Result<M, BoxError> + Send + Sync,
{
    /// A trainer named `name` (its kind is `closure:<name>`; no `/`, `\` or control
    /// characters, since kinds end up in paths and logs) running `fit`.
    pub fn new(name: &str, fit: F) -> Result<Self, TrainError> {
        if name.is_empty() || name.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            return Err(TrainError::Settings(format!(
                "closure trainer name {name:?} is empty or has a path separator or a control character"
            )));
        }
        Ok(ClosureTrainer { name: name.into(), fit, extra: None, model: PhantomData })
    }

    /// Adds the object `describe` makes of the model to the metadata, under `model`.
    pub fn with_metadata(
        mut self,
        describe: impl Fn(&M) -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.extra = Some(Box::new(describe));
        self
    }
}

impl<M, F> Trainer for ClosureTrainer<M, F>
where
    M: Model + serde::Serialize + 'static,
    F: Fn(&TrainingData) -> Result<M, BoxError> + Send + Sync,
{
    fn kind(&self) -> String {
        kind_of(&self.name)
    }

    fn train(&self, data: &TrainingData, out_dir: &Path) -> Result<Trained, TrainError> {
        data.check()?;
        let kind = self.kind();
        let model =
            (self.fit)(data).map_err(|e| TrainError::Fit { kind: kind.clone(), what: e.to_string() })?;
        if model.features() != data.features() {
            return Err(TrainError::Fit {
                kind,
                what: format!(
                    "the model's features {:?} are not the data's {:?}",
                    model.features(),
                    data.features()
                ),
            });
        }
        super::prepare_out_dir(out_dir)?;
        let mut metadata = serde_json::json!({
            "trainer": kind,
            "train_rows": data.train.len(),
            "train_positives": data.train.rows.iter().filter(|e| e.label).count(),
            "holdout": super::holdout_summary(&model, &data.holdout),
        });
        if let Some(describe) = &self.extra {
            metadata["model"] = describe(&model);
        }
        super::write_json(&out_dir.join(MODEL_FILE), &model)?;
        super::write_json(&out_dir.join(METADATA_FILE), &metadata)?;
        Ok(Trained {
            kind,
            artifact_dir: out_dir.to_path_buf(),
            files: super::list_files(out_dir)?,
            metadata,
            output: Default::default(),
        })
    }
}
