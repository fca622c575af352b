//! The quarterly review's document (`modelwatch features report`): for one model and a
//! period, the importance of each feature per version as a trend, the correlation matrix
//! of the report's version, the pruning candidates (and the kept), and the drift of each
//! feature over the period. Its JSON (the serialised [`FeaturesReport`], keys in field
//! order) is what `--format json` prints and the HTML report renders.
//!
//! - **The version** is `--version` (a number or an alias), else the control, else the
//!   latest. The matrix and the candidates are for it (its features); the candidates'
//!   evidence comes from it, the versions before it and those registered before the
//!   period's end (`features::pruning`).
//! - **The versions** listed (and the importance trend's columns) are those registered in
//!   the period, the report's version, and those the candidates' evidence comes from,
//!   oldest first.
//! - **Drift** compares each feature's distribution in the period with the one the store
//!   holds for the report version's **training window** (the prediction times of the
//!   examples it was trained on): the data the model learned from, against what it scores
//!   now. The verdict and its effect size are `modelwatch drift`'s (normed Wasserstein for
//!   numeric features, Jensen–Shannon for categorical ones, and the test); the trend is the
//!   same effect size per window of the period (`report_windows`: at most 48, a week each
//!   over 90 days). A version without a training window, or whose window the store no
//!   longer holds (retention), has no reference: the figures are `null` and the reason says
//!   so.

use super::correlation::{Correlation, Method};
use super::pruning::{Candidate, Kept, PruningSettings, VersionEvidence, is_evidence, pruning};
use crate::baseline::{BaselineError, range_profile};
use crate::retrain::gate::GateConfig;
use crate::time::rfc3339_exact as rfc3339;
use modelwatch_query::drift::{DriftConfig, FeatureVerdict, Profile, compare, eq, profile};
use modelwatch_query::{Range, report_windows};
use modelwatch_store::Store;
use modelwatch_store::registry::{Alias, Op, Registry, RegistryError, VersionInfo, parse_version};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// The document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeaturesReport {
    /// The model.
    pub model: String,
    /// The period's start, RFC 3339.
    pub from: String,
    /// Its end.
    pub to: String,
    /// The version the matrix and the candidates are for.
    pub version: u32,
    /// The pruning thresholds.
    pub settings: PruningSettings,
    /// The versions shown, oldest first.
    pub versions: Vec<VersionRow>,
    /// The report version's features, in its order.
    pub features: Vec<String>,
    /// One entry per feature of `features`, in that order.
    pub importance: Vec<FeatureImportance>,
    /// The report version's correlation matrices; `null` when it has none stored.
    pub correlation: Option<CorrelationMatrices>,
    /// Features the model could lose.
    pub candidates: Vec<Candidate>,
    /// Features that meet a rule but stay, with why.
    pub kept: Vec<Kept>,
    /// What drift is measured against.
    pub drift_reference: DriftReference,
    /// One entry per feature of `features`, in that order.
    pub drift: Vec<FeatureDrift>,
}

/// A version in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionRow {
    /// Its number.
    pub version: u32,
    /// When it was registered, RFC 3339.
    pub created_at: String,
    /// Its status now.
    pub status: String,
    /// The aliases pointing at it now.
    pub aliases: Vec<String>,
    /// The rows it was trained on.
    pub rows: u64,
    /// Whether its importance and correlation count as pruning evidence (not when the gate
    /// refused it: `features::pruning`).
    pub evidence: bool,
}

/// One feature's importance across the versions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureImportance {
    /// The feature.
    pub feature: String,
    /// One entry per version of the report, in its order.
    pub by_version: Vec<VersionImportance>,
}

/// One feature's permutation importance in one version (`null`s when the version has no
/// defined importance table or lacks the feature).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionImportance {
    /// The version.
    pub version: u32,
    /// The mean fall of the metric when it is shuffled.
    pub mean: Option<f64>,
    /// Its standard deviation over the repeats.
    pub std: Option<f64>,
    /// Its share of the total importance.
    pub share: Option<f64>,
}

/// The correlation matrices of a version, square and row-major.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CorrelationMatrices {
    /// The version.
    pub version: u32,
    /// The rows correlated.
    pub rows: u64,
    /// The features, in the matrices' order.
    pub features: Vec<String>,
    /// The version's training rows (more than `rows` when a sample was correlated).
    pub training_rows: u64,
    /// The sample's seed; `null` when every row was used.
    pub sample_seed: Option<u64>,
    /// Why there is no matrix (too many features); absent when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Pearson's r; `null` where undefined.
    pub pearson: Vec<Vec<Option<f64>>>,
    /// Spearman's ρ; `null` where undefined.
    pub spearman: Vec<Vec<Option<f64>>>,
}

