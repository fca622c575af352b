//! The engine: evaluates every trigger kind, applies the cool-down, emits at most one event
//! per cool-down and keeps the state durable before anything leaves the process.
//!
//! Every change of the state is made on a copy and becomes the engine's only once it is
//! written: what a trigger consumes (the schedule's due time) is consumed in the same write
//! as the event, or the cool-down's suppression, that it produced.

use super::delivery::Outbox;
use super::error::file_error;
use super::kind::Context;
use super::state::{self, EventRecord, HISTORY, STATE_VERSION, TriggerState, trigger_dir};
use super::{EventSink, Reason, RetrainEvent, TriggerConfig, TriggerError};
use modelwatch_agent::Clock;
use modelwatch_query::Matcher;
use modelwatch_query::drift::eq;
use modelwatch_store::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What one evaluation found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evaluation {
    /// The event emitted, if any.
    pub event: Option<RetrainEvent>,
    /// Reasons that held but were suppressed by the cool-down.
    pub suppressed: Vec<Reason>,
    /// The current figures of each trigger.
    pub status: Status,
    /// What failed: a trigger that could not be evaluated (the others still fired), or the
    /// outbox. Empty when all went well.
    pub failures: Vec<Failure>,
}

/// A part of an evaluation that failed.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// The trigger's name, or `delivery` for the outbox.
    pub source: String,
    /// Why.
    pub error: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.error)
    }
}

/// Every trigger's current figures, the cool-down and the unacknowledged events.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// The time of the evaluation (ms).
    pub now_ms: i64,
    /// Figures by trigger name (`labels`, `degradation`, ...), as JSON.
    #[serde(flatten)]
    pub figures: BTreeMap<String, serde_json::Value>,
    /// One line per trigger, for people: (name, line).
    #[serde(skip)]
    pub lines: Vec<(String, String)>,
    /// The last event's time (ms).
    pub last_fire_ms: Option<i64>,
    /// Until when events are suppressed (ms).
    pub cooldown_until_ms: Option<i64>,
    /// Events suppressed so far.
    pub suppressed: u64,
    /// IDs of events not acknowledged yet.
    pub unacknowledged: Vec<String>,
    /// Deliveries still to be made or retried (`triggers history` says which).
    pub pending_deliveries: usize,
    /// Deliveries given up after the retry budget.
    pub dead_lettered: usize,
}

impl std::fmt::Display for Status {
    /// One line per trigger, then the cool-down and the unacknowledged events.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, line) in &self.lines {
            writeln!(f, "{name:<12} {line}")?;
        }
        let until = self.cooldown_until_ms.map_or("-".into(), crate::time::rfc3339);
        writeln!(f, "{:<12} until {until} ({} suppressed so far)", "cool-down", self.suppressed)?;
        let pending =
            if self.unacknowledged.is_empty() { "none".into() } else { self.unacknowledged.join(", ") };
        writeln!(f, "unacknowledged events: {pending}")?;
        write!(f, "deliveries: {} pending, {} dead-lettered", self.pending_deliveries, self.dead_lettered)
    }
}

/// Runs the triggers over a store and keeps their state in `<data>/triggers/`.
pub struct TriggerEngine {
    config: TriggerConfig,
    store: Arc<Store>,
    outbox: Outbox,
    data: PathBuf,
    clock: Arc<dyn Clock>,
    state: TriggerState,
    _lock: std::fs::File,
}

impl TriggerEngine {
    /// Opens the trigger state of `data` (creating it), takes its lock (one engine per data
    /// directory), and stores and delivers the events a crash interrupted.
    pub fn open(
        config: TriggerConfig,
        store: Arc<Store>,
        data: &Path,
        clock: Arc<dyn Clock>,
        sinks: Vec<Box<dyn EventSink>>,
    ) -> Result<TriggerEngine, TriggerError> {
        config.validate().map_err(TriggerError::Config)?;
        let dir = trigger_dir(data);
        std::fs::create_dir_all(&dir).map_err(|e| file_error(&dir, e))?;
        let lock_path = dir.join("lock");
        let lock = crate::lockfile::try_lock(&lock_path)
            .map_err(|e| file_error(&lock_path, e))?
            .ok_or_else(|| TriggerError::Locked(dir.clone()))?;
        let budget = config.delivery.budget("delivery", &Default::default()).map_err(TriggerError::Config)?;
        let mut routes: Vec<_> = sinks.into_iter().map(|s| (s, budget)).collect();
        for s in &config.sinks {
            routes.push(super::sinks::from_config(s, &config.delivery)?);
        }
        let outbox = Outbox::open(data, routes, budget)?;
        let mut state = state::load(data)?.unwrap_or_else(|| TriggerState {
            version: STATE_VERSION,
            counting_since_ms: clock.now().as_millis() as i64,
            ..TriggerState::default()
        });
        state.version = STATE_VERSION;
        state::save(data, &state)?;
        outbox.pass(data, &mut state, clock.as_ref())?;
        Ok(TriggerEngine { config, store, outbox, data: data.to_path_buf(), clock, state, _lock: lock })
    }

