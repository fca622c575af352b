//! Retraining triggers: decide without a person when a model must be retrained, and tell
//! whoever retrains it, with the evidence.
//!
//! [`TriggerEngine::evaluate`] runs every trigger kind at the clock's `now`, each in a file
//! of its own implementing [`Trigger`]:
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
//!   reaches `share` (0.5), or an online detector (`detector_kind`: CUSUM, Page–Hinkley or
//!   ADWIN, set by its false-alarm rate `detector_ert`) alarms on `detector` (a query, e.g.
//!   `mean(confidence)`) over the window.
//! - **manual**: [`TriggerEngine::fire`] (`modelwatch triggers fire --reason ...`).
//!
//! Whatever fires, at most one event is emitted per `cooldown` (24 h): the reasons that fire
//! together make one event, with a unique ID (`<model>-<UTC time>-<seq>`; the sequence
//! number is kept in the state, so two forced events in one second, or events before and
//! after a restart, never share one), its reasons and their evidence (the figures that
//! crossed the line and the windows they came from). A trigger that fails (a query over the
//! limits, an unreadable partition) is reported in [`Evaluation::failures`] and the others
//! still fire: what a trigger consumes — the schedule's due time — is consumed only in the
//! same state write as the event it produced.
//!
//! # Delivery: the outbox
//!
//! The event and one pending [`Delivery`] per sink are written to the trigger state
//! (`<data>/triggers/state.json`, versioned, replaced atomically) before anything else, so
//! a crash after it never fires twice. The event is then appended to the events table of
//! the trigger event store (`<data>/triggers/events`, a store of its own, which Grafana's
//! annotations and `/api/v1/events` read too) and each sink gets an attempt. A sink that
//! fails (a webhook down or answering non-2xx, a command exiting non-zero or timed out) is
//! retried with exponential backoff — `backoff` (30 s) doubled after each failure, at most
//! `max_backoff` (1 h) — until it takes the event or its retry budget is spent:
//! `max_attempts` (10) attempts or `give_up_after` (24 h) from the event, whichever comes
//! first; then the delivery is dead-lettered and nothing tries again (`[triggers.delivery]`,
//! each sink may override it). Every [`TriggerEngine::open`], evaluation, `triggers check`
//! and tick of the [`TriggerWorker`] first makes the attempts that are due, so retries go on
//! across restarts and cron-driven checks (at most 16 attempts in 20 s per pass, the rest
//! at the next); the state is saved before every attempt (which counts it, so one cut short
//! by a crash spends the budget and waits its backoff) and after it, and a failure never
//! marks a delivery done. A delivery belongs to its sink by the sink's identity (a
//! webhook's URL, a command's whole command line), so reordering sinks changes nothing; a
//! removed sink's delivery is dead-lettered when its `give_up_after` is up, and an event
//! fired by an engine without sinks is planned by the next one that has them. Sinks see an event at least once, always with the
//! same ID (`X-Modelwatch-Event`, `MODELWATCH_EVENT_ID`): a receiver deduplicates by it.
//! `modelwatch triggers history` shows each delivery's state, attempts, last error and
//! next attempt. [`TriggerEngine::ack`] acknowledges an event: the retraining side has taken
//! it, and the label count starts again.
//!
//! The webhook signs with a timestamp, as Stripe does: `X-Modelwatch-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; a receiver that checks the HMAC
//! and refuses a `t` older than its replay window (5 minutes) cannot be fed a captured
//! request again. Redirects are not followed (a 3xx is a failed attempt naming the
//! `Location`). The command gets the event on stdin (written from a thread of its own), in a
//! file (`MODELWATCH_EVENT_FILE`) and, up to 16 KiB, in `MODELWATCH_EVENT_JSON`; it runs in a
//! process group of its own, killed whole at the timeout.
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
//! assert_eq!(event.reasons[0].trigger(), "labels");
//! triggers.ack(&event.id)?; // retraining has it: counting starts again
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! - `kind`: the [`Trigger`] trait and what a trigger is given; `labels`, `degradation`,
//!   `schedule`, `drift` and `manual`: one file per kind, with its configuration section
//!   and its typed evidence.
//! - `config`: the `[triggers]` section and the configuration file; `event`: the event,
//!   its reasons and their [`Evidence`]; `state`: the versioned state file; `history`: the
//!   events with the registry's entries each caused.
//! - `engine`: evaluation, cool-down, firing and acknowledging; `delivery`: the outbox,
//!   storing and delivering events exactly as far as a crash let them get, retrying what
//!   failed; `retry`: the retry budget and a [`Delivery`]'s life; `sinks`: one file per
//!   sink; `worker`: the engine on its own thread for a daemon; `error`: [`TriggerError`].

mod config;
mod degradation;
mod delivery;
mod drift;
mod engine;
mod error;
mod event;
mod history;
mod kind;
mod labels;
mod manual;
mod retry;
mod schedule;
mod sinks;
mod state;
mod worker;

pub use config::{ConfigFile, TriggerConfig};
pub use degradation::{DegradationTrigger, GroupFigures};
pub use delivery::{all_events, events};
pub use drift::{DetectorAlarm, DriftEvidence, DriftTrigger, DriftingFeature, ShareFigures};
pub use engine::{Evaluation, Failure, Status, TriggerEngine};
pub use error::TriggerError;
pub use event::{Evidence, Reason, RetrainEvent};
pub use history::{HistoryRow, with_registry};
pub use kind::{Check, Context, Trigger};
pub use labels::{LabelsFigures, LabelsTrigger};
pub use manual::ManualEvidence;
pub use retry::{Budget, Delivery, DeliveryState, RetryPolicy};
pub use schedule::{ScheduleEvidence, ScheduleTrigger};
pub use sinks::{Callback, CallbackSink, ChannelSink, CommandSink, EventSink, SinkConfig, WebhookSink};
pub use state::{EventRecord, STATE_VERSION, TriggerState, read_state, trigger_dir};
pub use worker::{TriggerCommand, TriggerWorker};
