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
