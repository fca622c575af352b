//! The synchronisation primitives the agent uses, swapped for loom's under `--cfg loom` so the
//! model checker can explore every interleaving of the shard/flush protocol.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
