//! A retraining event and its reasons, each with typed evidence: the figures that crossed
//! the line and the windows they came from. The JSON form (state file, webhook body,
//! `triggers history --format json`) is `{"trigger": "labels", "summary": "...",
//! "evidence": {...}}` per reason.

use serde::{Deserialize, Serialize};

/// A retraining event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RetrainEvent {
    /// Stable ID: `<model>-<UTC time of the decision>`.
    pub id: String,
    /// The model.
    pub model: String,
    /// When it fired (ms).
    pub fired_at_ms: i64,
    /// Why.
    pub reasons: Vec<Reason>,
}

impl RetrainEvent {
    /// The triggers behind the event, comma separated (`labels,drift`).
    pub fn triggers(&self) -> String {
        self.reasons.iter().map(Reason::trigger).collect::<Vec<_>>().join(",")
    }
}

/// One reason an event fired.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reason {
    /// In words.
    pub summary: String,
    /// Which trigger, and its evidence.
    #[serde(flatten)]
    pub evidence: Evidence,
}

impl Reason {
    /// The trigger's name: `labels`, `degradation`, `schedule`, `drift` or `manual`.
    pub fn trigger(&self) -> &'static str {
        match self.evidence {
            Evidence::Labels(_) => "labels",
            Evidence::Degradation(_) => "degradation",
            Evidence::Schedule(_) => "schedule",
            Evidence::Drift(_) => "drift",
            Evidence::Manual(_) => "manual",
        }
    }
}

/// The evidence of a reason, by trigger kind (each type lives with its trigger).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "trigger", content = "evidence", rename_all = "snake_case")]
pub enum Evidence {
    /// Enough new labels.
    Labels(super::labels::LabelsFigures),
    /// A significant fall of a quality metric in one group.
    Degradation(super::degradation::GroupFigures),
    /// A scheduled time passed.
    Schedule(super::schedule::ScheduleEvidence),
    /// Drifting features, or a detector's alarm.
    Drift(super::drift::DriftEvidence),
    /// Fired by hand.
    Manual(super::manual::ManualEvidence),
}
