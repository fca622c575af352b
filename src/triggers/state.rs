//! The persisted trigger state, `<data>/triggers/state.json`: versioned, replaced
//! atomically (temporary file, fsync, rename) so a crash leaves the old or the new state.
//!
//! A change of its shape bumps [`STATE_VERSION`] and adds a conversion from the older
//! version in [`decode`]; a state written by a newer modelwatch is refused, never guessed.
//! Version 2 added the outbox (a [`Delivery`] per event and sink, with its attempts) and the
//! event sequence; version 1 files are converted when read.

use super::error::file_error;
use super::{Delivery, RetrainEvent, TriggerError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version this build writes.
pub const STATE_VERSION: u32 = 2;

/// Events kept in the history (more while older ones still wait for a sink).
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
    /// The sequence number the next event's ID ends with. Kept here rather than derived
    /// from the history, which forgets its oldest events.
    pub next_seq: u64,
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
    /// Its deliveries are listed, one per sink configured when it fired. False only for an
    /// event a crash left undelivered under state version 1, which did not list them: the
    /// next start lists its own sinks.
    pub planned: bool,
    /// One per sink: pending, delivered or dead-lettered, with the attempts so far.
    pub deliveries: Vec<Delivery>,
    /// When it was acknowledged (ms).
    pub acked_at_ms: Option<i64>,
    /// What retraining made of it, as the acknowledgement said (`challenger: version 4`,
    /// `rejected: version 4: auc_gain: ...`, `failed: ...`); absent for a bare `ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl EventRecord {
    /// Nothing is left to do for it but an acknowledgement: stored, and every delivery
    /// delivered or dead-lettered.
    pub fn settled(&self) -> bool {
        self.stored && self.planned && self.deliveries.iter().all(|d| !d.is_pending())
    }
}

/// The trigger directory of a data directory.
pub fn trigger_dir(data: &Path) -> PathBuf {
    data.join("triggers")
}

pub(super) fn state_path(data: &Path) -> PathBuf {
    trigger_dir(data).join("state.json")
}

/// Reads a state file's bytes, checking its version and converting an older one.
fn decode(path: &Path, bytes: &[u8]) -> Result<TriggerState, TriggerError> {
    #[derive(Deserialize)]
    struct Version {
        #[serde(default)]
        version: u32,
    }
    let unreadable = |e: serde_json::Error| file_error(path, format!("unreadable trigger state: {e}"));
    let v: Version = serde_json::from_slice(bytes).map_err(unreadable)?;
    match v.version {
        0 | 1 => serde_json::from_slice::<v1::State>(bytes).map(v1::State::upgrade).map_err(unreadable),
        STATE_VERSION => serde_json::from_slice(bytes).map_err(unreadable),
        newer => Err(file_error(
            path,
            format!(
                "trigger state version {newer} was written by a newer modelwatch (this one reads up to {STATE_VERSION})"
            ),
        )),
    }
}

/// Version 1: one `delivered` flag per event and one result per sink, never retried.
mod v1 {
    use super::{Delivery, EventRecord, RetrainEvent, STATE_VERSION, TriggerState};
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) struct State {
        counting_since_ms: i64,
        last_fire_ms: Option<i64>,
        schedule_checked_ms: Option<i64>,
        suppressed: u64,
        history: Vec<Record>,
    }

    #[derive(Deserialize)]
    struct Record {
        event: RetrainEvent,
        stored: bool,
        deliveries: Vec<Outcome>,
        delivered: bool,
        acked_at_ms: Option<i64>,
    }

    #[derive(Deserialize)]
    struct Outcome {
        sink: String,
        ok: bool,
        detail: String,
    }

    impl State {
        /// A failed version 1 delivery becomes a pending one, with its one attempt
        /// counted, so the outbox retries it within what is left of its retry budget (an
        /// old failure is dead-lettered at once).
        pub(super) fn upgrade(self) -> TriggerState {
            let history = self
                .history
                .into_iter()
                .map(|r| {
                    let at = r.event.fired_at_ms;
                    let deliveries = r
                        .deliveries
                        .into_iter()
                        .map(|o| {
                            let mut d = Delivery::pending(o.sink, at);
                            d.attempts = 1;
                            d.last_attempt_ms = Some(at);
                            if o.ok {
                                d.succeeded(o.detail);
                            } else {
                                d.last_error = Some(o.detail);
                            }
                            d
                        })
                        .collect();
                    EventRecord {
                        event: r.event,
                        stored: r.stored,
                        planned: r.delivered,
                        deliveries,
                        acked_at_ms: r.acked_at_ms,
                        outcome: None,
                    }
                })
                .collect();
            TriggerState {
                version: STATE_VERSION,
                counting_since_ms: self.counting_since_ms,
                last_fire_ms: self.last_fire_ms,
                schedule_checked_ms: self.schedule_checked_ms,
                suppressed: self.suppressed,
                next_seq: 1,
                history,
            }
        }
    }
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
        std::fs::write(&path, br#"{"version": 3, "counting_since_ms": 0}"#).unwrap();
        let e = read_state(dir.path()).unwrap_err().to_string();
        assert!(e.contains("state.json") && e.contains("version 3"), "{e}");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(read_state(dir.path()).unwrap_err().to_string().contains("unreadable trigger state"));
        let s = TriggerState { version: STATE_VERSION, counting_since_ms: 5, ..Default::default() };
        save(dir.path(), &s).unwrap();
        assert_eq!(read_state(dir.path()).unwrap(), s);
    }

    /// A version 1 file as the previous release wrote it: a delivered event (one sink took
    /// it, one failed) and one a crash left undelivered.
    #[test]
    fn a_version_1_state_reads_with_its_failed_deliveries_pending() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(trigger_dir(dir.path())).unwrap();
        let event = |id: &str, at: i64| {
            serde_json::json!({"id": id, "model": "pii", "fired_at_ms": at, "reasons": [
                {"trigger": "manual", "summary": "x", "evidence": {"reason": "x", "forced": false}}]})
        };
        let v1 = serde_json::json!({
            "version": 1, "counting_since_ms": 5, "last_fire_ms": 2000, "schedule_checked_ms": 7,
            "suppressed": 3,
            "history": [
                {"event": event("pii-a", 1000), "stored": true, "delivered": true, "acked_at_ms": 1500,
                 "deliveries": [{"sink": "webhook http://x/", "ok": true, "detail": "HTTP 200 after 1 attempt(s)"},
                                {"sink": "command sh", "ok": false, "detail": "exit 1"}]},
                {"event": event("pii-b", 2000), "stored": false, "delivered": false, "acked_at_ms": null,
                 "deliveries": []}
            ]
        });
        std::fs::write(state_path(dir.path()), serde_json::to_vec(&v1).unwrap()).unwrap();
        let s = read_state(dir.path()).unwrap();
        assert_eq!((s.version, s.counting_since_ms, s.last_fire_ms, s.suppressed), (2, 5, Some(2000), 3));
        let [a, b] = &s.history[..] else { panic!("{s:?}") };
        assert_eq!((a.event.id.as_str(), a.planned, a.acked_at_ms), ("pii-a", true, Some(1500)));
        assert!(!a.deliveries[0].is_pending() && a.deliveries[0].attempts == 1);
        let failed = &a.deliveries[1];
        assert!(failed.is_pending() && failed.attempts == 1 && failed.next_attempt_ms == Some(1000));
        assert_eq!(failed.last_error.as_deref(), Some("exit 1"));
        assert!(!b.planned && !b.stored && b.deliveries.is_empty(), "the next start lists its sinks");
    }
}