    /// The state as persisted.
    pub fn state(&self) -> &TriggerState {
        &self.state
    }

    fn now(&self) -> i64 {
        self.clock.now().as_millis() as i64
    }

    /// Retries the deliveries that are due, first: an event waiting for a sink is older
    /// than anything this evaluation may fire. Then runs every enabled trigger now and
    /// emits at most one event (outside the cool-down).
    ///
    /// A trigger that fails is reported in [`Evaluation::failures`] and the others still
    /// fire, rather than the whole evaluation failing and being retried: a failure that
    /// lasts (a detector query over the limits, an unreadable partition) would otherwise
    /// hold every other trigger back for as long, the weekly schedule included, which is
    /// there precisely for when the measurements fail.
    pub fn evaluate(&mut self) -> Result<Evaluation, TriggerError> {
        let mut failures = Vec::new();
        if let Err(e) = self.deliver_due() {
            failures.push(Failure { source: "delivery".into(), error: e.to_string() });
        }
        let now = self.now();
        let mut next = self.state.clone();
        let checked = check(&self.config, &self.store, &self.data, &mut next, now);
        failures.extend(
            checked
                .failures
                .iter()
                .map(|(source, e)| Failure { source: source.clone(), error: e.to_string() }),
        );
        let mut out = Evaluation { status: checked.status, failures, ..Evaluation::default() };
        if checked.reasons.is_empty() {
            self.commit(next)?;
            return Ok(out);
        }
        match self.emit(next, now, checked.reasons)? {
            Ok(e) => out.event = Some(e),
            Err(r) => out.suppressed = r,
        }
        if let Err(e) = self.deliver_due() {
            out.failures.push(Failure { source: "delivery".into(), error: e.to_string() });
        }
        Ok(out)
    }

    /// Stores what is not stored yet and makes the due delivery attempts.
    fn deliver_due(&mut self) -> Result<(), TriggerError> {
        self.outbox.pass(&self.data, &mut self.state, self.clock.as_ref())
    }

    /// Every trigger's current figures, without firing or moving the schedule.
    pub fn status(&self) -> Result<Status, TriggerError> {
        let mut state = self.state.clone();
        check(&self.config, &self.store, &self.data, &mut state, self.now()).status()
    }

    fn cooldown_until(&self) -> Option<i64> {
        cooldown_until(&self.config, &self.state)
    }

    /// Every trigger's current figures for the triggers of `data`, read without taking the
    /// engine's lock, firing, delivering or writing anything: safe beside a running engine
    /// (`modelwatch serve --triggers`, a `triggers check`).
    pub fn peek(
        config: &TriggerConfig,
        store: &Store,
        data: &Path,
        clock: &dyn Clock,
    ) -> Result<Status, TriggerError> {
        config.validate().map_err(TriggerError::Config)?;
        let now = clock.now().as_millis() as i64;
        let mut state = state::load(data)?.unwrap_or(TriggerState {
            version: STATE_VERSION,
            counting_since_ms: now,
            ..TriggerState::default()
        });
        check(config, store, data, &mut state, now).status()
    }

    /// Fires by hand; inside the cool-down it is refused with
    /// [`TriggerError::CoolingDown`] unless `force`. Two forced events in one second get
    /// IDs of their own (the sequence number).
    pub fn fire(&mut self, reason: &str, force: bool) -> Result<RetrainEvent, TriggerError> {
        let now = self.now();
        let mut next = self.state.clone();
        if force {
            next.last_fire_ms = None;
        }
        let event =
            self.emit(next, now, vec![super::manual::reason(reason, force)])?.map_err(|suppressed| {
                TriggerError::CoolingDown { until_ms: self.cooldown_until().unwrap_or(now), suppressed }
            })?;
        self.deliver_due()?;
        Ok(event)
    }

    /// One event for all `reasons` from the state `next` (which holds what the triggers
    /// consumed), unless in the cool-down (then the reasons come back). The event, its
    /// pending deliveries and what the triggers consumed are written in one state write,
    /// before the event is stored or delivered.
    fn emit(
        &mut self,
        mut next: TriggerState,
        now: i64,
        reasons: Vec<Reason>,
    ) -> Result<Result<RetrainEvent, Vec<Reason>>, TriggerError> {
        if cooldown_until(&self.config, &next).is_some_and(|until| now < until) {
            next.suppressed += 1;
            self.commit(next)?;
            return Ok(Err(reasons));
        }
        let model = if self.config.model.is_empty() { "all".to_string() } else { self.config.model.clone() };
        let stamp = crate::time::compact_stamp(now);
        // The sequence never repeats, even once the history has forgotten an event; the
        // check against the history covers IDs from state version 1, which had none.
        let mut seq = next.next_seq.max(1);
        let mut id = format!("{model}-{stamp}-{seq}");
        while next.history.iter().any(|r| r.event.id == id) {
            seq += 1;
            id = format!("{model}-{stamp}-{seq}");
        }
        next.next_seq = seq + 1;
        let event = RetrainEvent { id, model, fired_at_ms: now, reasons };
        next.last_fire_ms = Some(now);
        next.history.push(EventRecord {
            event: event.clone(),
            stored: false,
            // Without sinks (a verb run without the configuration) the next engine that has
            // them plans the deliveries.
            planned: self.outbox.has_sinks(),
            deliveries: self.outbox.plan(now),
            acked_at_ms: None,
            outcome: None,
        });
        forget_settled(&mut next.history);
        self.commit(next)?;
        Ok(Ok(event))
    }

