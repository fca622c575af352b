//! Feature importance, stored with every version and compared by the gate's bias-shift
//! criterion: permutation importance for any [`Model`], and exact SHAP values in closed form
//! for linear models.
//!
//! SCAFFOLD: the types are the contract between the gate and the implementation; the
//! functions are filled in on this branch before it reaches main.

use super::{LinearModel, Model};
use modelwatch_store::examples::ExampleSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The score permutation importance measures the loss of (higher is better for every one:
/// log loss is taken negated, as scikit-learn's `neg_log_loss`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportanceMetric {
    /// The area under the ROC curve (scikit-learn's `roc_auc`).
    #[default]
    Auc,
    /// The negated mean log loss (scikit-learn's `neg_log_loss`).
    NegLogLoss,
    /// The accuracy at the threshold (scikit-learn's `accuracy` at 0.5).
    Accuracy,
}

/// How permutation importance is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportanceConfig {
    /// Permutations of each feature (scikit-learn's `n_repeats`; default 5).
    pub repeats: usize,
    /// The score whose fall is measured (default AUC).
    pub metric: ImportanceMetric,
    /// The seed of the permutations: the same seed, the same figures.
    pub seed: u64,
    /// The score from which a prediction is positive (for accuracy).
    pub threshold: f64,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        ImportanceConfig { repeats: 5, metric: ImportanceMetric::Auc, seed: 0, threshold: 0.5 }
    }
}

/// One feature's permutation importance: the fall of the score when its column is
/// shuffled, over the repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureScore {
    /// The feature.
    pub feature: String,
    /// The mean fall (scikit-learn's `importances_mean`).
    pub mean: f64,
    /// Its standard deviation over the repeats, ddof 0 (scikit-learn's `importances_std`).
    pub std: f64,
}

/// Permutation importance on one set of rows (all of them, or one segment's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportanceTable {
    /// The rows measured on.
    pub rows: usize,
    /// The score before any permutation; `None` where it is undefined (AUC with one class):
    /// then `features` is empty.
    pub baseline: Option<f64>,
    /// One entry per feature, in the model's order.
    pub features: Vec<FeatureScore>,
}

/// Permutation importance overall and per segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PermutationImportance {
    /// The score measured.
    pub metric: ImportanceMetric,
    /// The permutations per feature.
    pub repeats: usize,
    /// Their seed.
    pub seed: u64,
    /// Over every row.
    pub overall: ImportanceTable,
    /// Per segment (each segment's rows permuted among themselves).
    pub segments: BTreeMap<String, ImportanceTable>,
}

/// Exact SHAP values of a linear model, summarised: the mean absolute contribution of each
/// feature to the decision (log-odds), overall and per segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinearShap {
    /// Feature → mean |contribution| over every row.
    pub overall: BTreeMap<String, f64>,
    /// Segment → feature → mean |contribution| over the segment's rows.
    pub segments: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Everything stored with a version as its `feature_importance`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportanceReport {
    /// Permutation importance (any model).
    pub permutation: PermutationImportance,
    /// Exact SHAP summaries, for linear models only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shap: Option<LinearShap>,
}

/// Permutation importance of `model` on `set`.
pub fn permutation_importance(
    _model: &dyn Model,
    _set: &ExampleSet,
    _config: &ImportanceConfig,
) -> PermutationImportance {
    unimplemented!("scaffold")
}

/// Exact SHAP summaries of a linear model on `set`.
pub fn linear_shap(_model: &LinearModel, _set: &ExampleSet) -> LinearShap {
    unimplemented!("scaffold")
}

/// Both, as stored with a version.
pub fn importance(model: &dyn Model, set: &ExampleSet, config: &ImportanceConfig) -> ImportanceReport {
    ImportanceReport {
        permutation: permutation_importance(model, set, config),
        shap: model.as_linear().map(|m| linear_shap(m, set)),
    }
}

impl ImportanceTable {
    /// Each feature's share of the total importance: its mean fall, floored at zero,
    /// over the sum of them (every share 0 when no feature matters).
    pub fn shares(&self) -> BTreeMap<String, f64> {
        let pos = |m: f64| if m.is_finite() && m > 0.0 { m } else { 0.0 };
        let total: f64 = self.features.iter().map(|f| pos(f.mean)).sum();
        self.features
            .iter()
            .map(|f| (f.feature.clone(), if total > 0.0 { pos(f.mean) / total } else { 0.0 }))
            .collect()
    }
}
