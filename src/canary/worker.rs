//! The canary controller on a thread of its own in `modelwatch serve --triggers CONFIG
//! --retrain`: every `window` it checks the model's canary and acts on the verdict, as
//! `modelwatch canary check` does from cron. A check that fails (the store or the registry
//! unreachable, a conflict with an operator's change) is logged and made again at the next
//! tick: every check reads the whole canary again, so nothing is lost.

use super::{Canary, CanaryConfig, Step};
use crate::Clock;
use modelwatch_store::Store;
use modelwatch_store::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The running thread; dropping it stops the thread after the check in progress and waits.
pub struct CanaryWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CanaryWorker {
    /// Starts checking `model`'s canary every `config.window_ms` (wall time), writing its
    /// decisions' annotations into `store` (a writable store: a writer slot of its own).
    pub fn spawn(
        store: Arc<Store>,
        registry: Registry,
        clock: Arc<dyn Clock>,
        config: CanaryConfig,
        model: String,
    ) -> std::io::Result<CanaryWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let every = Duration::from_millis(config.window_ms.max(1_000) as u64);
        let thread = std::thread::Builder::new().name("modelwatch-canary".into()).spawn(move || {
            let mut next = Instant::now();
            while !stopped.load(Ordering::Acquire) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                next += every;
                let step = Canary::new(&store, &registry, clock.clone(), config.clone()).and_then(|c| c.check(&model));
                match step {
                    Ok(Step::Promoted { challenger, control, verdict, .. }) => {
                        tracing::info!(model, challenger, control, reason = %verdict.reason, "canary: promoted")
                    }
                    Ok(Step::RolledBack { challenger, control, verdict, .. }) => {
                        tracing::warn!(model, challenger, control, reason = %verdict.reason, "canary: rolled back")
                    }
                    Ok(Step::Superseded { challenger, detail }) => {
                        tracing::info!(model, challenger, detail, "canary: the registry changed meanwhile")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(model, error = %e, "canary check failed; trying again next window"),
                }
            }
        })?;
        Ok(CanaryWorker { stop, thread: Some(thread) })
    }
}

impl Drop for CanaryWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
