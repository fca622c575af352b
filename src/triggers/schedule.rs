//! `[triggers.schedule]`: a cron expression (weekly by default: Monday 03:00 UTC), for the
//! gradual drift nobody measures.

use super::kind::{Check, Context, Trigger};
use super::{Evidence, Reason, TriggerError};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// `[triggers.schedule]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleTrigger {
    /// On or off.
    pub enabled: bool,
    /// A cron expression with seconds (`sec min hour day-of-month month day-of-week`), UTC.
    pub cron: String,
}

impl Default for ScheduleTrigger {
    fn default() -> Self {
        ScheduleTrigger { enabled: true, cron: "0 0 3 * * Mon".into() }
    }
}

/// A scheduled time that passed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScheduleEvidence {
    /// The expression.
    pub cron: String,
    /// The time it named (ms).
    pub due_ms: i64,
}

#[derive(Serialize)]
struct Figures<'a> {
    cron: &'a str,
    next_ms: Option<i64>,
}

impl ScheduleTrigger {
    fn schedule(&self) -> Result<cron::Schedule, String> {
        cron::Schedule::from_str(&self.cron)
            .map_err(|e| format!("triggers.schedule.cron {:?}: {e}", self.cron))
    }
}

impl Trigger for ScheduleTrigger {
    fn name(&self) -> &'static str {
        "schedule"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        self.schedule().map(|_| ())
    }

    fn evaluate(&self, ctx: &mut Context<'_>) -> Result<Check, TriggerError> {
        let now = ctx.now_ms;
        let schedule = self.schedule().map_err(TriggerError::Config)?;
        let checked = *ctx.state.schedule_checked_ms.get_or_insert(now);
        let after = chrono::DateTime::from_timestamp_millis(checked).unwrap_or_default();
        let due = schedule.after(&after).next().map(|t| t.timestamp_millis());
        let figures = Figures { cron: &self.cron, next_ms: due };
        let line = format!("next {} ({})", due.map_or("-".into(), crate::time::rfc3339), self.cron);
        let mut reasons = Vec::new();
        if let Some(t) = due.filter(|&t| t <= now) {
            ctx.state.schedule_checked_ms = Some(now);
            reasons.push(Reason {
                summary: format!("scheduled retraining ({} at {})", self.cron, crate::time::rfc3339(t)),
                evidence: Evidence::Schedule(ScheduleEvidence { cron: self.cron.clone(), due_ms: t }),
            });
        }
        Ok(Check::new(reasons, &figures, line))
    }
}
