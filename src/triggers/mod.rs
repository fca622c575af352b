//! Retraining triggers: decide without a person when a model must be retrained, and tell
//! whoever retrains it, with the evidence.
//!
//! [`TriggerEngine::evaluate`] runs every trigger at the clock's `now`:
//! - **labels**: `labels.count` labelled examples (feedback) since the last retraining
//!   (the last acknowledged event; counted from the store, so no count is lost in a crash).
//! - **degradation**: a quality metric (precision by default) over the last `window`
//!   (24 h) fell by at least `drop` (10 %) relative to the window before (or to a fixed
//!   baseline range, `against`), overall or in a
//!   segment — and only when the fall is significant: both windows hold at least
//!   `min_labels` (100) labels behind the metric, and a one-sided two-proportion z-test says
//!   p < `alpha` (0.01) after a Bonferroni correction over the groups compared (overall and
//!   each segment). Noise in small windows or in one of many segments does not fire it; the
//!   stricter default `alpha` is because the trigger is evaluated again and again.
//! - **schedule**: a cron expression (weekly by default: Monday 03:00 UTC), for gradual
//!   drift nobody measures.
//! - **drift**: the share of drifting features between `reference` and the last `window`
//!   reaches `share` (0.5), or the CUSUM detector alarms on `detector` (a query, e.g.
//!   `mean(confidence)`) over the window.
//! - **manual**: [`TriggerEngine::fire`] (`modelwatch triggers fire --reason ...`).
//!
//! Whatever fires, at most one event is emitted per `cooldown` (24 h): the reasons that fire
//! together make one event, with a stable ID (`<model>-<UTC time>`), its reasons and their
//! evidence (the figures that crossed the line and the windows they came from). The event is
//! written to the trigger state (`<data>/triggers/state.json`, replaced atomically) before
//! anything else, so a crash after it never fires twice; it is then appended to the events
//! table of the trigger event store (`<data>/triggers/events`, a store of its own, which
//! Grafana's annotations and `/api/v1/events` read too) and delivered to the sinks; a
//! delivery interrupted by a crash is retried at the next start (sinks see an event at
//! least once, with the same ID). [`TriggerEngine::ack`] acknowledges an event: the
//! retraining side has taken it, and the label count starts again.
//!
//! # Embedded beside the agent
//!
//! ```
//! use modelwatch::triggers::{ChannelSink, TriggerConfig, TriggerEngine};
//! use modelwatch::{Agent, ManualClock, Prediction, Timestamp};
//! use modelwatch_store::{Store, StoreConfig};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(StoreConfig::new(dir.path()))?);
//! let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)));
//! let agent = Agent::builder("pii").segments(["email"]).clock(clock.clone()).build(store.clone())?;
//! let (events, retrainer) = crossbeam_channel::unbounded();
//! let mut config = TriggerConfig::default();
//! config.labels.count = 3;
//! let mut triggers =
//!     TriggerEngine::open(config, store.clone(), dir.path(), clock.clone(), vec![Box::new(ChannelSink(events))])?;
//!
//! for _ in 0..3 {
//!     agent.handle().record(&Prediction::new("email", Duration::from_millis(2), 0.9));
//!     agent.handle().feedback("email", 0.9, true);
//! }
//! clock.advance(Duration::from_secs(10));
//! agent.flush_due()?;
//! triggers.evaluate()?; // call it every minute or so, e.g. from a thread
//!
//! let event = retrainer.try_recv()?;
//! assert_eq!(event.reasons[0].trigger, "labels");
//! triggers.ack(&event.id)?; // retraining has it: counting starts again
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod sinks;

pub use config::{
    ConfigFile, DegradationTrigger, DriftTrigger, LabelsTrigger, ScheduleTrigger, SinkConfig, TriggerConfig,
};
pub use sinks::{CallbackSink, ChannelSink, CommandSink, EventSink, WebhookSink};

