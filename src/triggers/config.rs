//! The configuration file's `[triggers]` section: the shared options, one section per
//! trigger kind (each defined with its kind) and the sinks. `deploy/modelwatch.toml`
//! documents every option for users (a test keeps it equal to these defaults).

use super::error::file_error;
use super::kind::{Trigger, duration};
use super::{
    DegradationTrigger, DriftTrigger, LabelsTrigger, RetryPolicy, ScheduleTrigger, SinkConfig, TriggerError,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

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
    /// How often and how long every sink is retried (a sink may override it).
    pub delivery: RetryPolicy,
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
            delivery: RetryPolicy::default(),
            sinks: Vec::new(),
        }
    }
}

impl TriggerConfig {
    /// Every trigger kind, in the order they are evaluated and shown: the one place a new
    /// kind is registered.
    pub fn kinds(&self) -> [&dyn Trigger; 4] {
        [&self.labels, &self.degradation, &self.schedule, &self.drift]
    }

    /// The cool-down in ms.
    pub fn cooldown_ms(&self) -> Result<i64, String> {
        duration(&self.cooldown, "cooldown")
    }

    /// Checks every section: durations, the cron expression, thresholds, queries, the
    /// retry budget, sinks.
    pub fn validate(&self) -> Result<(), String> {
        self.cooldown_ms()?;
        self.delivery.validate()?;
        for kind in self.kinds() {
            kind.validate()?;
        }
        self.sinks.iter().try_for_each(SinkConfig::validate)
    }
}

/// The configuration file: `[triggers]`, `[retrain]`, `[gate]` and `[canary]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// The triggers.
    pub triggers: TriggerConfig,
    /// The retraining manager: data, trainer, importance.
    pub retrain: crate::retrain::RetrainConfig,
    /// The validation gate's thresholds.
    pub gate: crate::retrain::gate::GateConfig,
    /// The canary controller `serve --retrain` runs.
    pub canary: crate::canary::CanarySettings,
}

impl ConfigFile {
    /// Reads a TOML file; an error names the file and the key.
    pub fn load(path: &Path) -> Result<ConfigFile, TriggerError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        let c: ConfigFile = toml::from_str(&text).map_err(|e| file_error(path, e))?;
        c.triggers.validate().map_err(|e| file_error(path, e))?;
        c.retrain.validate().map_err(|e| file_error(path, e))?;
        c.gate.validate().map_err(|e| file_error(path, e))?;
        c.canary.config().map_err(|e| file_error(path, e))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_is_valid_and_bad_values_are_named() {
        TriggerConfig::default().validate().unwrap();
        let bad = TriggerConfig {
            schedule: ScheduleTrigger { enabled: true, cron: "every tuesday".into() },
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("triggers.schedule.cron"));
        let bad = TriggerConfig { cooldown: "1 day".into(), ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("triggers.cooldown"));
        let mut bad = TriggerConfig::default();
        bad.drift.window = "0h".into();
        assert!(bad.validate().unwrap_err().contains("triggers.drift.window"));
        let c: ConfigFile =
            toml::from_str("[triggers]\ncooldown = \"6h\"\n[triggers.labels]\ncount = 50\n").unwrap();
        assert_eq!(
            (c.triggers.cooldown.as_str(), c.triggers.labels.count, c.triggers.labels.enabled),
            ("6h", 50, true)
        );
        let mut bad = TriggerConfig::default();
        bad.drift.detector_ert = 10.0;
        let e = bad.validate().unwrap_err();
        assert!(e.contains("triggers.drift.detector_ert") && e.contains("got 10"), "{e}");
        // A detector watches one series: a grouped query would watch the first group only.
        let mut bad = TriggerConfig::default();
        bad.drift.detector = "mean(confidence) by (segment)".into();
        let e = bad.validate().unwrap_err();
        assert!(e.contains("triggers.drift.detector") && e.contains("grouped by (segment)"), "{e}");
        let c: ConfigFile =
            toml::from_str("[triggers.drift]\ndetector_kind = \"page_hinkley\"\ndetector_ert = 50000\n")
                .unwrap();
        assert_eq!(c.triggers.drift.detector_kind, modelwatch_query::detect::DetectorKind::PageHinkley);
        assert_eq!(c.triggers.drift.detector_ert, 50_000.0);
        let e = toml::from_str::<ConfigFile>("[triggers.drift]\ndetector_kind = \"ewma\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ewma") && e.contains("adwin") && e.contains("detector_kind"), "{e}");
        assert!(
            toml::from_str::<ConfigFile>("[triggers]\ncooldwon = \"6h\"\n")
                .unwrap_err()
                .to_string()
                .contains("cooldwon")
        );
    }
}
