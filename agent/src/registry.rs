//! Which shard a thread writes: leases held in a thread-local, and the registry of shards
//! and generic metric series.
//!
//! A thread's first recording into an agent claims a free shard (or creates one) under the
//! registry's mutex and keeps a lease on it in a thread-local; every later recording finds
//! the lease with a thread-local lookup and no lock. When the thread exits, its lease is
//! dropped and the shard is released (`Release`); the next thread to claim it (`Acquire`)
//! continues its cumulative counters, so values written by a finished thread are still
//! flushed and memory stays bounded by the number of threads recording at once.

use crate::shard::Shard;
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, Ordering, lock};
use std::cell::RefCell;
use std::rc::Rc;

#[cfg(not(loom))]
std::thread_local! {
    static LEASES: RefCell<Vec<(u64, Rc<Lease>)>> = const { RefCell::new(Vec::new()) };
}
#[cfg(loom)]
loom::thread_local! {
    static LEASES: RefCell<Vec<(u64, Rc<Lease>)>> = RefCell::new(Vec::new());
}

/// A thread's claim on one agent's shard.
pub(crate) struct Lease {
    pub shard: Arc<Shard>,
    agent_closed: Arc<AtomicBool>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shard.claimed.store(false, Ordering::Release);
    }
}

/// All shards of one agent.
pub(crate) struct ShardRegistry {
    pub agent: u64,
    shards: Mutex<Vec<Arc<Shard>>>,
    shard_len: usize,
    metric_capacity: usize,
    /// Set when the agent is dropped, so threads prune their leases on it.
    pub closed: Arc<AtomicBool>,
    /// Recordings that found no shard (only during thread teardown).
    pub dropped: AtomicU64,
    /// Used when a thread's thread-locals are already destroyed.
    orphan: Mutex<Option<Arc<Shard>>>,
}

impl ShardRegistry {
    pub fn new(agent: u64, shard_len: usize, metric_capacity: usize) -> Self {
        ShardRegistry {
            agent,
            shards: Mutex::new(Vec::new()),
            shard_len,
            metric_capacity,
            closed: Arc::new(AtomicBool::new(false)),
            dropped: AtomicU64::new(0),
            orphan: Mutex::new(None),
        }
    }

    /// The shards so far, in creation order (indices are stable).
    pub fn shards(&self) -> Vec<Arc<Shard>> {
        lock(&self.shards).clone()
    }

    fn claim(&self) -> Arc<Shard> {
        let mut shards = lock(&self.shards);
        for s in shards.iter() {
            if s.claimed.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return s.clone();
            }
        }
        let s = Arc::new(Shard::new(self.shard_len, self.metric_capacity));
        shards.push(s.clone());
        s
    }

    /// Runs `f` on the calling thread's shard. Lock-free once the thread holds a lease.
    #[inline]
    pub fn with_shard(&self, f: impl FnOnce(&Shard)) {
        let mut f = Some(f);
        let _ = LEASES.try_with(|cell| {
            if let Ok(leases) = cell.try_borrow()
                && let Some((_, lease)) = leases.iter().find(|l| l.0 == self.agent)
                && let Some(f) = f.take()
            {
                f(&lease.shard);
            }
        });
        if let Some(f) = f {
            self.with_new_lease(f);
        }
    }

    /// The first recording of a thread (or one during thread teardown).
    #[cold]
    #[inline(never)]
    fn with_new_lease(&self, f: impl FnOnce(&Shard)) {
        let lease = LEASES
            .try_with(|cell| {
                let mut leases = cell.try_borrow_mut().ok()?;
                leases.retain(|l| !l.1.agent_closed.load(Ordering::Relaxed));
                let lease = Rc::new(self.new_lease());
                leases.push((self.agent, lease.clone()));
                Some(lease)
            })
            .ok()
            .flatten();
        match lease {
            Some(lease) => f(&lease.shard),
            None => self.record_orphan(Some(f)),
        }
    }

    fn new_lease(&self) -> Lease {
        Lease { shard: self.claim(), agent_closed: self.closed.clone() }
    }

    /// The calling thread's lease, shared with its thread-local (so a `LocalRecorder` and
    /// a `Handle` used on one thread write the same shard). Outside a usable thread-local
    /// (thread teardown) the lease is the caller's alone.
    pub fn local_lease(&self) -> Rc<Lease> {
        let mut found = None;
        self.with_shard(|_| {});
        let _ = LEASES.try_with(|cell| {
            if let Ok(leases) = cell.try_borrow() {
                found = leases.iter().find(|l| l.0 == self.agent).map(|l| l.1.clone());
            }
        });
        found.unwrap_or_else(|| Rc::new(self.new_lease()))
    }

    #[cold]
    fn record_orphan(&self, f: Option<impl FnOnce(&Shard)>) {
        let Some(f) = f else { return };
        match self.orphan.try_lock() {
            Ok(mut orphan) => {
                let shard = orphan.get_or_insert_with(|| self.claim());
                f(shard);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
