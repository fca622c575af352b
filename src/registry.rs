//! Model gauges from the registry: whoever loads a registered version reports it here, and
//! the agent's gauges `models_loaded` (how many versions this process has loaded) and
//! `model_age_seconds{model, version}` (now − the version's registration, by the injected
//! clock) say so. This replaces the hand-called [`Handle::model_loaded`] where a registry
//! is used: the age is the model's, not the process's.
//!
//! ```
//! use modelwatch::registry::ModelGauges;
//! use modelwatch::{Agent, ManualClock, MemorySink, Timestamp};
//! use std::sync::Arc;
//!
//! let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)));
//! let agent = Agent::builder("pii").clock(clock.clone()).build(MemorySink::new())?;
//! let gauges = ModelGauges::new(agent.handle(), clock);
//! gauges.refresh(); // call on load and then once per interval, so the age keeps growing
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::{Clock, Handle};
use modelwatch_store::registry::VersionInfo;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The gauge of how many versions are loaded.
pub const MODELS_LOADED: &str = "models_loaded";
/// The gauge of a loaded version's age, in seconds since its registration.
pub const MODEL_AGE_SECONDS: &str = "model_age_seconds";

/// The loaded versions of this process and the gauges that report them.
pub struct ModelGauges {
    handle: Handle,
    clock: Arc<dyn Clock>,
    /// (model, version) to its registration time, ms.
    loaded: Mutex<BTreeMap<(String, u32), i64>>,
}

impl ModelGauges {
    /// Gauges through `handle`, ages by `clock` (the agent's).
    pub fn new(handle: Handle, clock: Arc<dyn Clock>) -> ModelGauges {
        ModelGauges { handle, clock, loaded: Mutex::new(BTreeMap::new()) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<(String, u32), i64>) -> T) -> T {
        f(&mut self.loaded.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records that `version` was loaded and sets the gauges.
    pub fn loaded(&self, version: &VersionInfo) {
        let m = &version.meta;
        self.with(|l| l.insert((m.model.clone(), m.version), m.created_at_ms));
        self.refresh();
    }

    /// Records that a version was unloaded: the loaded count drops, and its age gauge is
    /// cleared to 0 and no longer refreshed. (The agent cannot retract a gauge series, and
    /// a frozen last age would read as a version still serving.)
    pub fn unloaded(&self, model: &str, version: u32) {
        if self.with(|l| l.remove(&(model.to_string(), version))).is_some() {
            let v = version.to_string();
            self.handle.gauge(MODEL_AGE_SECONDS, &[("model", model), ("version", &v)]).record(0.0);
        }
        self.refresh();
    }

    /// Sets `models_loaded` and each loaded version's `model_age_seconds` as of now.
    pub fn refresh(&self) {
        let now = self.clock.now().as_millis() as i64;
        let loaded = self.with(|l| l.clone());
        self.handle.gauge(MODELS_LOADED, &[]).record(loaded.len() as f64);
        for ((model, version), created) in loaded {
            let version = version.to_string();
            let age = (now - created).max(0) as f64 / 1000.0;
            self.handle.gauge(MODEL_AGE_SECONDS, &[("model", &model), ("version", &version)]).record(age);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Agent, ManualClock, MemorySink, MetricValue, Timestamp};
    use modelwatch_store::registry::{NewVersion, Registry, RegistryConfig};
    use std::time::Duration;

    #[test]
    fn gauges_report_the_registered_versions_age_by_the_injected_clock() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)));
        let dir = tempfile::tempdir().unwrap();
        let art = tempfile::tempdir().unwrap();
        std::fs::write(art.path().join("m.json"), b"{}").unwrap();
        let reg = Registry::open(RegistryConfig::new(dir.path(), clock.clone())).unwrap();
        let v1 = reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
        clock.advance(Duration::from_secs(600));
        let v2 = reg.register(NewVersion::new("pii", "logistic", art.path())).unwrap();
        clock.advance(Duration::from_secs(900));

        let sink = MemorySink::new();
        let agent = Agent::builder("pii")
            .clock(clock.clone())
            .interval(Duration::from_secs(10))
            .background_flush(false)
            .build(sink.clone())
            .unwrap();
        let gauges = ModelGauges::new(agent.handle(), clock.clone());
        gauges.loaded(&v1);
        gauges.loaded(&v2);
        clock.advance(Duration::from_secs(10));
        agent.flush_due().unwrap();
        gauges.unloaded("pii", 1);
        agent.shutdown().unwrap();

        let snaps = sink.snapshots();
        let gauge = |i: usize, name: &str, version: Option<&str>| {
            snaps[i].metrics.iter().find_map(|m| {
                let tagged =
                    version.is_none_or(|v| m.tags.iter().any(|(k, t)| &**k == "version" && &**t == v));
                match (&*m.name == name && tagged, &m.value) {
                    (true, MetricValue::Gauge(g)) => Some(*g),
                    _ => None,
                }
            })
        };
        assert_eq!(gauge(0, MODELS_LOADED, None), Some(2.0));
        // Registered 1,500 s and 900 s before they were loaded, not at load time.
        assert_eq!(gauge(0, MODEL_AGE_SECONDS, Some("1")), Some(1_500.0));
        assert_eq!(gauge(0, MODEL_AGE_SECONDS, Some("2")), Some(900.0));
        assert_eq!(gauge(1, MODELS_LOADED, None), Some(1.0), "unloading lowers the count");
        assert_eq!(gauge(1, MODEL_AGE_SECONDS, Some("1")), Some(0.0), "an unloaded version's age is cleared");
        assert_eq!(gauge(1, MODEL_AGE_SECONDS, Some("2")), Some(910.0), "a loaded one's keeps growing");
        assert!(
            !snaps.iter().flat_map(|s| &s.metrics).any(|m| &*m.name == "model_loaded"),
            "the hand-called model_loaded() is not used"
        );
    }
}