impl CorrelationMatrices {
    fn of(version: u32, c: &Correlation) -> CorrelationMatrices {
        CorrelationMatrices {
            version,
            rows: c.rows,
            features: c.features.clone(),
            training_rows: c.training_rows,
            sample_seed: c.sample_seed,
            skipped: c.skipped.clone(),
            pearson: c.matrix(Method::Pearson),
            spearman: c.matrix(Method::Spearman),
        }
    }
}

/// The reference drift is measured against.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftReference {
    /// Its start, RFC 3339 (`null` without one).
    pub from: Option<String>,
    /// Its end.
    pub to: Option<String>,
    /// In words: whose training window, or why there is none.
    pub description: String,
}

/// One feature's drift over the period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// The feature.
    pub feature: String,
    /// The effect size's statistic (`wasserstein_norm`, `js`); `null` when not measured.
    pub statistic: Option<String>,
    /// Its value over the whole period.
    pub value: Option<f64>,
    /// Its threshold.
    pub threshold: Option<f64>,
    /// Whether the verdict is drift.
    pub drifted: bool,
    /// The verdict: `ok`, `warning`, `drift`, `insufficient_data`.
    pub verdict: String,
    /// Why there is no verdict, or why an effect past its threshold is not drift.
    pub reason: Option<String>,
    /// The effect size per window of the period.
    pub windows: Vec<DriftPoint>,
}

/// One window's effect size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftPoint {
    /// The window's start, RFC 3339.
    pub start: String,
    /// The effect size; `null` when the window has no values of the feature.
    pub value: Option<f64>,
}

/// Why the report could not be made. Each names what was asked and what there is.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The registry has no model.
    #[error("no model is registered in {0} (a version is registered by `modelwatch retrain` or the demo)")]
    NoModel(String),
    /// Several models and none chosen.
    #[error("the registry has several models; choose one with --model: {}", .0.join(", "))]
    SeveralModels(Vec<String>),
    /// The model asked for is not registered.
    #[error("no model {model:?} in the registry; registered: {}", list(.models))]
    UnknownModel {
        /// What was asked.
        model: String,
        /// What there is.
        models: Vec<String>,
    },
    /// The version asked for does not parse or is not registered.
    #[error("--version {given:?}: {problem}; model {model:?} has versions {}", list(.versions))]
    UnknownVersion {
        /// The model.
        model: String,
        /// What was asked.
        given: String,
        /// Why it is not one.
        problem: String,
        /// What there is.
        versions: Vec<String>,
    },
    /// The model has no version at all.
    #[error("model {0:?} has no version")]
    NoVersion(String),
    /// The thresholds are out of range.
    #[error("{0}")]
    Settings(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] BaselineError),
}

impl ReportError {
    /// Whether the request itself was wrong (a usage error), not the data.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ReportError::SeveralModels(_)
                | ReportError::UnknownModel { .. }
                | ReportError::UnknownVersion { .. }
                | ReportError::Settings(_)
        )
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// What to report on.
#[derive(Clone, Debug)]
pub struct ReportRequest {
    /// The model; `None`: the only one.
    pub model: Option<String>,
    /// A version number (`3`, `v3`) or alias; `None`: the control, else the latest.
    pub version: Option<String>,
    /// The period, ms.
    pub period: (i64, i64),
    /// Now, ms (what is wholly past is cached).
    pub now_ms: i64,
    /// The pruning thresholds.
    pub settings: PruningSettings,
    /// The gate whose bias check the kept are judged by.
    pub gate: GateConfig,
}

/// The model asked for, or the only one.
pub fn pick_model(registry: &Registry, asked: Option<&str>) -> Result<String, ReportError> {
    let models = registry.models()?;
    match asked {
        Some(m) if models.iter().any(|x| x == m) => Ok(m.to_string()),
        Some(m) => Err(ReportError::UnknownModel { model: m.to_string(), models }),
        None => match models.as_slice() {
            [] => Err(ReportError::NoModel(registry.location("registry").display().to_string())),
            [one] => Ok(one.clone()),
            _ => Err(ReportError::SeveralModels(models)),
        },
    }
}