use crate::serve::parse_duration;
use modelwatch_agent::Clock;
use modelwatch_query::Matcher;
use modelwatch_query::drift::{self, DriftConfig, Verdict, eq};
use modelwatch_store::{EventRow, Rows, Store, StoreConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Why the triggers could not run, naming the file, key or event involved.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// A configuration value is wrong (the message names the key).
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Another engine holds this data directory's triggers.
    #[error(
        "{0}: another process runs the triggers of this data directory (a `modelwatch serve --triggers`, whose POST /api/v1/triggers/fire and /ack/ID do this, or an embedded engine)"
    )]
    Locked(PathBuf),
    /// No event has this ID.
    #[error("no trigger event {0:?} (see `modelwatch triggers history`)")]
    UnknownEvent(String),
    /// The event was acknowledged before.
    #[error("event {0:?} was acknowledged already")]
    AlreadyAcknowledged(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] modelwatch_store::StoreError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] modelwatch_query::QueryError),
    /// A query in the configuration does not parse.
    #[error("{0}")]
    Parse(#[from] modelwatch_query::ParseError),
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> TriggerError {
    TriggerError::File { path: path.to_path_buf(), message: e.to_string() }
}

/// One reason an event fired, with its evidence.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reason {
    /// `labels`, `degradation`, `schedule`, `drift` or `manual`.
    pub trigger: String,
    /// In words.
    pub summary: String,
    /// The figures that crossed the line and the windows they came from.
    pub evidence: serde_json::Value,
}

/// A retraining event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RetrainEvent {
    /// Stable ID: `<model>-<UTC time of the decision>`.
    pub id: String,
    /// The model.
    pub model: String,
    /// When it fired (ms).
    pub fired_at_ms: i64,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// A sink's result for an event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    /// Which sink (`webhook <url>`, `command <program>`, ...).
    pub sink: String,
    /// Whether it took the event.
    pub ok: bool,
    /// Status, exit code or error.
    pub detail: String,
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

/// The persisted trigger state.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TriggerState {
    /// Format version.
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

/// What one evaluation found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evaluation {
    /// The event emitted, if any.
    pub event: Option<RetrainEvent>,
    /// Reasons that held but were suppressed by the cool-down.
    pub suppressed: Vec<Reason>,
    /// The current figures of each trigger, for `triggers status`.
    pub status: serde_json::Value,
}

/// Runs the triggers over a store and keeps their state in `<data>/triggers/`.
pub struct TriggerEngine {
    config: TriggerConfig,
    store: Arc<Store>,
    events: Store,
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    sinks: Vec<Box<dyn EventSink>>,
    state: TriggerState,
    _lock: std::fs::File,
}

/// The trigger directory of a data directory.
pub fn trigger_dir(data: &Path) -> PathBuf {
    data.join("triggers")
}

const HISTORY: usize = 1_000;

