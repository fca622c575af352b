//! `[triggers.labels]`: enough labelled examples (feedback) since the last retraining — the
//! last acknowledged event, or the first start. Counted from the store, so no count is lost
//! in a crash.

use super::kind::{Check, Context, Trigger};
use super::{Evidence, Reason, TriggerError};
use serde::{Deserialize, Serialize};

/// `[triggers.labels]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LabelsTrigger {
    /// On or off.
    pub enabled: bool,
    /// Labelled examples since the last retraining.
    pub count: u64,
}

impl Default for LabelsTrigger {
    fn default() -> Self {
        LabelsTrigger { enabled: true, count: 500 }
    }
}

/// The labels counted so far: the figures and the evidence.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LabelsFigures {
    /// Labels since `since_ms`.
    pub labels: f64,
    /// The threshold.
    pub needed: f64,
    /// Where counting started (ms).
    pub since_ms: i64,
}

impl Trigger for LabelsTrigger {
    fn name(&self) -> &'static str {
        "labels"
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        if self.count == 0 {
            return Err("triggers.labels.count: at least 1".into());
        }
        Ok(())
    }

    fn evaluate(&self, ctx: &mut Context<'_>) -> Result<Check, TriggerError> {
        let since = ctx.state.counting_since_ms;
        let n = if ctx.now_ms > since { ctx.sum("sum(feedback)", since, ctx.now_ms)? } else { 0.0 };
        let f = LabelsFigures { labels: n, needed: self.count as f64, since_ms: since };
        let line = format!("{n:.0} of {} since {}", self.count, crate::time::rfc3339(since));
        let reasons = (n >= f.needed)
            .then(|| Reason {
                summary: format!(
                    "{n:.0} labelled examples since the last retraining (threshold {})",
                    self.count
                ),
                evidence: Evidence::Labels(f.clone()),
            })
            .into_iter()
            .collect();
        Ok(Check::new(reasons, &f, line))
    }
}