/// The version asked for among `versions`, or the control, else the latest alias, else
/// the highest number.
fn pick_version<'a>(
    model: &str,
    versions: &'a [VersionInfo],
    asked: Option<&str>,
) -> Result<&'a VersionInfo, ReportError> {
    let with = |a: Alias| versions.iter().find(|v| v.aliases.contains(&a));
    let unknown = |given: &str, problem: String| ReportError::UnknownVersion {
        model: model.to_string(),
        given: given.to_string(),
        problem,
        versions: versions.iter().map(|v| v.meta.version.to_string()).collect(),
    };
    match asked {
        None => with(Alias::Control)
            .or_else(|| with(Alias::Latest))
            .or_else(|| versions.iter().max_by_key(|v| v.meta.version))
            .ok_or_else(|| ReportError::NoVersion(model.to_string())),
        Some(s) => {
            if let Some(alias) = Alias::parse(s) {
                return with(alias)
                    .ok_or_else(|| unknown(s, format!("no version is the {}", alias.as_str())));
            }
            let n = parse_version(s).map_err(|e| unknown(s, e.to_string()))?;
            versions.iter().find(|v| v.meta.version == n).ok_or_else(|| unknown(s, "no such version".into()))
        }
    }
}

/// The control at `at_ms` from the audit log (the version of the last promotion or
/// rollback before it), else the newest version registered before it; `None` when no
/// version was registered yet then.
fn control_at<'a>(
    registry: &Registry,
    model: &str,
    versions: &'a [VersionInfo],
    at_ms: i64,
) -> Result<Option<&'a VersionInfo>, ReportError> {
    let moved = registry
        .log(model)?
        .into_iter()
        .filter(|e| e.at_ms < at_ms && matches!(e.op, Op::Promote | Op::Rollback))
        .filter_map(|e| e.version)
        .next_back();
    let registered =
        || versions.iter().filter(|v| v.meta.created_at_ms < at_ms).max_by_key(|v| v.meta.version);
    Ok(match moved {
        Some(n) => versions.iter().find(|v| v.meta.version == n).or_else(registered),
        None => registered(),
    })
}

/// The report.
pub fn features_report(
    registry: &Registry,
    store: &Store,
    data_dir: &Path,
    req: &ReportRequest,
) -> Result<FeaturesReport, ReportError> {
    req.settings.validate().map_err(ReportError::Settings)?;
    req.gate.validate().map_err(ReportError::Settings)?;
    let model = pick_model(registry, req.model.as_deref())?;
    let history = registry.versions(&model)?;
    let (from, to) = req.period;
    // A past period's review is of the version that was the control then, not of one
    // registered after it.
    let then = match req.version {
        None if to < req.now_ms => control_at(registry, &model, &history, to)?,
        _ => None,
    };
    let chosen = match then {
        Some(v) => v,
        None => pick_version(&model, &history, req.version.as_deref())?,
    };
    let features = chosen.meta.training.features.clone();
    // The evidence: the report's version, those before it, and those registered before the
    // period's end (a review of a past quarter does not see what came after it).
    let pool: Vec<&VersionInfo> = history
        .iter()
        .filter(|v| v.meta.version <= chosen.meta.version || v.meta.created_at_ms < to)
        .collect();
    let pruned = pruning(&features, &pool, &req.settings, &req.gate);

    let mut shown: BTreeSet<u32> = history
        .iter()
        .filter(|v| (from..to).contains(&v.meta.created_at_ms))
        .map(|v| v.meta.version)
        .collect();
    shown.insert(chosen.meta.version);
    for c in &pruned.candidates {
        shown.extend(c.evidence.iter().map(|e| e.version));
    }
    let shown: Vec<&VersionInfo> = history.iter().filter(|v| shown.contains(&v.meta.version)).collect();
    let evidence: Vec<VersionEvidence> = shown.iter().map(|v| VersionEvidence::of(v)).collect();
    let importance = features
        .iter()
        .map(|f| FeatureImportance {
            feature: f.clone(),
            by_version: shown.iter().zip(&evidence).map(|(v, e)| version_importance(v, e, f)).collect(),
        })
        .collect();
    let correlation = serde_json::from_value::<Correlation>(chosen.meta.training.correlation.clone())
        .ok()
        .map(|c| CorrelationMatrices::of(chosen.meta.version, &c));
    let (drift_reference, drift) = drift(store, data_dir, &model, chosen, req)?;
    Ok(FeaturesReport {
        model,
        from: rfc3339(from),
        to: rfc3339(to),
        version: chosen.meta.version,
        settings: req.settings.clone(),
        versions: shown
            .iter()
            .map(|v| VersionRow {
                version: v.meta.version,
                created_at: rfc3339(v.meta.created_at_ms),
                status: v.status.to_string(),
                aliases: v.aliases.iter().map(|a| a.as_str().to_string()).collect(),
                rows: v.meta.training.rows,
                evidence: is_evidence(v),
            })
            .collect(),
        features,
        importance,
        correlation,
        candidates: pruned.candidates,
        kept: pruned.kept,
        drift_reference,
        drift,
    })
}

