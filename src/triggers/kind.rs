//! The [`Trigger`] trait: what every trigger kind provides, and what it is given.
//!
//! A new kind is one file implementing [`Trigger`] (its configuration section, validation,
//! evaluation with typed evidence and a status line), one field in
//! [`TriggerConfig`](super::TriggerConfig) and one [`Evidence`](super::Evidence) variant.

use super::{Reason, TriggerError, TriggerState};
use modelwatch_query::{Limits, Matcher, Range};
use modelwatch_store::Store;
use std::path::Path;

/// A kind of trigger, as configured by its `[triggers.<name>]` section.
pub trait Trigger {
    /// Its name in the configuration, the reasons and the status (`labels`).
    fn name(&self) -> &'static str;

    /// Whether the engine evaluates it.
    fn enabled(&self) -> bool;

    /// Checks the section; the message names the key (`triggers.drift.window: ...`).
    fn validate(&self) -> Result<(), String>;

    /// Evaluates at `ctx.now_ms`: the reasons that hold, and the current figures.
    fn evaluate(&self, ctx: &mut Context<'_>) -> Result<Check, TriggerError>;
}

/// What a trigger sees when it is evaluated.
pub struct Context<'a> {
    /// The store the scorer writes.
    pub store: &'a Store,
    /// The data directory (saved baselines live under it).
    pub data: &'a Path,
    /// The model filter (empty: every series).
    pub matchers: &'a [Matcher],
    /// The time of the evaluation (ms).
    pub now_ms: i64,
    /// The persisted state (the label count's start, the schedule's last check).
    pub state: &'a mut TriggerState,
}

impl Context<'_> {
    /// The sum of a query's values over `[from, to)`, restricted to the model.
    pub fn sum(&self, expr: &str, from: i64, to: i64) -> Result<f64, TriggerError> {
        let mut q = modelwatch_query::parse(expr)?;
        q.matchers.extend(self.matchers.iter().cloned());
        let range = Range { from_ms: from, to_ms: to, step_ms: (to - from).max(1) };
        Ok(modelwatch_query::run(self.store, &q, range, Limits::default())?
            .iter()
            .flat_map(|s| &s.points)
            .map(|p| p.1)
            .sum())
    }
}

/// One trigger's outcome.
pub struct Check {
    /// The reasons that hold now (empty: it does not fire).
    pub reasons: Vec<Reason>,
    /// Its current figures, for `triggers status --format json`.
    pub figures: serde_json::Value,
    /// The same for people: one line.
    pub line: String,
}

impl Check {
    /// A check from typed figures.
    pub fn new(reasons: Vec<Reason>, figures: &impl serde::Serialize, line: String) -> Check {
        Check { reasons, figures: serde_json::to_value(figures).unwrap_or_default(), line }
    }
}

/// A duration from the configuration, the error naming its key.
pub(crate) fn duration(value: &str, key: &str) -> Result<i64, String> {
    crate::time::parse_duration(value).map_err(|e| format!("triggers.{key}: {e}"))
}
