//! The synchronisation primitives the agent uses, swapped for loom's under `--cfg loom` so the
//! model checker can explore every interleaving of the shard/flush protocol.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex};

/// Locks a mutex; a poisoned lock is taken over, since every structure behind one of the
/// agent's mutexes stays consistent at each await-free step (a panic elsewhere must not stop
/// the flusher or the scorer).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(loom)]
pub(crate) use loom::sync::MutexGuard;
#[cfg(not(loom))]
pub(crate) use std::sync::MutexGuard;

/// A zeroed slice of cells. Outside loom it comes from `calloc`, so pages a scorer never
/// touches (most of a feature sketch's range) cost address space, not resident memory.
#[cfg(not(loom))]
pub(crate) fn zeroed_cells(len: usize) -> Box<[AtomicU64]> {
    bytemuck::allocation::zeroed_slice_box(len)
}

#[cfg(loom)]
pub(crate) fn zeroed_cells(len: usize) -> Box<[AtomicU64]> {
    (0..len).map(|_| AtomicU64::new(0)).collect()
}

/// Waits until `cell` reads 0 (`Acquire`): the flusher's side of the epoch hand-shake
/// (`shard.rs`).
/// Spins briefly (a recording call takes well under a microsecond), then yields, then
/// sleeps, so a recording thread descheduled mid-call delays the flush, never a scorer.
#[cfg(not(loom))]
pub(crate) fn wait_for_zero(cell: &AtomicU64) {
    let mut round = 0u32;
    while cell.load(Ordering::Acquire) != 0 {
        round = round.saturating_add(1);
        if round < 128 {
            std::hint::spin_loop();
        } else if round < 4096 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

#[cfg(loom)]
pub(crate) fn wait_for_zero(cell: &AtomicU64) {
    while cell.load(Ordering::Acquire) != 0 {
        loom::thread::yield_now();
    }
}

/// A cell written once, read without a lock: std's `OnceLock`, or under loom a `OnceLock`
/// whose publication also goes through a loom atomic, so the model checker sees the
/// happens-before edge that std's `OnceLock` provides (it cannot see inside std).
#[cfg(not(loom))]
pub(crate) type OnceCell<T> = std::sync::OnceLock<T>;

#[cfg(loom)]
pub(crate) struct OnceCell<T> {
    value: std::sync::OnceLock<T>,
    ready: AtomicBool,
}

#[cfg(loom)]
impl<T> Default for OnceCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(loom)]
impl<T> OnceCell<T> {
    pub(crate) fn new() -> Self {
        OnceCell { value: std::sync::OnceLock::new(), ready: AtomicBool::new(false) }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        if self.ready.load(Ordering::Acquire) { self.value.get() } else { None }
    }

    pub(crate) fn set(&self, v: T) -> Result<(), T> {
        let r = self.value.set(v);
        if r.is_ok() {
            self.ready.store(true, Ordering::Release);
        } else {
            while !self.ready.load(Ordering::Acquire) {
                loom::thread::yield_now();
            }
        }
        r
    }

    pub(crate) fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        if self.get().is_none() {
            let _ = self.set(f());
        }
        match self.value.get() {
            Some(v) => v,
            None => unreachable!("set or waited for above"),
        }
    }
}
