//! `[triggers.degradation]`: a quality metric (precision by default) of the predictions made
//! in the last `window` (24 h) whose labels have matured — made at least `min_label_age`
//! (1 d) ago — fell by at least `drop` (10 %) relative to the window before (or to a fixed
//! baseline range, `against`), overall or in a segment — and only when the fall is
//! significant: both windows hold at least `min_labels` (100) labels behind the metric, and
//! a one-sided two-proportion z-test says p < `alpha` (0.01) after a Bonferroni correction
//! over the groups compared. Noise in small windows or in one of many segments does not fire
//! it; the strict default `alpha` is because the trigger is evaluated again and again.
//!
//! Both windows are cohorts of predictions, never windows of label arrival: a label counts
//! with the prediction it labels, so negatives labelled two days after the positives do not
//! make yesterday look better than last week. The metric comes from the counts (TP and
//! TP + FP for precision, TP and TP + FN for recall), so a precision of 0 — the worst
//! case — is a figure like any other and fires; so does a model that stops predicting
//! positives at all (no precision: 0 of the labelled positives found). A fixed baseline
//! (`against`) is cut at the same maturity.

use super::kind::{Check, Context, Trigger, duration};
use super::{Evidence, Reason, TriggerError};
use modelwatch_query::quality::{Quality, QualityOptions, quality};
use serde::{Deserialize, Serialize};

/// `[triggers.degradation]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DegradationTrigger {
    /// On or off.
    pub enabled: bool,
    /// `precision` or `recall`.
    pub metric: String,
    /// Relative fall that fires (0.1 = 10 %).
    pub drop: f64,
    /// The window compared with the one before it.
    pub window: String,
    /// Labels each window needs behind the metric.
    pub min_labels: u64,
    /// Significance level of the one-sided two-proportion z-test (Bonferroni-corrected over
    /// the groups compared).
    pub alpha: f64,
    /// Also per segment.
    pub by_segment: bool,
    /// Confidence from which a prediction is positive.
    pub threshold: f64,
    /// What the window is compared with: empty for the window before it, or a fixed
    /// labelled range (`FROM..TO`, e.g. the model's validation period): its baseline.
    pub against: String,
    /// How old predictions must be before their cohort is compared: the time their labels
    /// need to arrive (a duration; `0s` compares the latest predictions).
    pub min_label_age: String,
}

impl Default for DegradationTrigger {
    fn default() -> Self {
        DegradationTrigger {
            enabled: true,
            metric: "precision".into(),
            drop: 0.10,
            window: "24h".into(),
            min_labels: 100,
            alpha: 0.01,
            by_segment: true,
            threshold: 0.5,
            against: String::new(),
            min_label_age: "1d".into(),
        }
    }
}

/// One group's comparison: the figures and, when it fires, the evidence.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GroupFigures {
    /// `overall` or `segment=phone`.
    pub group: String,
    /// `precision` or `recall`.
    pub metric: String,
    /// The metric in the current window.
    pub current: f64,
    /// The metric in the window compared with.
    pub previous: f64,
    /// `(previous - current) / previous`.
    pub relative_fall: f64,
    /// Labels behind the current value.
    pub labels_current: f64,
    /// Labels behind the previous value.
    pub labels_previous: f64,
    /// One-sided p-value of the fall.
    pub p_value: f64,
    /// The current window (ms).
    pub current_window: (i64, i64),
    /// The window compared with (ms).
    pub previous_window: (i64, i64),
    /// After the Bonferroni correction over the groups (on evidence only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value_corrected: Option<f64>,
    /// The maturity the windows' cohorts had: both hold predictions at least this old
    /// (empty in events of versions that compared windows of label arrival).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min_label_age: String,
    /// The counts behind the current value: `[TP, FP, FN, TN]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts_current: Option<[f64; 4]>,
    /// The counts behind the previous value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts_previous: Option<[f64; 4]>,
}

impl GroupFigures {
    fn line(&self) -> String {
        format!(
            "{} {} {:.3} (was {:.3}, {:+.1} %, {:.0} labels, p {:.2e})",
            self.group,
            self.metric,
            self.current,
            self.previous,
            -100.0 * self.relative_fall,
            self.labels_current,
            self.p_value
        )
    }
}

