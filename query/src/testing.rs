//! Test fixtures: an agent recording on a manual clock into a store in a temporary
//! directory.

use modelwatch_agent::{Agent, AgentBuilder, Handle, ManualClock, Timestamp};
use modelwatch_store::{Store, StoreConfig};
use std::sync::Arc;
use std::time::Duration;

/// 2025-11-26T00:00:00Z, where the fixtures start.
pub(crate) const T0: i64 = 1_764_115_200_000;

/// An hour, in ms.
pub(crate) const HOUR: i64 = 3_600_000;

/// An agent built from `builder`, flushing every `interval` from [`T0`] on a manual clock.
pub(crate) struct Recorder {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    clock: Arc<ManualClock>,
    agent: Agent,
}

impl Recorder {
    pub(crate) fn new(builder: AgentBuilder, interval: Duration) -> Recorder {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(T0 as u64)));
        let agent = builder
            .interval(interval)
            .clock(clock.clone())
            .background_flush(false)
            .build(store.clone())
            .unwrap();
        Recorder { dir, store, clock, agent }
    }

    pub(crate) fn handle(&self) -> Handle {
        self.agent.handle()
    }

    /// Moves the clock to `ms` and flushes the intervals that ended.
    pub(crate) fn advance_to(&self, ms: i64) {
        self.clock.set(Timestamp::from_millis(ms as u64));
        self.agent.flush_due().unwrap();
    }

    /// Stops the agent and flushes the store: what was recorded, and the directory that
    /// holds it.
    pub(crate) fn finish(self) -> (tempfile::TempDir, Arc<Store>) {
        self.agent.shutdown().unwrap();
        self.store.flush().unwrap();
        (self.dir, self.store)
    }
}
