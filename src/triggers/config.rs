//! The configuration file's `[triggers]` section: every option, its default, its checks.
//! `deploy/modelwatch.toml` documents them for users (and a test keeps it equal to these
//! defaults).

use super::{TriggerError, file_error};
use crate::serve::parse_duration;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::str::FromStr;

/// The `[triggers]` section of the configuration file; every field has a default.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TriggerConfig {
    /// The model the triggers watch (empty: every series in the store).
    pub model: String,
    /// At most one event per cool-down.
    pub cooldown: String,
    /// New labelled examples.
    pub labels: LabelsTrigger,
    /// Quality degradation.
    pub degradation: DegradationTrigger,
    /// A schedule.
    pub schedule: ScheduleTrigger,
    /// Drift.
    pub drift: DriftTrigger,
    /// Where events go besides the store.
    pub sinks: Vec<SinkConfig>,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            model: String::new(),
            cooldown: "24h".into(),
            labels: LabelsTrigger::default(),
            degradation: DegradationTrigger::default(),
            schedule: ScheduleTrigger::default(),
            drift: DriftTrigger::default(),
            sinks: Vec::new(),
        }
    }
}

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
        }
    }
}

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
    /// A query whose series CUSUM watches over the window (empty: none), e.g.
    /// `mean(confidence{segment="phone"})`.
    pub detector: String,
    /// The detector's step.
    pub detector_step: String,
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
        }
    }
}

/// A `[[triggers.sinks]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// HTTP POST of the event as JSON.
    Webhook {
        /// The URL.
        url: String,
        /// Environment variable holding the HMAC-SHA256 key (header `X-Modelwatch-Signature:
        /// sha256=<hex>`); none: unsigned.
        #[serde(default)]
        secret_env: Option<String>,
        /// Per attempt.
        #[serde(default = "default_webhook_timeout")]
        timeout: String,
        /// Attempts after the first, with doubling backoff from `backoff`.
        #[serde(default = "default_retries")]
        retries: u32,
        /// The first backoff.
        #[serde(default = "default_backoff")]
        backoff: String,
    },
    /// A command run with the event as JSON on stdin and in `MODELWATCH_EVENT_*` variables.
    Command {
        /// Program and arguments.
        command: Vec<String>,
        /// How long it may run.
        #[serde(default = "default_command_timeout")]
        timeout: String,
    },
}

fn default_webhook_timeout() -> String {
    "10s".into()
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> String {
    "1s".into()
}
fn default_command_timeout() -> String {
    "60s".into()
}

/// The configuration file: `[triggers]` (and, later, the loop's sections).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// The triggers.
    pub triggers: TriggerConfig,
}

impl ConfigFile {
    /// Reads a TOML file; an error names the file and the key.
    pub fn load(path: &Path) -> Result<ConfigFile, TriggerError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        let c: ConfigFile = toml::from_str(&text).map_err(|e| file_error(path, e))?;
        c.triggers.validate().map_err(|e| file_error(path, e))?;
        Ok(c)
    }
}

impl TriggerConfig {
    /// Checks durations, the cron expression and the thresholds.
    pub fn validate(&self) -> Result<(), String> {
        let d =
            |s: &str, what: &str| parse_duration(s).map(|_| ()).map_err(|e| format!("triggers.{what}: {e}"));
        d(&self.cooldown, "cooldown")?;
        d(&self.degradation.window, "degradation.window")?;
        d(&self.drift.window, "drift.window")?;
        d(&self.drift.detector_step, "drift.detector_step")?;
        cron::Schedule::from_str(&self.schedule.cron)
            .map_err(|e| format!("triggers.schedule.cron {:?}: {e}", self.schedule.cron))?;
        if !["precision", "recall"].contains(&self.degradation.metric.as_str()) {
            return Err(format!(
                "triggers.degradation.metric {:?}: precision or recall",
                self.degradation.metric
            ));
        }
        if !(0.0..1.0).contains(&self.degradation.drop) || self.degradation.drop <= 0.0 {
            return Err(format!("triggers.degradation.drop {}: a fraction in (0, 1)", self.degradation.drop));
        }
        if !self.degradation.against.is_empty() {
            crate::serve::parse_range(&self.degradation.against, 0)
                .map_err(|e| format!("triggers.degradation.against: {e}"))?;
        }
        if !self.drift.detector.is_empty() {
            modelwatch_query::parse(&self.drift.detector)
                .map_err(|e| format!("triggers.drift.detector: {e}"))?;
        }
        for s in &self.sinks {
            match s {
                SinkConfig::Webhook { url, timeout, backoff, .. } => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(format!("triggers.sinks: webhook url {url:?} is not http(s)"));
                    }
                    d(timeout, "sinks.timeout")?;
                    d(backoff, "sinks.backoff")?;
                }
                SinkConfig::Command { command, timeout } => {
                    if command.is_empty() {
                        return Err(
                            "triggers.sinks: a command sink needs `command = [\"program\", ...]`".into()
                        );
                    }
                    d(timeout, "sinks.timeout")?;
                }
            }
        }
        Ok(())
    }
}