/// A feature's importance in a version, from its stored report.
fn version_importance(v: &VersionInfo, e: &VersionEvidence, feature: &str) -> VersionImportance {
    let score = serde_json::from_value::<crate::retrain::importance::ImportanceReport>(
        v.meta.training.feature_importance.clone(),
    )
    .ok()
    .filter(|r| r.permutation.overall.baseline.is_some())
    .and_then(|r| r.permutation.overall.features.into_iter().find(|f| f.feature == feature));
    VersionImportance {
        version: v.meta.version,
        mean: score.as_ref().map(|s| s.mean).filter(|m| m.is_finite()),
        std: score.as_ref().map(|s| s.std).filter(|s| s.is_finite()),
        share: e.shares.get(feature).copied(),
    }
}

/// Each feature's drift over the period against the version's training window, and per
/// window of the period.
fn drift(
    store: &Store,
    data_dir: &Path,
    model: &str,
    version: &VersionInfo,
    req: &ReportRequest,
) -> Result<(DriftReference, Vec<FeatureDrift>), ReportError> {
    let features = &version.meta.training.features;
    let matchers = [eq("model", model)];
    let w = version.meta.training.training_window;
    let cfg = DriftConfig::default();
    let (from, to) = req.period;
    let v = version.meta.version;
    let (reference, described) = if w.to_ms > w.from_ms {
        let (p, _) = range_profile(store, data_dir, &matchers, (w.from_ms, w.to_ms), req.now_ms)?;
        let held = features.iter().any(|f| p.numeric.contains_key(f) || p.categorical.contains_key(f));
        let what = format!("the training window of version {v}");
        let described =
            if held { what } else { format!("{what}: the store holds none of its features there") };
        (
            Some(p),
            DriftReference {
                from: Some(rfc3339(w.from_ms)),
                to: Some(rfc3339(w.to_ms)),
                description: described,
            },
        )
    } else {
        let description =
            format!("version {v} has no training window: no reference to measure drift against");
        (None, DriftReference { from: None, to: None, description })
    };
    let verdicts = |current: &Profile| -> Vec<Option<FeatureVerdict>> {
        let Some(reference) = &reference else { return vec![None; features.len()] };
        let report = compare(reference, current, &cfg);
        features
            .iter()
            .map(|f| report.features.iter().find(|d| &d.feature == f).map(FeatureVerdict::from))
            .collect()
    };
    let whole = verdicts(&profile(store, &matchers, from, to).map_err(BaselineError::from)?);
    let mut trend: Vec<Vec<DriftPoint>> = vec![Vec::new(); features.len()];
    for (a, b) in report_windows(Range { from_ms: from, to_ms: to, step_ms: 0 }) {
        let (a, b) = (a.max(from), b.min(to));
        let window = if reference.is_some() {
            verdicts(&profile(store, &matchers, a, b).map_err(BaselineError::from)?)
        } else {
            vec![None; features.len()]
        };
        for (points, v) in trend.iter_mut().zip(window) {
            let value =
                v.filter(|v| v.current_count > 0).and_then(|v| v.effect_value).filter(|x| x.is_finite());
            points.push(DriftPoint { start: rfc3339(a), value });
        }
    }
    let no_reference = reference.is_none();
    let drift = features
        .iter()
        .zip(whole)
        .zip(trend)
        .map(|((f, v), windows)| match v {
            Some(v) => FeatureDrift {
                feature: f.clone(),
                statistic: v.effect.clone(),
                value: v.effect_value.filter(|x| x.is_finite()),
                threshold: v.threshold,
                drifted: v.verdict == modelwatch_query::drift::Verdict::Drift,
                verdict: v.verdict.as_str().to_string(),
                reason: v.reason.clone(),
                windows,
            },
            None => FeatureDrift {
                feature: f.clone(),
                statistic: None,
                value: None,
                threshold: None,
                drifted: false,
                verdict: "insufficient_data".into(),
                reason: Some(if no_reference {
                    "no reference (the version has no training window)".into()
                } else {
                    "in neither the training window nor the period".into()
                }),
                windows,
            },
        })
        .collect();
    Ok((described, drift))
}
