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

impl Evidence {
    /// The figures alone, as JSON (without the trigger's name), for people and logs.
    pub fn figures(&self) -> serde_json::Value {
        let v = match self {
            Evidence::Labels(e) => serde_json::to_value(e),
            Evidence::Degradation(e) => serde_json::to_value(e),
            Evidence::Schedule(e) => serde_json::to_value(e),
            Evidence::Drift(e) => serde_json::to_value(e),
            Evidence::Manual(e) => serde_json::to_value(e),
        };
        v.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reasons as an earlier modelwatch (free-form evidence) wrote them into state.json and
    /// webhook bodies: the typed evidence reads them, and writes the same shape back.
    #[test]
    fn reasons_keep_their_json_shape_and_read_what_earlier_versions_wrote() {
        let written = [
            r#"{"trigger":"labels","summary":"500 labelled examples","evidence":{"labels":500.0,"needed":500.0,"since_ms":1764115200000}}"#,
            r#"{"trigger":"degradation","summary":"precision overall fell","evidence":{"group":"overall","metric":"precision","current":0.6,"previous":0.8,"relative_fall":0.25,"labels_current":500.0,"labels_previous":500.0,"p_value":1e-9,"current_window":[1,2],"previous_window":[0,1],"p_value_corrected":2e-9}}"#,
            r#"{"trigger":"schedule","summary":"scheduled","evidence":{"cron":"0 0 3 * * Mon","due_ms":1764300000000}}"#,
            r#"{"trigger":"drift","summary":"24 % drift","evidence":{"share":0.24,"threshold":0.2,"reference":"a .. b","current_window":[1,2],"drifting":[{"feature":"confidence","statistic":"wasserstein_norm","value":0.3}]}}"#,
            r#"{"trigger":"drift","summary":"CUSUM alarm","evidence":{"alarm_ms":1795619400000,"baseline":0.82,"detector":"cusum","direction":"Down","query":"mean(confidence)","statistic":15.7}}"#,
            r#"{"trigger":"manual","summary":"new guideline","evidence":{"reason":"new guideline","forced":false}}"#,
        ];
        let kinds = ["labels", "degradation", "schedule", "drift", "drift", "manual"];
        for (json, kind) in written.iter().zip(kinds) {
            let r: Reason = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(r.trigger(), kind);
            let back: serde_json::Value = serde_json::to_value(&r).unwrap();
            let original: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(back, original, "{json}");
            assert_eq!(r.evidence.figures(), original["evidence"]);
        }
        let Reason { evidence: Evidence::Drift(super::super::DriftEvidence::Detector(a)), .. } =
            serde_json::from_str(written[4]).unwrap()
        else {
            panic!("a CUSUM alarm reads as a detector alarm");
        };
        assert_eq!(a.alarm_ms, 1_795_619_400_000);
        assert!(
            serde_json::from_str::<Reason>(r#"{"trigger":"psychic","summary":"","evidence":{}}"#).is_err()
        );
    }
}
