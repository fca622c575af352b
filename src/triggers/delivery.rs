//! Storing and delivering events: each event goes into the trigger event store
//! (`<data>/triggers/events`, a store of its own whose events table Grafana's annotations
//! and `/api/v1/events` read) and then to the sinks. The state says which steps are done
//! and is saved after each, so a crash between them redoes only what is missing: the
//! event is appended once, and every sink sees it at least once, with the same ID.

use super::state::{self, TriggerState, trigger_dir};
use super::{EventSink, RetrainEvent, TriggerError};
use modelwatch_store::{EventRow, ReadRequest, Resolution, Rows, Store, StoreConfig, Table};
use std::path::Path;

/// Event kinds in the events table.
const TRIGGERED: &str = "retrain_triggered";
const ACKNOWLEDGED: &str = "retrain_acknowledged";

/// The trigger event store and the sinks.
pub(super) struct Outbox {
    events: Store,
    sinks: Vec<Box<dyn EventSink>>,
}

impl Outbox {
    pub(super) fn open(data: &Path, sinks: Vec<Box<dyn EventSink>>) -> Result<Outbox, TriggerError> {
        let events = Store::open(StoreConfig {
            background: false,
            buffer_rows: 1,
            ..StoreConfig::new(trigger_dir(data).join("events"))
        })?;
        Ok(Outbox { events, sinks })
    }

    /// Stores and delivers the events whose storing or delivery is still to do, saving the
    /// state after each step.
    pub(super) fn finish_pending(&self, data: &Path, state: &mut TriggerState) -> Result<(), TriggerError> {
        for i in 0..state.history.len() {
            if !state.history[i].stored {
                let e = &state.history[i].event;
                // A crash after the append but before the state said so: append once only.
                if !self.stored_already(e)? {
                    self.append(e, e.fired_at_ms, TRIGGERED)?;
                }
                state.history[i].stored = true;
                state::save(data, state)?;
            }
            if !state.history[i].delivered {
                let e = &state.history[i].event;
                let deliveries = self.sinks.iter().map(|s| s.deliver(e)).collect();
                state.history[i].deliveries = deliveries;
                state.history[i].delivered = true;
                state::save(data, state)?;
            }
        }
        Ok(())
    }

    /// Records an acknowledgement in the events table.
    pub(super) fn acknowledged(&self, e: &RetrainEvent, at_ms: i64) -> Result<(), TriggerError> {
        self.append(e, at_ms, ACKNOWLEDGED)
    }

    fn stored_already(&self, e: &RetrainEvent) -> Result<bool, TriggerError> {
        let req = ReadRequest::new(Table::Events, e.fired_at_ms, e.fired_at_ms + 1, Resolution::Raw);
        let needle = format!("\"id\":{}", serde_json::Value::String(e.id.clone()));
        Ok(self
            .events
            .read(&req)?
            .events
            .iter()
            .any(|r| &*r.kind == TRIGGERED && r.message.contains(&needle)))
    }

    fn append(&self, e: &RetrainEvent, time_ms: i64, kind: &str) -> Result<(), TriggerError> {
        let message = serde_json::json!({ "id": e.id, "reasons": e.reasons }).to_string();
        self.events.append(Rows {
            events: vec![EventRow {
                time_ms,
                model: e.model.as_str().into(),
                version: "".into(),
                variant: "".into(),
                kind: kind.into(),
                message,
            }],
            ..Rows::default()
        })?;
        self.events.flush()?;
        Ok(())
    }
}

/// The trigger events (fired, acknowledged) from the trigger event store, for annotations.
pub fn events(data: &Path, from_ms: i64, to_ms: i64) -> Vec<EventRow> {
    let dir = trigger_dir(data).join("events");
    if !dir.exists() {
        return Vec::new();
    }
    Store::open_read_only(StoreConfig::new(dir))
        .and_then(|s| s.read(&ReadRequest::new(Table::Events, from_ms, to_ms, Resolution::Raw)))
        .map(|r| r.events)
        .unwrap_or_default()
}