impl Trigger for DegradationTrigger {
    fn name(&self) -> &'static str {
        "degradation"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        duration(&self.window, "degradation.window")?;
        age(&self.min_label_age)?;
        if !["precision", "recall"].contains(&self.metric.as_str()) {
            return Err(format!("triggers.degradation.metric {:?}: precision or recall", self.metric));
        }
        if !(0.0..1.0).contains(&self.drop) || self.drop <= 0.0 {
            return Err(format!("triggers.degradation.drop {}: a fraction in (0, 1)", self.drop));
        }
        if !self.against.is_empty() {
            crate::time::parse_range(&self.against, 0)
                .map_err(|e| format!("triggers.degradation.against: {e}"))?;
        }
        Ok(())
    }

    fn evaluate(&self, ctx: &mut Context<'_>) -> Result<Check, TriggerError> {
        let w = duration(&self.window, "degradation.window").map_err(TriggerError::Config)?;
        let age = age(&self.min_label_age).map_err(TriggerError::Config)?;
        // The latest cohort whose labels have matured ends `age` before now.
        let end = ctx.now_ms - age;
        let cur = (end - w, end);
        let prev = if self.against.is_empty() {
            (end - 2 * w, end - w)
        } else {
            let (from, to) = crate::time::parse_range(&self.against, ctx.now_ms)
                .map_err(|e| TriggerError::Config(format!("triggers.degradation.against: {e}")))?;
            // A baseline's cohorts must have matured too.
            (from, to.min(end))
        };
        let mut groups: Vec<Vec<String>> = vec![Vec::new()];
        if self.by_segment {
            groups.push(vec!["segment".into()]);
        }
        let opts = QualityOptions { threshold: self.threshold, ..QualityOptions::default() };
        let mut checked = Vec::new();
        let mut candidates = Vec::new();
        for by in groups {
            let now_q = quality(ctx.store, ctx.matchers, &by, cur.0, cur.1, &opts)?;
            let before = quality(ctx.store, ctx.matchers, &by, prev.0, prev.1, &opts)?;
            for q in &now_q {
                let Some(b) = before.iter().find(|b| b.tags == q.tags) else { continue };
                let (k1, n1) = metric_counts(&self.metric, &q.realised);
                let (k0, n0) = metric_counts(&self.metric, &b.realised);
                if n0 == 0.0 || (n1 == 0.0 && q.realised.positives == 0.0) {
                    continue;
                }
                // A model that stopped predicting positives has no precision (scikit-learn
                // calls it 0): measured over the positives it should have found, it is 0 of
                // them, the collapse it is.
                let (k1, n1) = if n1 == 0.0 { (0.0, q.realised.positives) } else { (k1, n1) };
                let (v1, v0) = (k1 / n1, k0 / n0);
                let enough = n1 >= self.min_labels as f64 && n0 >= self.min_labels as f64;
                let fall = if v0 > 0.0 { (v0 - v1) / v0 } else { 0.0 };
                let group = if q.tags.is_empty() {
                    "overall".to_string()
                } else {
                    q.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
                };
                let counts = |q: &Quality| Some([q.tp, q.fp, q.fn_, q.tn]);
                let fig = GroupFigures {
                    group,
                    metric: self.metric.clone(),
                    current: v1,
                    previous: v0,
                    relative_fall: fall,
                    labels_current: n1,
                    labels_previous: n0,
                    p_value: modelwatch_query::stats::two_proportion_p_less(k0, n0, k1, n1),
                    current_window: cur,
                    previous_window: prev,
                    p_value_corrected: None,
                    min_label_age: self.min_label_age.clone(),
                    counts_current: counts(&q.realised),
                    counts_previous: counts(&b.realised),
                };
                if enough && fall >= self.drop {
                    candidates.push(fig.clone());
                }
                checked.push(fig);
            }
        }
        // Bonferroni over every group compared.
        let m = checked.len().max(1) as f64;
        let reasons = candidates
            .into_iter()
            .filter(|f| f.p_value * m < self.alpha)
            .map(|mut f| {
                f.p_value_corrected = Some((f.p_value * m).min(1.0));
                Reason {
                    summary: format!(
                        "{} {} fell {:.1} % ({:.3} -> {:.3}, p = {:.2e}; predictions made until {}, \
                         labels at least {} old)",
                        f.metric,
                        f.group,
                        f.relative_fall * 100.0,
                        f.previous,
                        f.current,
                        f.p_value,
                        crate::time::rfc3339(f.current_window.1),
                        f.min_label_age
                    ),
                    evidence: Evidence::Degradation(f),
                }
            })
            .collect();
        let line = match checked.iter().max_by(|a, b| a.relative_fall.total_cmp(&b.relative_fall)) {
            Some(worst) => format!("{} groups compared; largest fall: {}", checked.len(), worst.line()),
            None => {
                format!("no labelled cohorts to compare (predictions at least {} old)", self.min_label_age)
            }
        };
        Ok(Check::new(reasons, &checked, line))
    }
}

fn age(value: &str) -> Result<i64, String> {
    crate::time::parse_age(value).map_err(|e| format!("triggers.degradation.min_label_age: {e}"))
}

/// (successes, trials) behind the metric, from the counts: precision = TP / (TP + FP),
/// recall = TP / (TP + FN).
fn metric_counts(metric: &str, q: &Quality) -> (f64, f64) {
    if metric == "recall" { (q.tp, q.tp + q.fn_) } else { (q.tp, q.tp + q.fp) }
}
