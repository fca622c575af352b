//! `[triggers.drift]`: the share of drifting features between `reference` and the last
//! `window` reaches `share` (0.5), or an online detector (`detector_kind`: CUSUM by default,
//! Page–Hinkley or ADWIN, set by `detector_ert`, the intervals it runs without drift per false
//! alarm) alarms on `detector` (a query, e.g. `mean(confidence)`) over the window. A mean or
//! quantile is weighted by its per-interval count (a `count` query over the same selector),
//! so a quiet interval's noisier value weighs less.

use super::kind::{Check, Context, Trigger, duration};
use super::{Evidence, Reason, TriggerError};
use modelwatch_query::detect::{self, DetectorKind};
use modelwatch_query::drift::{self, DriftConfig, Measure, Statistic, Verdict};
use modelwatch_query::{Limits, Range};
use serde::{Deserialize, Serialize};

/// `[triggers.drift]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DriftTrigger {
    /// On or off.
    pub enabled: bool,
    /// A baseline's name or a range (`now-8d..now-1d`).
    pub reference: String,
    /// The current window.
    pub window: String,
    /// Share of drifting features that fires.
    pub share: f64,
    /// A query whose series the detector watches over the window (empty: none), e.g.
    /// `mean(confidence{segment="phone"})`.
    pub detector: String,
    /// The detector's step.
    pub detector_step: String,
    /// `cusum`, `page_hinkley` or `adwin`.
    pub detector_kind: DetectorKind,
    /// Expected run time without drift: steps per false alarm (at least 100).
    pub detector_ert: f64,
}

impl Default for DriftTrigger {
    fn default() -> Self {
        DriftTrigger {
            enabled: true,
            reference: "now-8d..now-1d".into(),
            window: "24h".into(),
            share: 0.5,
            detector: String::new(),
            detector_step: "10m".into(),
            detector_kind: DetectorKind::Cusum,
            detector_ert: detect::DEFAULT_ERT,
        }
    }
}

/// The evidence of a drift reason: drifting features, or a detector's alarm.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DriftEvidence {
    /// The share of drifting features crossed the threshold.
    Share(ShareFigures),
    /// An online detector alarmed.
    Detector(DetectorAlarm),
}

/// The share of drifting features against the reference.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShareFigures {
    /// Share of features that drift.
    pub share: f64,
    /// The share that fires.
    pub threshold: f64,
    /// The reference, described.
    pub reference: String,
    /// The current window (ms).
    pub current_window: (i64, i64),
    /// The features that drift.
    pub drifting: Vec<DriftingFeature>,
}

/// A feature that drifts, with the statistic its verdict rests on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DriftingFeature {
    /// The feature (or `confidence`).
    pub feature: String,
    /// The statistic its verdict rests on.
    pub statistic: Option<Statistic>,
    /// Its value.
    pub value: Option<f64>,
}

/// A detector's alarm.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DetectorAlarm {
    /// `cusum`, `page_hinkley` or `adwin`.
    pub detector: String,
    /// The query watched.
    pub query: String,
    /// When it alarmed (ms).
    pub alarm_ms: i64,
    /// `Up` or `Down`.
    pub direction: String,
    /// The level before the change.
    pub baseline: f64,
    /// The statistic at the alarm (standard errors).
    pub statistic: f64,
}

#[derive(Serialize, Default)]
struct Figures {
    share: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detector: Option<DetectorFigures>,
}

#[derive(Serialize)]
struct DetectorFigures {
    detector: DetectorKind,
    query: String,
    alarms: usize,
}