    /// Acknowledges an event: the retraining side has it; the label count starts again.
    pub fn ack(&mut self, id: &str) -> Result<(), TriggerError> {
        self.ack_with(id, None)
    }

    /// Acknowledges an event with what retraining made of it (shown by `triggers history`).
    pub fn ack_with(&mut self, id: &str, outcome: Option<&str>) -> Result<(), TriggerError> {
        let now = self.now();
        let mut next = self.state.clone();
        let Some(rec) = next.history.iter_mut().find(|r| r.event.id == id) else {
            return Err(TriggerError::UnknownEvent(id.to_string()));
        };
        if rec.acked_at_ms.is_some() {
            return Err(TriggerError::AlreadyAcknowledged(id.to_string()));
        }
        rec.acked_at_ms = Some(now);
        rec.outcome = outcome.map(str::to_string);
        let event = rec.event.clone();
        next.counting_since_ms = now;
        self.commit(next)?;
        self.outbox.acknowledged(&event, now)
    }

    /// Writes `next` and makes it the engine's state (only once written: a failed write
    /// leaves the engine where the file is).
    fn commit(&mut self, next: TriggerState) -> Result<(), TriggerError> {
        state::save(&self.data, &next)?;
        self.state = next;
        Ok(())
    }
}

/// Drops the oldest events past [`HISTORY`], but never one still waiting for a sink.
fn forget_settled(history: &mut Vec<EventRecord>) {
    while history.len() > HISTORY {
        match history.iter().position(EventRecord::settled) {
            Some(i) => {
                history.remove(i);
            }
            None => break,
        }
    }
}

fn cooldown_until(config: &TriggerConfig, state: &TriggerState) -> Option<i64> {
    let cd = config.cooldown_ms().unwrap_or(86_400_000);
    state.last_fire_ms.map(|t| t + cd)
}

/// What [`check`] found: the reasons that hold, every trigger's figures, and the triggers
/// that failed.
struct Checked {
    reasons: Vec<Reason>,
    status: Status,
    failures: Vec<(String, TriggerError)>,
}

impl Checked {
    /// The status, or the first failure (for the verbs that only look).
    fn status(self) -> Result<Status, TriggerError> {
        match self.failures.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(self.status),
        }
    }
}

/// Runs every enabled trigger at `now` over `state`. A trigger that fails leaves `state` as
/// it was, and the others run.
fn check(config: &TriggerConfig, store: &Store, data: &Path, state: &mut TriggerState, now: i64) -> Checked {
    let matchers: Vec<Matcher> =
        if config.model.is_empty() { Vec::new() } else { vec![eq("model", &config.model)] };
    let mut out = Checked {
        reasons: Vec::new(),
        status: Status { now_ms: now, ..Status::default() },
        failures: Vec::new(),
    };
    for kind in config.kinds().into_iter().filter(|k| k.enabled()) {
        let mut scratch = state.clone();
        let mut ctx = Context { store, data, matchers: &matchers, now_ms: now, state: &mut scratch };
        match kind.evaluate(&mut ctx) {
            Ok(c) => {
                *state = scratch;
                out.reasons.extend(c.reasons);
                out.status.figures.insert(kind.name().into(), c.figures);
                out.status.lines.push((kind.name().into(), c.line));
            }
            Err(e) => {
                out.status.figures.insert(kind.name().into(), serde_json::json!({ "error": e.to_string() }));
                out.status.lines.push((kind.name().into(), format!("error: {e}")));
                out.failures.push((kind.name().into(), e));
            }
        }
    }
    let status = &mut out.status;
    status.last_fire_ms = state.last_fire_ms;
    status.cooldown_until_ms = cooldown_until(config, state);
    status.suppressed = state.suppressed;
    status.unacknowledged =
        state.history.iter().filter(|r| r.acked_at_ms.is_none()).map(|r| r.event.id.clone()).collect();
    let deliveries = state.history.iter().flat_map(|r| &r.deliveries);
    status.pending_deliveries = deliveries.clone().filter(|d| d.is_pending()).count();
    status.dead_lettered = deliveries.filter(|d| d.state == super::DeliveryState::DeadLettered).count();
    out
}
