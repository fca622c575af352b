//! The persisted trigger state, `<data>/triggers/state.json`: versioned, replaced
//! atomically (temporary file, fsync, rename) so a crash leaves the old or the new state.
//!
//! A change of its shape bumps [`STATE_VERSION`] and adds a conversion from the older
//! version in [`decode`]; a state written by a newer modelwatch is refused, never guessed.

use super::error::file_error;
use super::{Delivery, RetrainEvent, TriggerError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version this build writes.
pub const STATE_VERSION: u32 = 1;

/// Events kept in the history.
pub(super) const HISTORY: usize = 1_000;

/// The persisted trigger state.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TriggerState {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// Labels count from here (the last acknowledgement, or the first start).
    pub counting_since_ms: i64,
    /// The last event's time.
    pub last_fire_ms: Option<i64>,
    /// The last schedule time handled.
    pub schedule_checked_ms: Option<i64>,
    /// Events suppressed by the cool-down (count).
    pub suppressed: u64,
    /// Every event, oldest first (the last 1,000).
    pub history: Vec<EventRecord>,
}

/// An event with what became of it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    /// The event.
    pub event: RetrainEvent,
    /// Appended to the trigger event store.
    pub stored: bool,
    /// Sink results (empty until delivered).
    pub deliveries: Vec<Delivery>,
    /// Whether the sinks have been run.
    pub delivered: bool,
    /// When it was acknowledged (ms).
    pub acked_at_ms: Option<i64>,
}

/// The trigger directory of a data directory.
pub fn trigger_dir(data: &Path) -> PathBuf {
    data.join("triggers")
}

pub(super) fn state_path(data: &Path) -> PathBuf {
    trigger_dir(data).join("state.json")
}

/// Reads a state file's bytes, checking its version.
fn decode(path: &Path, bytes: &[u8]) -> Result<TriggerState, TriggerError> {
    #[derive(Deserialize)]
    struct Version {
        #[serde(default)]
        version: u32,
    }
    let v: Version = serde_json::from_slice(bytes)
        .map_err(|e| file_error(path, format!("unreadable trigger state: {e}")))?;
    if v.version > STATE_VERSION {
        return Err(file_error(
            path,
            format!(
                "trigger state version {} was written by a newer modelwatch (this one reads up to {STATE_VERSION})",
                v.version
            ),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| file_error(path, format!("unreadable trigger state: {e}")))
}

/// The state of a data directory, or `None` before the first start.
pub(super) fn load(data: &Path) -> Result<Option<TriggerState>, TriggerError> {
    let path = state_path(data);
    match std::fs::read(&path) {
        Ok(b) => decode(&path, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_error(&path, e)),
    }
}

/// Replaces the state file atomically.
pub(super) fn save(data: &Path, state: &TriggerState) -> Result<(), TriggerError> {
    let path = state_path(data);
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| file_error(&path, e))?;
    modelwatch_store::publish(&modelwatch_store::RealFs, &path, &bytes).map_err(|e| file_error(&path, e))
}

/// Reads the trigger state of a data directory without running the triggers (for
/// `triggers history` and `/api/v1/triggers`); an empty state before the first start.
pub fn read_state(data: &Path) -> Result<TriggerState, TriggerError> {
    Ok(load(data)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_from_a_newer_version_is_refused_with_its_file_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(trigger_dir(dir.path())).unwrap();
        let path = state_path(dir.path());
        std::fs::write(&path, br#"{"version": 2, "counting_since_ms": 0}"#).unwrap();
        let e = read_state(dir.path()).unwrap_err().to_string();
        assert!(e.contains("state.json") && e.contains("version 2"), "{e}");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(read_state(dir.path()).unwrap_err().to_string().contains("unreadable trigger state"));
        let s = TriggerState { version: STATE_VERSION, counting_since_ms: 5, ..Default::default() };
        save(dir.path(), &s).unwrap();
        assert_eq!(read_state(dir.path()).unwrap(), s);
    }
}
