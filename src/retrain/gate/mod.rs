//! The validation gate: may a challenger take the control's place? (The seed's
//! `MLRetrainingManager` rule: "> 2 % better on AUC, a prediction latency within 10 % of the
//! control, and no major feature bias shifts".)
//!
//! Both models are scored on the same hold-out set (the newest matured labels, which
//! neither was trained on), and each criterion is one function of its own file, answering
//! a [`Criterion`]: its verdict, its figures, its interval and what moved.
//!
//! | criterion | file | passes when |
//! |---|---|---|
//! | `auc_gain` | `auc.rs` | the lower bound of the one-sided `confidence` interval of the AUC difference (DeLong, paired) is at least `min_auc_gain` (absolute, or relative to the control's AUC) |
//! | `latency` | `latency.rs` | the challenger's p95 prediction latency is at most `max_latency_ratio` × the control's, measured by a [`LatencyProbe`] |
//! | `importance_shift` | `bias.rs` | no feature's share of the total permutation importance moves by more than `max_importance_shift` |
//! | `segment_quality` | `bias.rs` | in no segment can precision or recall have fallen by more than `max_segment_drop`: the upper bound of the one-sided interval of the fall (paired bootstrap) is within it |
//!
//! The two halves of "no bias shift" ask different questions on purpose. The AUC gain
//! asks "is the challenger confidently better?", so a lucky hold-out does not pass. The
//! segment check asks "is the challenger confidently *not worse* by more than the margin?"
//! (a non-inferiority test, with the burden on the challenger): a fall hidden by noise in a
//! small segment fails rather than passes. A segment with fewer than `min_segment_rows`
//! hold-out rows cannot show either, and is listed as not judged.
//!
//! Without a control (the first version) there is nothing to compare: the comparisons are
//! `not_applicable`, and `auc_gain` asks only that the version's AUC on the hold-out set
//! be defined (both classes there): a first version must show that it ranks at all. The [`GateReport`] holds every criterion, its
//! figures and verdict, and the configuration that judged it; the registry stores it with
//! the version.

mod auc;
mod bias;
mod latency;

pub use auc::{PairedAuc, auc_gain, delong};
pub use bias::{importance_shift, segment_quality};
pub use latency::{FixedLatency, InterleavedProbe, LatencyFigures, LatencyProbe, latency};

use super::Model;
use super::importance::ImportanceReport;
use modelwatch_store::examples::ExampleSet;
use serde::{Deserialize, Serialize};

/// The `[gate]` section of the configuration file; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// The AUC gain the challenger must show (default 0.02), judged on the lower bound of
    /// the difference's interval.
    pub min_auc_gain: f64,
    /// `absolute` (the default: AUC points) or `relative` (a fraction of the control's AUC).
    pub auc_gain_kind: GainKind,
    /// The one-sided confidence of the intervals (default 0.95).
    pub confidence: f64,
    /// The challenger's p95 latency may be at most this times the control's (default 1.10).
    pub max_latency_ratio: f64,
    /// The most a feature's share of total importance may move (default 0.10, absolute).
    pub max_importance_shift: f64,
    /// The most a segment's precision or recall may fall (default 0.05, absolute), judged on
    /// the upper bound of the fall's interval.
    pub max_segment_drop: f64,
    /// Segments with fewer hold-out rows are listed as not judged (default 100).
    pub min_segment_rows: usize,
    /// Bootstrap resamples of the segment intervals (default 1,000).
    pub bootstrap: usize,
    /// The seed of the bootstrap: the same hold-out, the same verdict.
    pub seed: u64,
    /// The score from which a prediction is positive (default 0.5).
    pub threshold: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            min_auc_gain: 0.02,
            auc_gain_kind: GainKind::Absolute,
            confidence: 0.95,
            max_latency_ratio: 1.10,
            max_importance_shift: 0.10,
            max_segment_drop: 0.05,
            min_segment_rows: 100,
            bootstrap: 1_000,
            seed: 0,
            threshold: 0.5,
        }
    }
}

