//! The engine on a thread of its own, for a daemon (`modelwatch serve --triggers`): it
//! evaluates every `every` (each evaluation first retries the deliveries due) and takes commands (fire, acknowledge) from other threads, such
//! as HTTP handlers, between evaluations. Answers carry typed errors.

use super::{RetrainEvent, TriggerEngine, TriggerError};
use crossbeam_channel::{Receiver, Sender};
use modelwatch_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request to the engine's thread, with where to answer.
pub enum TriggerCommand {
    /// Fire by hand.
    Fire {
        /// Why.
        reason: String,
        /// Past the cool-down.
        force: bool,
        /// The event, or why not.
        reply: Sender<Result<RetrainEvent, TriggerError>>,
    },
    /// Acknowledge an event.
    Ack {
        /// Its ID.
        id: String,
        /// What retraining made of it, if the acknowledger says.
        outcome: Option<String>,
        /// Done, or why not.
        reply: Sender<Result<(), TriggerError>>,
    },
}

/// The running thread; dropping it stops the thread and waits for it.
pub struct TriggerWorker {
    commands: Sender<TriggerCommand>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TriggerWorker {
    /// Starts the engine's thread: it refreshes `store` (a read-only store follows its
    /// writer) and evaluates every `every`.
    pub fn spawn(
        mut engine: TriggerEngine,
        store: Arc<Store>,
        every: Duration,
    ) -> std::io::Result<TriggerWorker> {
        let (commands, requests) = crossbeam_channel::unbounded::<TriggerCommand>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("modelwatch-triggers".into()).spawn(move || {
            let mut next = Instant::now();
            while !stopped.load(Ordering::Acquire) {
                if Instant::now() >= next {
                    next = Instant::now() + every;
                    if let Err(e) = store.refresh() {
                        tracing::warn!(error = %e, "refreshing the store failed; evaluating what was read before");
                    }
                    match engine.evaluate() {
                        Ok(out) => {
                            for f in &out.failures {
                                tracing::error!(source = %f.source, error = %f.error, "a trigger or the outbox failed; the others ran");
                            }
                            if let Some(e) = &out.event {
                                let why: Vec<&str> = e.reasons.iter().map(|r| r.summary.as_str()).collect();
                                tracing::warn!(id = %e.id, reasons = ?why, "retraining event");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "evaluating the triggers failed"),
                    }
                }
                // The short wait keeps a stop prompt.
                answer(&mut engine, &requests, Duration::from_millis(100));
            }
        })?;
        Ok(TriggerWorker { commands, stop, thread: Some(thread) })
    }

    /// Where to send commands.
    pub fn commands(&self) -> Sender<TriggerCommand> {
        self.commands.clone()
    }
}

fn answer(engine: &mut TriggerEngine, requests: &Receiver<TriggerCommand>, wait: Duration) {
    match requests.recv_timeout(wait) {
        Ok(TriggerCommand::Fire { reason, force, reply }) => {
            let _ = reply.send(engine.fire(&reason, force));
        }
        Ok(TriggerCommand::Ack { id, outcome, reply }) => {
            let _ = reply.send(engine.ack_with(&id, outcome.as_deref()));
        }
        Err(_) => {}
    }
}

impl Drop for TriggerWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
