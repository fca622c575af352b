//! The outbox: storing and delivering events. Each event goes into the trigger event
//! store (`<data>/triggers/events`, a store of its own whose events table Grafana's
//! annotations and `/api/v1/events` read) and to every sink, until the sink takes it or its
//! retry budget ([`Budget`]) is spent and the delivery is dead-lettered. The state says
//! which steps are done and is saved after each, so a crash between them redoes only what
//! is missing: the event is appended once, every sink sees it at least once, with the same
//! ID, and a failed attempt is never taken for a done one.

use super::retry::Budget;
use super::state::{self, TriggerState, trigger_dir};
use super::{Delivery, EventSink, RetrainEvent, TriggerError};
use modelwatch_agent::Clock;
use modelwatch_store::{EventRow, ReadRequest, Resolution, Rows, Store, StoreConfig, Table};
use std::path::Path;

/// Event kinds in the events table.
const TRIGGERED: &str = "retrain_triggered";
const ACKNOWLEDGED: &str = "retrain_acknowledged";

/// Delivery attempts one pass makes at most; the others wait for the next pass.
const MAX_ATTEMPTS_PER_PASS: usize = 16;
/// A pass starts no attempt after this long (each is bounded by its sink's timeout).
const MAX_PASS_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// A sink under the name its deliveries carry, with its retry budget.
struct Route {
    name: String,
    sink: Box<dyn EventSink>,
    budget: Budget,
}

/// The trigger event store and the sinks.
pub(super) struct Outbox {
    events: Store,
    routes: Vec<Route>,
    /// `[triggers.delivery]`: the budget of a delivery whose sink is no longer configured.
    default_budget: Budget,
}

impl Outbox {
    pub(super) fn open(
        data: &Path,
        sinks: Vec<(Box<dyn EventSink>, Budget)>,
        default_budget: Budget,
    ) -> Result<Outbox, TriggerError> {
        let events = Store::open(StoreConfig {
            background: false,
            buffer_rows: 1,
            ..StoreConfig::new(trigger_dir(data).join("events"))
        })?;
        let mut routes: Vec<Route> = Vec::new();
        for (sink, budget) in sinks {
            // Two sinks of one name (two channels) keep their deliveries apart.
            let base = sink.name();
            let mut name = base.clone();
            for n in 2.. {
                if !routes.iter().any(|r| r.name == name) {
                    break;
                }
                name = format!("{base} #{n}");
            }
            routes.push(Route { name, sink, budget });
        }
        Ok(Outbox { events, routes, default_budget })
    }

    /// Whether any sink is configured.
    pub(super) fn has_sinks(&self) -> bool {
        !self.routes.is_empty()
    }

    /// A pending delivery, due now, for every sink.
    pub(super) fn plan(&self, now: i64) -> Vec<Delivery> {
        self.routes.iter().map(|r| Delivery::pending(r.name.clone(), now)).collect()
    }

    /// Stores the events not stored yet and makes every due delivery's attempt (the first
    /// or a retry), saving the state after each step.
    pub(super) fn pass(
        &self,
        data: &Path,
        state: &mut TriggerState,
        clock: &dyn Clock,
    ) -> Result<(), TriggerError> {
        let now = || clock.now().as_millis() as i64;
        let mut attempts = 0;
        // The pass's time budget counts from its first attempt: storing the events before
        // it (an fsync each, slow on a loaded disk) must not use up the sinks' time, or a
        // fire would store its event and attempt none of its deliveries.
        let mut started: Option<std::time::Instant> = None;
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
            // An engine without sinks (a verb run without the configuration) leaves the
            // event for the next one that has them.
            if !state.history[i].planned && !self.routes.is_empty() {
                state.history[i].deliveries = self.plan(now());
                state.history[i].planned = true;
                state::save(data, state)?;
            }
            for j in 0..state.history[i].deliveries.len() {
                let rec = &state.history[i];
                let (fired, id, sink) =
                    (rec.event.fired_at_ms, rec.event.id.clone(), rec.deliveries[j].sink.clone());
                if state.history[i].deliveries[j].note_cut_short() {
                    tracing::error!(id = %id, sink = %sink, "the last delivery attempt was cut short by the process ending");
                    state::save(data, state)?;
                }
                let at = now();
                let Some(route) = self.routes.iter().find(|r| r.name == sink) else {
                    // A sink this process does not have: without any sink (a verb run without
                    // the configuration) the delivery waits for a process that has it; with
                    // sinks, it was removed or changed, and is dead-lettered when its time
                    // budget is spent.
                    if !self.routes.is_empty()
                        && state.history[i].deliveries[j].orphaned(at, fired, &self.default_budget)
                    {
                        tracing::error!(id = %id, sink = %sink, "sink no longer configured: dead-lettered");
                        state::save(data, state)?;
                    }
                    continue;
                };
                if state.history[i].deliveries[j].expire(at, fired, &route.budget) {
                    tracing::error!(id = %id, sink = %route.name, "retry budget spent: dead-lettered");
                    state::save(data, state)?;
                    continue;
                }
                if !state.history[i].deliveries[j].is_due(at) {
                    continue;
                }
                if attempts >= MAX_ATTEMPTS_PER_PASS || started.is_some_and(|t| t.elapsed() > MAX_PASS_TIME) {
                    // The rest wait for the next pass, so that a backlog to a slow sink does
                    // not hold the engine (and a daemon's HTTP fire) for hours.
                    continue;
                }
                attempts += 1;
                started.get_or_insert_with(std::time::Instant::now);
                // Counted before it is made: a crash during it spends the budget and waits
                // the backoff rather than starting the command again at once.
                state.history[i].deliveries[j].begin(at, fired, &route.budget);
                state::save(data, state)?;
                let outcome = route.sink.deliver(&state.history[i].event, at);
                let d = &mut state.history[i].deliveries[j];
                d.finish(outcome, at, fired, &route.budget);
                if let Some(e) =
                    d.last_error.as_deref().filter(|_| !matches!(d.state, super::DeliveryState::Delivered))
                {
                    let next = d.next_attempt_ms.map_or("never (dead-lettered)".into(), crate::time::rfc3339);
                    tracing::warn!(id = %id, sink = %route.name, attempt = d.attempts, error = %e, next = %next, "delivery failed");
                }
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

/// Every event in `[from_ms, to_ms)`: the store's events table (deployments, the canary's
/// decisions, imports) and the trigger event store's (fired, acknowledged), as Grafana's
/// annotations and the health report show them.
pub fn all_events(
    store: &Store,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<EventRow>, modelwatch_store::StoreError> {
    let mut rows = store.read(&ReadRequest::new(Table::Events, from_ms, to_ms, Resolution::Raw))?.events;
    rows.extend(events(store.dir(), from_ms, to_ms));
    Ok(rows)
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