impl GateConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, key: &str, value: f64, want: &str| {
            if ok { Ok(()) } else { Err(format!("gate.{key} must be {want}; got {value}")) }
        };
        check(
            self.min_auc_gain.is_finite() && self.min_auc_gain > -1.0 && self.min_auc_gain < 1.0,
            "min_auc_gain",
            self.min_auc_gain,
            "a number in (-1, 1)",
        )?;
        check(self.confidence > 0.5 && self.confidence < 1.0, "confidence", self.confidence, "in (0.5, 1)")?;
        check(
            self.max_latency_ratio.is_finite() && self.max_latency_ratio > 0.0,
            "max_latency_ratio",
            self.max_latency_ratio,
            "a positive number",
        )?;
        check(
            (0.0..=1.0).contains(&self.max_importance_shift),
            "max_importance_shift",
            self.max_importance_shift,
            "in [0, 1]",
        )?;
        check(
            (0.0..=1.0).contains(&self.max_segment_drop),
            "max_segment_drop",
            self.max_segment_drop,
            "in [0, 1]",
        )?;
        check(
            self.bootstrap >= 100 && self.bootstrap <= 100_000,
            "bootstrap",
            self.bootstrap as f64,
            "between 100 and 100000",
        )?;
        check(self.threshold > 0.0 && self.threshold < 1.0, "threshold", self.threshold, "in (0, 1)")?;
        Ok(())
    }

    /// The confidence in percent for reports, to a tenth: `95`, `99.9` (rounded whole it
    /// read "100 %" at 0.999).
    pub fn percent(&self) -> String {
        format!("{}", (self.confidence * 1000.0).round() / 10.0)
    }

    /// The standard normal quantile of `confidence` (1.645 at 0.95).
    pub fn z(&self) -> f64 {
        modelwatch_query::stats::normal_quantile(self.confidence)
    }
}

/// How the AUC gain is measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GainKind {
    /// In AUC points: challenger − control.
    #[default]
    Absolute,
    /// As a fraction of the control's AUC: the gain must be `min_auc_gain × AUC(control)`.
    Relative,
}

/// A criterion's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The challenger meets it.
    Pass,
    /// The challenger does not: it is rejected.
    Fail,
    /// Nothing to judge (no control).
    NotApplicable,
}

impl Verdict {
    /// `pass`, `FAIL` (loud, for tables), `n/a`.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::NotApplicable => "n/a",
        }
    }
}

/// One thing a criterion names: a feature or segment that moved (or could not be judged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `feature <name>`, `segment <name>` or `segment <name> <metric>`.
    pub subject: String,
    /// What happened, with the figures.
    pub what: String,
    /// Whether this finding fails the criterion (a not-judged segment does not).
    pub fails: bool,
}

/// One criterion's judgement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    /// `auc_gain`, `latency`, `importance_shift`, `segment_quality`.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// One line: the figures against the threshold.
    pub summary: String,
    /// The figures, intervals and thresholds, for machines.
    pub figures: serde_json::Value,
    /// The features and segments it names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

impl Criterion {
    fn not_applicable(name: &str, why: &str) -> Criterion {
        Criterion {
            name: name.into(),
            verdict: Verdict::NotApplicable,
            summary: why.into(),
            figures: serde_json::Value::Null,
            findings: Vec::new(),
        }
    }
}

/// The gate's report: stored with the challenger's version, printed by `modelwatch
/// retrain`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// The model.
    pub model: String,
    /// The challenger's version.
    pub challenger: u32,
    /// The control's version (none for a first version).
    pub control: Option<u32>,
    /// The retraining event judged for.
    pub event_id: Option<String>,
    /// When (ms since the epoch).
    pub judged_at_ms: i64,
    /// The hold-out rows both were scored on.
    pub holdout_rows: usize,
    /// Every criterion passed (or none applied).
    pub passed: bool,
    /// Each criterion, in the order of the module documentation.
    pub criteria: Vec<Criterion>,
    /// The thresholds it was judged with.
    pub config: GateConfig,
}

impl GateReport {
    /// The criteria that failed, each with its summary and the subjects it names: the
    /// rejection reason.
    pub fn reasons(&self) -> Vec<String> {
        self.criteria
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| {
                let named: Vec<&str> =
                    c.findings.iter().filter(|f| f.fails).map(|f| f.subject.as_str()).collect();
                if named.is_empty() {
                    format!("{}: {}", c.name, c.summary)
                } else {
                    format!("{}: {} ({})", c.name, c.summary, named.join(", "))
                }
            })
            .collect()
    }
}

/// One side of the comparison: a model, its version and its importance on the hold-out.
pub struct Side<'a> {
    /// The version in the registry.
    pub version: u32,
    /// The loaded model.
    pub model: &'a dyn Model,
    /// Its feature importance on the same hold-out set.
    pub importance: &'a ImportanceReport,
}

/// What a judgement is for: the model, the event and when.
#[derive(Clone, Copy, Debug)]
pub struct Case<'a> {
    /// The model.
    pub model: &'a str,
    /// The retraining event.
    pub event_id: Option<&'a str>,
    /// Now (ms since the epoch).
    pub now_ms: i64,
}