impl TriggerEngine {
    /// Opens the trigger state of `data` (creating it), takes its lock (one engine per data
    /// directory), and redelivers events a crash interrupted.
    pub fn open(
        config: TriggerConfig,
        store: Arc<Store>,
        data: &Path,
        clock: Arc<dyn Clock>,
        mut sinks: Vec<Box<dyn EventSink>>,
    ) -> Result<TriggerEngine, TriggerError> {
        config.validate().map_err(TriggerError::Config)?;
        let dir = trigger_dir(data);
        std::fs::create_dir_all(&dir).map_err(|e| file_error(&dir, e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| file_error(&dir.join("lock"), e))?;
        lock.try_lock().map_err(|_| TriggerError::Locked(dir.clone()))?;
        for s in &config.sinks {
            sinks.push(sinks::from_config(s)?);
        }
        let events = Store::open(StoreConfig {
            background: false,
            buffer_rows: 1,
            ..StoreConfig::new(dir.join("events"))
        })?;
        let state_path = dir.join("state.json");
        let state = match std::fs::read(&state_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| file_error(&state_path, format!("unreadable trigger state: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TriggerState {
                version: 1,
                counting_since_ms: clock.now().as_millis() as i64,
                ..TriggerState::default()
            },
            Err(e) => return Err(file_error(&state_path, e)),
        };
        let mut engine = TriggerEngine { config, store, events, dir, clock, sinks, state, _lock: lock };
        engine.save()?;
        engine.finish_pending()?;
        Ok(engine)
    }

    /// The state as persisted.
    pub fn state(&self) -> &TriggerState {
        &self.state
    }

    fn save(&self) -> Result<(), TriggerError> {
        let path = self.dir.join("state.json");
        let bytes = serde_json::to_vec_pretty(&self.state).map_err(|e| file_error(&path, e))?;
        modelwatch_store::publish(&modelwatch_store::RealFs, &path, &bytes).map_err(|e| file_error(&path, e))
    }

    fn now(&self) -> i64 {
        self.clock.now().as_millis() as i64
    }

    fn matchers(&self) -> Vec<Matcher> {
        if self.config.model.is_empty() { Vec::new() } else { vec![eq("model", &self.config.model)] }
    }

    /// Stores and delivers events whose storing or delivery a crash interrupted.
    fn finish_pending(&mut self) -> Result<(), TriggerError> {
        for i in 0..self.state.history.len() {
            if !self.state.history[i].stored {
                let e = self.state.history[i].event.clone();
                // A crash after the append but before the state said so: append once only.
                if !self.stored_already(&e)? {
                    self.store_event(&e, "retrain_triggered")?;
                }
                self.state.history[i].stored = true;
                self.save()?;
            }
            if !self.state.history[i].delivered {
                let e = self.state.history[i].event.clone();
                let deliveries = self.sinks.iter().map(|s| s.deliver(&e)).collect();
                self.state.history[i].deliveries = deliveries;
                self.state.history[i].delivered = true;
                self.save()?;
            }
        }
        Ok(())
    }

    fn stored_already(&self, e: &RetrainEvent) -> Result<bool, TriggerError> {
        let req = modelwatch_store::ReadRequest::new(
            modelwatch_store::Table::Events,
            e.fired_at_ms,
            e.fired_at_ms + 1,
            modelwatch_store::Resolution::Raw,
        );
        let needle = format!("\"id\":{}", serde_json::Value::String(e.id.clone()));
        Ok(self
            .events
            .read(&req)?
            .events
            .iter()
            .any(|r| &*r.kind == "retrain_triggered" && r.message.contains(&needle)))
    }

    fn store_event(&self, e: &RetrainEvent, kind: &str) -> Result<(), TriggerError> {
        let message = serde_json::json!({ "id": e.id, "reasons": e.reasons }).to_string();
        self.events.append(Rows {
            events: vec![EventRow {
                time_ms: e.fired_at_ms,
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

    /// Runs every enabled trigger now; emits at most one event (outside the cool-down).
    pub fn evaluate(&mut self) -> Result<Evaluation, TriggerError> {
        let now = self.now();
        let mut reasons = Vec::new();
        let mut status = serde_json::Map::new();
        if self.config.labels.enabled {
            let (r, s) = self.labels(now)?;
            reasons.extend(r);
            status.insert("labels".into(), s);
        }
        if self.config.degradation.enabled {
            let (r, s) = self.degradation(now)?;
            reasons.extend(r);
            status.insert("degradation".into(), s);
        }
        if self.config.schedule.enabled {
            let (r, s) = self.schedule(now)?;
            reasons.extend(r);
            status.insert("schedule".into(), s);
        }
        if self.config.drift.enabled {
            let (r, s) = self.drift(now)?;
            reasons.extend(r);
            status.insert("drift".into(), s);
        }
        status.insert("cooldown_until_ms".into(), serde_json::json!(self.cooldown_until()));
        let mut out = Evaluation { status: serde_json::Value::Object(status), ..Evaluation::default() };
        if reasons.is_empty() {
            self.save()?;
            return Ok(out);
        }
        match self.emit(now, reasons)? {
            Ok(e) => out.event = Some(e),
            Err(r) => out.suppressed = r,
        }
        Ok(out)
    }

    /// Every trigger's current figures, without firing or moving the schedule.
    pub fn status(&mut self) -> Result<serde_json::Value, TriggerError> {
        let now = self.now();
        let saved = self.state.clone();
        let mut status = serde_json::Map::new();
        status.insert("now_ms".into(), serde_json::json!(now));
        if self.config.labels.enabled {
            status.insert("labels".into(), self.labels(now)?.1);
        }
        if self.config.degradation.enabled {
            status.insert("degradation".into(), self.degradation(now)?.1);
        }
        if self.config.schedule.enabled {
            status.insert("schedule".into(), self.schedule(now)?.1);
        }
        if self.config.drift.enabled {
            status.insert("drift".into(), self.drift(now)?.1);
        }
        self.state = saved;
        status.insert("last_fire_ms".into(), serde_json::json!(self.state.last_fire_ms));
        status.insert("cooldown_until_ms".into(), serde_json::json!(self.cooldown_until()));
        status.insert("suppressed".into(), serde_json::json!(self.state.suppressed));
        let pending: Vec<&str> = self
            .state
            .history
            .iter()
            .filter(|r| r.acked_at_ms.is_none())
            .map(|r| r.event.id.as_str())
            .collect();
        status.insert("unacknowledged".into(), serde_json::json!(pending));
        Ok(serde_json::Value::Object(status))
    }

    fn cooldown_until(&self) -> Option<i64> {
        let cd = parse_duration(&self.config.cooldown).unwrap_or(86_400_000);
        self.state.last_fire_ms.map(|t| t + cd)
    }

    /// Fires by hand (the cool-down applies unless `force`).
    pub fn fire(
        &mut self,
        reason: &str,
        force: bool,
    ) -> Result<Result<RetrainEvent, Vec<Reason>>, TriggerError> {
        let now = self.now();
        let r = Reason {
            trigger: "manual".into(),
            summary: reason.to_string(),
            evidence: serde_json::json!({ "reason": reason, "forced": force }),
        };
        if force {
            self.state.last_fire_ms = None;
        }
        self.emit(now, vec![r])
    }

    /// One event for all `reasons`, unless in the cool-down. The state is durable before
    /// the event is stored or delivered.
    fn emit(
        &mut self,
        now: i64,
        reasons: Vec<Reason>,
    ) -> Result<Result<RetrainEvent, Vec<Reason>>, TriggerError> {
        if self.cooldown_until().is_some_and(|until| now < until) {
            self.state.suppressed += 1;
            self.save()?;
            return Ok(Err(reasons));
        }
        let model = if self.config.model.is_empty() { "all".to_string() } else { self.config.model.clone() };
        let stamp = chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|| now.to_string());
        let event = RetrainEvent { id: format!("{model}-{stamp}"), model, fired_at_ms: now, reasons };
        self.state.last_fire_ms = Some(now);
        self.state.history.push(EventRecord {
            event: event.clone(),
            stored: false,
            deliveries: Vec::new(),
            delivered: false,
            acked_at_ms: None,
        });
        if self.state.history.len() > HISTORY {
            let extra = self.state.history.len() - HISTORY;
            self.state.history.drain(..extra);
        }
        self.save()?;
        self.finish_pending()?;
        Ok(Ok(event))
    }

    /// Acknowledges an event: the retraining side has it; the label count starts again.
    pub fn ack(&mut self, id: &str) -> Result<(), TriggerError> {
        let now = self.now();
        let Some(rec) = self.state.history.iter_mut().find(|r| r.event.id == id) else {
            return Err(TriggerError::UnknownEvent(id.to_string()));
        };
        if rec.acked_at_ms.is_some() {
            return Err(TriggerError::AlreadyAcknowledged(id.to_string()));
        }
        rec.acked_at_ms = Some(now);
        let event = rec.event.clone();
        self.state.counting_since_ms = now;
        self.save()?;
        self.store_event(&RetrainEvent { fired_at_ms: now, ..event }, "retrain_acknowledged")?;
        Ok(())
    }

    fn sum(&self, expr: &str, from: i64, to: i64) -> Result<f64, TriggerError> {
        let mut q = modelwatch_query::parse(expr)?;
        q.matchers.extend(self.matchers());
        let range = modelwatch_query::Range { from_ms: from, to_ms: to, step_ms: (to - from).max(1) };
        Ok(modelwatch_query::run(&self.store, &q, range, modelwatch_query::Limits::default())?
            .iter()
            .flat_map(|s| &s.points)
            .map(|p| p.1)
            .sum())
    }

    fn labels(&self, now: i64) -> Result<(Option<Reason>, serde_json::Value), TriggerError> {
        let since = self.state.counting_since_ms;
        let n = if now > since { self.sum("sum(feedback)", since, now)? } else { 0.0 };
        let need = self.config.labels.count as f64;
        let status = serde_json::json!({ "labels": n, "needed": need, "since_ms": since });
        let reason = (n >= need).then(|| Reason {
            trigger: "labels".into(),
            summary: format!("{n:.0} labelled examples since the last retraining (threshold {need:.0})"),
            evidence: status.clone(),
        });
        Ok((reason, status))
    }

    fn degradation(&self, now: i64) -> Result<(Vec<Reason>, serde_json::Value), TriggerError> {
        let c = &self.config.degradation;
        let w = parse_duration(&c.window).map_err(TriggerError::Config)?;
        let cur = (now - w, now);
        let prev = if c.against.is_empty() {
            (now - 2 * w, now - w)
        } else {
            crate::serve::parse_range(&c.against, now)
                .map_err(|e| TriggerError::Config(format!("triggers.degradation.against: {e}")))?
        };
        let mut groups: Vec<Vec<String>> = vec![Vec::new()];
        if c.by_segment {
            groups.push(vec!["segment".into()]);
        }
        let mut reasons = Vec::new();
        let mut checked = Vec::new();
        let mut candidates = Vec::new();
        for by in groups {
            let now_q = modelwatch_query::quality::quality(
                &self.store,
                &self.matchers(),
                &by,
                cur.0,
                cur.1,
                None,
                c.threshold,
            )?;
            let before = modelwatch_query::quality::quality(
                &self.store,
                &self.matchers(),
                &by,
                prev.0,
                prev.1,
                None,
                c.threshold,
            )?;
            for q in &now_q {
                let Some(b) = before.iter().find(|b| b.tags == q.tags) else { continue };
                let (k1, n1, k0, n0) = metric_counts(&c.metric, &q.realised, &b.realised);
                let (v1, v0) = (k1 / n1.max(1.0), k0 / n0.max(1.0));
                let enough = n1 >= c.min_labels as f64 && n0 >= c.min_labels as f64;
                let fall = if v0 > 0.0 { (v0 - v1) / v0 } else { 0.0 };
                let p = one_sided_p(k0, n0, k1, n1);
                let group = if q.tags.is_empty() {
                    "overall".to_string()
                } else {
                    q.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
                };
                let fig = serde_json::json!({
                    "group": group, "metric": c.metric, "current": v1, "previous": v0, "relative_fall": fall,
                    "labels_current": n1, "labels_previous": n0, "p_value": p,
                    "current_window": [cur.0, cur.1], "previous_window": [prev.0, prev.1],
                });
                if enough && fall >= c.drop {
                    candidates.push(Reason {
                        trigger: "degradation".into(),
                        summary: format!(
                            "{} {group} fell {:.1} % ({v0:.3} -> {v1:.3}, p = {p:.2e})",
                            c.metric,
                            fall * 100.0
                        ),
                        evidence: fig.clone(),
                    });
                }
                checked.push(fig);
            }
        }
        // Bonferroni over every group compared.
        let m = checked.len().max(1) as f64;
        for mut r in candidates {
            let p = r.evidence["p_value"].as_f64().unwrap_or(1.0);
            if p * m < c.alpha {
                r.evidence["p_value_corrected"] = serde_json::json!((p * m).min(1.0));
                reasons.push(r);
            }
        }
        Ok((reasons, serde_json::Value::Array(checked)))
    }

    fn schedule(&mut self, now: i64) -> Result<(Option<Reason>, serde_json::Value), TriggerError> {
        let schedule = cron::Schedule::from_str(&self.config.schedule.cron)
            .map_err(|e| TriggerError::Config(e.to_string()))?;
        let checked = *self.state.schedule_checked_ms.get_or_insert(now);
        let after = chrono::DateTime::from_timestamp_millis(checked).unwrap_or_default();
        let due = schedule.after(&after).next().map(|t| t.timestamp_millis());
        let status = serde_json::json!({ "cron": self.config.schedule.cron, "next_ms": due });
        match due {
            Some(t) if t <= now => {
                self.state.schedule_checked_ms = Some(now);
                let when = crate::baseline::rfc3339(t);
                Ok((
                    Some(Reason {
                        trigger: "schedule".into(),
                        summary: format!("scheduled retraining ({} at {when})", self.config.schedule.cron),
                        evidence: serde_json::json!({ "cron": self.config.schedule.cron, "due_ms": t }),
                    }),
                    status,
                ))
            }
            _ => Ok((None, status)),
        }
    }

    fn drift(&self, now: i64) -> Result<(Vec<Reason>, serde_json::Value), TriggerError> {
        let c = &self.config.drift;
        let w = parse_duration(&c.window).map_err(TriggerError::Config)?;
        let mut reasons = Vec::new();
        let data = self.dir.parent().unwrap_or(Path::new("."));
        let mut status = serde_json::Map::new();
        match crate::baseline::reference(&self.store, data, &c.reference, &self.matchers(), now) {
            Ok((reference, desc)) => {
                let current = drift::profile(&self.store, &self.matchers(), now - w, now)?;
                let report = drift::compare(&reference, &current, &DriftConfig::default());
                let drifting: Vec<serde_json::Value> = report
                    .features
                    .iter()
                    .filter(|f| f.verdict == Verdict::Drift)
                    .map(|f| {
                        let s = f.stats.first();
                        serde_json::json!({ "feature": f.feature, "statistic": s.map(|s| s.statistic), "value": s.map(|s| s.value) })
                    })
                    .collect();
                let fig = serde_json::json!({
                    "share": report.drifting_share, "threshold": c.share, "reference": desc,
                    "current_window": [now - w, now], "drifting": drifting,
                });
                if !report.features.is_empty() && report.drifting_share >= c.share {
                    reasons.push(Reason {
                        trigger: "drift".into(),
                        summary: format!(
                            "{:.0} % of features drift (threshold {:.0} %)",
                            report.drifting_share * 100.0,
                            c.share * 100.0
                        ),
                        evidence: fig.clone(),
                    });
                }
                status.insert("share".into(), fig);
            }
            Err(e) => {
                status.insert("share".into(), serde_json::json!({ "error": e.to_string() }));
            }
        }
        if !c.detector.is_empty() {
            use modelwatch_query::detect::Detector;
            let step = parse_duration(&c.detector_step).map_err(TriggerError::Config)?;
            let mut q = modelwatch_query::parse(&c.detector)?;
            q.matchers.extend(self.matchers());
            // The detector learns its level from 200 values before it watches: read enough
            // history for the warm-up and the window.
            let from = (now - w - 250 * step).div_euclid(step) * step;
            let range = modelwatch_query::Range { from_ms: from, to_ms: now, step_ms: step };
            let series = modelwatch_query::run(&self.store, &q, range, modelwatch_query::Limits::default())?;
            let alarms: Vec<_> = series
                .first()
                .map(|s| modelwatch_query::detect::Cusum::default().run(&s.points))
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a.time_ms >= now - w)
                .collect();
            if let Some(a) = alarms.first() {
                reasons.push(Reason {
                    trigger: "drift".into(),
                    summary: format!("CUSUM alarm on {} at {}", c.detector, crate::baseline::rfc3339(a.time_ms)),
                    evidence: serde_json::json!({
                        "detector": "cusum", "query": c.detector, "alarm_ms": a.time_ms,
                        "direction": format!("{:?}", a.direction), "baseline": a.baseline, "statistic": a.statistic,
                    }),
                });
            }
            status.insert(
                "detector".into(),
                serde_json::json!({ "query": c.detector, "alarms": alarms.len() }),
            );
        }
        Ok((reasons, serde_json::Value::Object(status)))
    }
}

/// (successes, trials) of the metric now and before: precision = TP / predicted positive,
/// recall = TP / positives.
fn metric_counts(
    metric: &str,
    now: &modelwatch_query::quality::Quality,
    before: &modelwatch_query::quality::Quality,
) -> (f64, f64, f64, f64) {
    let counts = |q: &modelwatch_query::quality::Quality| {
        let tp = q.recall * q.positives;
        let trials = if metric == "recall" {
            q.positives
        } else if q.precision > 0.0 {
            tp / q.precision
        } else {
            0.0
        };
        (if tp.is_finite() { tp } else { 0.0 }, if trials.is_finite() { trials } else { 0.0 })
    };
    let (k1, n1) = counts(now);
    let (k0, n0) = counts(before);
    (k1, n1, k0, n0)
}

/// One-sided p-value that the proportion `k1 / n1` is below `k0 / n0` (pooled z-test).
fn one_sided_p(k0: f64, n0: f64, k1: f64, n1: f64) -> f64 {
    if n0 <= 0.0 || n1 <= 0.0 {
        return 1.0;
    }
    let (p0, p1) = (k0 / n0, k1 / n1);
    let p = (k0 + k1) / (n0 + n1);
    let se = (p * (1.0 - p) * (1.0 / n0 + 1.0 / n1)).sqrt();
    if se == 0.0 {
        return if p1 < p0 { 0.0 } else { 1.0 };
    }
    let z = (p0 - p1) / se;
    0.5 * libm_erfc(z / std::f64::consts::SQRT_2)
}

/// erfc(x) from the regularised gamma function: erfc(x) = Q(1/2, x²) for x ≥ 0.
fn libm_erfc(x: f64) -> f64 {
    let q = modelwatch_query::stats::gamma_q(0.5, x * x);
    if x >= 0.0 { q } else { 2.0 - q }
}

/// Reads `triggers` from a data directory without running them (for `triggers history`).
pub fn read_state(data: &Path) -> Result<TriggerState, TriggerError> {
    let path = trigger_dir(data).join("state.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| file_error(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TriggerState::default()),
        Err(e) => Err(file_error(&path, e)),
    }
}

/// The trigger events (fired, acknowledged) from the trigger event store, for annotations.
pub fn events(data: &Path, from_ms: i64, to_ms: i64) -> Vec<EventRow> {
    let dir = trigger_dir(data).join("events");
    if !dir.exists() {
        return Vec::new();
    }
    Store::open_read_only(StoreConfig::new(dir))
        .and_then(|s| {
            s.read(&modelwatch_store::ReadRequest::new(
                modelwatch_store::Table::Events,
                from_ms,
                to_ms,
                modelwatch_store::Resolution::Raw,
            ))
        })
        .map(|r| r.events)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_z_test_is_one_sided_and_calibrated() {
        // 80 % of 1,000 then 70 % of 1,000: z ≈ 5.2.
        assert!(one_sided_p(800.0, 1_000.0, 700.0, 1_000.0) < 1e-6);
        // A rise is never significant as a fall.
        assert!(one_sided_p(700.0, 1_000.0, 800.0, 1_000.0) > 0.99);
        // Equal proportions: p = 0.5.
        assert!((one_sided_p(50.0, 100.0, 50.0, 100.0) - 0.5).abs() < 1e-12);
        // z = 1.6449 ↔ p = 0.05: erfc by the gamma function.
        assert!((0.5 * libm_erfc(1.644_853_626_951_472 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-9);
    }

    #[test]
    fn the_default_configuration_is_valid_and_bad_values_are_named() {
        TriggerConfig::default().validate().unwrap();
        let bad = TriggerConfig {
            schedule: ScheduleTrigger { enabled: true, cron: "every tuesday".into() },
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("triggers.schedule.cron"));
        let c: ConfigFile =
            toml::from_str("[triggers]\ncooldown = \"6h\"\n[triggers.labels]\ncount = 50\n").unwrap();
        assert_eq!(
            (c.triggers.cooldown.as_str(), c.triggers.labels.count, c.triggers.labels.enabled),
            ("6h", 50, true)
        );
        assert!(
            toml::from_str::<ConfigFile>("[triggers]\ncooldwon = \"6h\"\n")
                .unwrap_err()
                .to_string()
                .contains("cooldwon")
        );
    }
}