impl Trigger for DriftTrigger {
    fn name(&self) -> &'static str {
        "drift"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        duration(&self.window, "drift.window")?;
        duration(&self.detector_step, "drift.detector_step")?;
        if !self.detector.is_empty() {
            let q = modelwatch_query::parse(&self.detector)
                .map_err(|e| format!("triggers.drift.detector: {e}"))?;
            if !q.by.is_empty() {
                return Err(format!(
                    "triggers.drift.detector: a detector watches one series, and `{}` is grouped by ({}): select one series with matchers, e.g. {{segment=\"phone\"}}",
                    self.detector,
                    q.by.join(", ")
                ));
            }
        }
        self.detector_kind
            .with_ert(self.detector_ert)
            .map_err(|e| format!("triggers.drift.detector_ert: {e}"))?;
        Ok(())
    }

    fn evaluate(&self, ctx: &mut Context<'_>) -> Result<Check, TriggerError> {
        let now = ctx.now_ms;
        let w = duration(&self.window, "drift.window").map_err(TriggerError::Config)?;
        let mut reasons = Vec::new();
        let mut figures = Figures::default();
        let mut lines = Vec::new();
        match crate::baseline::reference(ctx.store, ctx.data, &self.reference, ctx.matchers, now) {
            Ok((reference, desc)) => {
                let current = drift::profile(ctx.store, ctx.matchers, now - w, now)?;
                let report = drift::compare(&reference, &current, &DriftConfig::default());
                let drifting: Vec<DriftingFeature> = report
                    .features
                    .iter()
                    .filter(|f| f.verdict == Verdict::Drift)
                    .map(|f| {
                        let s = f.stats.first();
                        DriftingFeature {
                            feature: f.feature.clone(),
                            statistic: s.and_then(|s| match s.statistic {
                                Measure::Statistic(st) => Some(st),
                                Measure::Change(_) => None,
                            }),
                            value: s.map(|s| s.value),
                        }
                    })
                    .collect();
                let share = ShareFigures {
                    share: report.drifting_share,
                    threshold: self.share,
                    reference: desc,
                    current_window: (now - w, now),
                    drifting,
                };
                let names: Vec<&str> = share.drifting.iter().map(|f| f.feature.as_str()).collect();
                let judged = report.judged();
                lines.push(format!(
                    "{:.0} % of {judged} features judged drift (threshold {:.0} %; {} with insufficient data){}; against {}",
                    share.share * 100.0,
                    share.threshold * 100.0,
                    report.features.len() - judged,
                    if names.is_empty() { String::new() } else { format!(": {}", names.join(", ")) },
                    share.reference
                ));
                figures.share = serde_json::to_value(&share).ok();
                if !report.features.is_empty() && report.drifting_share >= self.share {
                    reasons.push(Reason {
                        summary: format!(
                            "{:.0} % of features drift (threshold {:.0} %)",
                            report.drifting_share * 100.0,
                            self.share * 100.0
                        ),
                        evidence: Evidence::Drift(DriftEvidence::Share(share)),
                    });
                }
            }
            Err(e) => {
                lines.push(e.to_string());
                figures.share = Some(serde_json::json!({ "error": e.to_string() }));
            }
        }
        if !self.detector.is_empty() {
            let alarms = self.alarms(ctx, w)?;
            let kind = self.detector_kind;
            lines.push(format!("{} {kind} alarm(s) on {}", alarms.len(), self.detector));
            figures.detector =
                Some(DetectorFigures { detector: kind, query: self.detector.clone(), alarms: alarms.len() });
            if let Some(a) = alarms.into_iter().next() {
                reasons.push(Reason {
                    summary: format!(
                        "{kind} alarm on {} at {}",
                        self.detector,
                        crate::time::rfc3339(a.alarm_ms)
                    ),
                    evidence: Evidence::Drift(DriftEvidence::Detector(a)),
                });
            }
        }
        Ok(Check::new(reasons, &figures, lines.join("; ")))
    }
}

impl DriftTrigger {
    /// The detector's alarms on the detector query within the window.
    fn alarms(&self, ctx: &Context<'_>, w: i64) -> Result<Vec<DetectorAlarm>, TriggerError> {
        let now = ctx.now_ms;
        let step = duration(&self.detector_step, "drift.detector_step").map_err(TriggerError::Config)?;
        let detector = self
            .detector_kind
            .with_ert(self.detector_ert)
            .map_err(|e| TriggerError::Config(format!("triggers.drift.detector_ert: {e}")))?;
        let mut q = modelwatch_query::parse(&self.detector)?;
        q.matchers.extend(ctx.matchers.iter().cloned());
        // The detector learns the level from the values before the window as well: read
        // 250 steps of history, enough for its 30-step start and a steady level.
        let from = (now - w - 250 * step).div_euclid(step) * step;
        // Complete steps only: the step now running holds part of its values, and a count,
        // sum or rate over it reads low (a "fall" every time a check runs early in a step).
        let range = Range { from_ms: from, to_ms: now.div_euclid(step) * step, step_ms: step };
        let points = detect::query_points(ctx.store, &q, range, Limits::default())?;
        Ok(detector
            .run(&points)
            .into_iter()
            .filter(|a| a.time_ms >= now - w)
            .map(|a| DetectorAlarm {
                detector: self.detector_kind.to_string(),
                query: self.detector.clone(),
                alarm_ms: a.time_ms,
                direction: format!("{:?}", a.direction),
                baseline: a.baseline,
                statistic: a.statistic,
            })
            .collect())
    }
}