/// Judges `challenger` against `control` (none: a first version) on `holdout`.
pub fn judge(
    config: &GateConfig,
    case: Case<'_>,
    holdout: &ExampleSet,
    challenger: &Side<'_>,
    control: Option<&Side<'_>>,
    probe: &dyn LatencyProbe,
) -> GateReport {
    let Case { model, event_id, now_ms } = case;
    let names = ["auc_gain", "latency", "importance_shift", "segment_quality"];
    let criteria = match control {
        None => {
            // Nothing to compare with; but a first version must still show it ranks at all.
            let pairs: Vec<(f64, bool)> = laid_out(challenger.model, holdout)
                .iter()
                .zip(&holdout.rows)
                .map(|(x, e)| (challenger.model.score(x), e.label))
                .collect();
            let first = match crate::retrain::auc(&pairs) {
                Some(auc) => Criterion {
                    name: names[0].into(),
                    verdict: Verdict::Pass,
                    summary: format!("no control to compare with (the first version); AUC {auc:.4} on the hold-out set"),
                    figures: serde_json::json!({ "challenger_auc": auc }),
                    findings: Vec::new(),
                },
                None => Criterion {
                    name: names[0].into(),
                    verdict: Verdict::Fail,
                    summary: "no control to compare with, and the AUC is undefined on the hold-out set (it needs both positive and negative labels): a first version must show that it ranks".into(),
                    figures: serde_json::json!({ "rows": pairs.len() }),
                    findings: Vec::new(),
                },
            };
            std::iter::once(first)
                .chain(
                    names[1..].iter().map(|n| {
                        Criterion::not_applicable(n, "no control to compare with: the first version")
                    }),
                )
                .collect()
        }
        Some(control) => {
            let scored = Scored::new(holdout, control.model, challenger.model);
            vec![
                auc_gain(config, &scored.control, &scored.challenger, &scored.labels),
                latency(config, probe, control.model, challenger.model, holdout),
                importance_shift(config, control.importance, challenger.importance),
                segment_quality(config, &scored),
            ]
        }
    };
    GateReport {
        model: model.to_string(),
        challenger: challenger.version,
        control: control.map(|c| c.version),
        event_id: event_id.map(str::to_string),
        judged_at_ms: now_ms,
        holdout_rows: holdout.len(),
        passed: criteria.iter().all(|c| c.verdict != Verdict::Fail),
        criteria,
        config: config.clone(),
    }
}

/// Both models' scores on the hold-out rows, with the labels and segments.
pub struct Scored {
    /// The control's score of each row.
    pub control: Vec<f64>,
    /// The challenger's score of each row.
    pub challenger: Vec<f64>,
    /// Each row's label.
    pub labels: Vec<bool>,
    /// Each row's segment.
    pub segments: Vec<String>,
}

impl Scored {
    /// Scores every row of `holdout` with both models, each given the values of its own
    /// features by name (see [`laid_out`]).
    pub fn new(holdout: &ExampleSet, control: &dyn Model, challenger: &dyn Model) -> Scored {
        let rows = &holdout.rows;
        let scores =
            |m: &dyn Model| -> Vec<f64> { laid_out(m, holdout).iter().map(|x| m.score(x)).collect() };
        Scored {
            control: scores(control),
            challenger: scores(challenger),
            labels: rows.iter().map(|e| e.label).collect(),
            segments: rows.iter().map(|e| e.segment.clone()).collect(),
        }
    }
}

/// Each row of `set` as `model` takes it: the values of the model's features, by name, in
/// the model's order. The hold-out's columns are the union of the features seen in the
/// window, while a control was trained on the features of its day (fewer, more, or in
/// another order); scored by position it would read one feature's values as another's,
/// or score NaN on a row of the wrong length, and look worse than it is. A feature the
/// set lacks is NaN (missing: the model imputes it). Borrowed where the names agree.
pub fn laid_out<'a>(model: &dyn Model, set: &'a ExampleSet) -> Vec<std::borrow::Cow<'a, [f64]>> {
    use std::borrow::Cow;
    let Some(at) = crate::retrain::columns_by_name(model.features(), set) else {
        return set.rows.iter().map(|e| Cow::Borrowed(e.features.as_slice())).collect();
    };
    set.rows
        .iter()
        .map(|e| {
            Cow::Owned(
                at.iter().map(|j| j.and_then(|j| e.features.get(j).copied()).unwrap_or(f64::NAN)).collect(),
            )
        })
        .collect()
}

/// The gate report as a table: one row per criterion, then what each names.
pub fn table(report: &GateReport) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["criterion", "verdict", "figures"]);
    for c in &report.criteria {
        t.add_row([c.name.as_str(), c.verdict.word(), c.summary.as_str()]);
    }
    let mut out = format!(
        "gate: {} version {} against {} on {} hold-out rows: {}\n{t}\n",
        report.model,
        report.challenger,
        report.control.map_or("no control".to_string(), |v| format!("control version {v}")),
        report.holdout_rows,
        if report.passed { "PASSED" } else { "REJECTED" },
    );
    for c in &report.criteria {
        for f in &c.findings {
            out.push_str(&format!(
                "  {} {}: {}{}\n",
                c.name,
                f.subject,
                f.what,
                if f.fails { "" } else { " (not failing)" }
            ));
        }
    }
    out
}
