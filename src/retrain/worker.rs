//! The retraining manager on a thread of its own, beside the trigger engine's in
//! `modelwatch serve --triggers CONFIG --retrain`: it takes the events the engine fires
//! (through a channel sink) and those a restart found unacknowledged, runs each, and
//! acknowledges it through the engine's thread. Never on the HTTP workers: a training run
//! takes seconds to hours.

use super::{Acknowledge, RetrainManager};
use crate::triggers::{RetrainEvent, TriggerCommand, TriggerError};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a run stopped by an error (the registry's bucket down, say) waits to resume.
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// Acknowledges through the trigger engine's thread.
struct ViaEngine(Sender<TriggerCommand>);

impl Acknowledge for ViaEngine {
    fn acknowledge(&mut self, event_id: &str, outcome: &str) -> Result<(), String> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.0
            .send(TriggerCommand::Ack { id: event_id.to_string(), outcome: Some(outcome.to_string()), reply })
            .map_err(|_| "the trigger engine's thread has stopped".to_string())?;
        match answer.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(())) | Ok(Err(TriggerError::AlreadyAcknowledged(_))) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the trigger engine did not answer within 120 s".into()),
        }
    }
}

/// The running thread; dropping it stops the thread after the run in progress and waits.
pub struct RetrainWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RetrainWorker {
    /// Starts the thread: it runs `pending` first (the events a restart found
    /// unacknowledged), then each event from `events`, acknowledging through `commands`
    /// (the trigger worker's).
    pub fn spawn(
        manager: RetrainManager,
        events: Receiver<RetrainEvent>,
        pending: Vec<RetrainEvent>,
        commands: Sender<TriggerCommand>,
    ) -> std::io::Result<RetrainWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("modelwatch-retrain".into()).spawn(move || {
            let mut ack = ViaEngine(commands);
            let mut queue: Vec<(Instant, RetrainEvent)> = pending.into_iter().map(|e| (Instant::now(), e)).collect();
            while !stopped.load(Ordering::Acquire) {
                if let Ok(e) = events.recv_timeout(Duration::from_millis(200)) {
                    queue.push((Instant::now(), e));
                }
                let now = Instant::now();
                let Some(i) = queue.iter().position(|(at, _)| *at <= now) else { continue };
                let (_, event) = queue.remove(i);
                match manager.run(&event, &mut ack) {
                    Ok(rec) => {
                        let outcome = rec.outcome.map(|o| o.to_string()).unwrap_or_default();
                        tracing::info!(event = %event.id, %outcome, "retraining run over");
                    }
                    // Taken by someone else (`triggers ack`); a channel delivery can bring an
                    // event acknowledged before this server started.
                    Err(e @ super::ManagerError::Acknowledged { .. }) => {
                        tracing::info!(event = %event.id, reason = %e, "not retrained");
                    }
                    Err(e) => {
                        tracing::error!(event = %event.id, error = %e, "retraining run stopped; resuming in 5 minutes");
                        queue.push((Instant::now() + RETRY_AFTER, event));
                    }
                }
            }
        })?;
        Ok(RetrainWorker { stop, thread: Some(thread) })
    }
}

impl Drop for RetrainWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
