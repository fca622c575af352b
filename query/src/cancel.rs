//! Cooperative cancellation. A caller that answers within a time limit (the server) runs
//! evaluation under a deadline with [`within`]; the engine checks it every few thousand
//! rows and stops with [`QueryError::Cancelled`](crate::QueryError), so that
//! work whose answer nobody waits for any more does not go on holding a thread and a
//! concurrency slot.
//!
//! The deadline is per thread: evaluation runs on the thread that called [`within`]
//! (the server's blocking pool), and the reports (drift, quality) reach the engine
//! through several layers that need not each carry it.

use crate::QueryError;
use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with evaluation cancelled past `deadline` (nested calls keep the earlier
/// deadline; the previous one is restored afterwards, also on unwind).
pub fn within<T>(deadline: Instant, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(self.0));
        }
    }
    let previous = DEADLINE.with(|d| d.get());
    let _restore = Restore(previous);
    let effective = previous.map_or(deadline, |p| p.min(deadline));
    DEADLINE.with(|d| d.set(Some(effective)));
    f()
}

/// `Err(Cancelled)` once the current thread's deadline has passed.
pub fn check() -> Result<(), QueryError> {
    match DEADLINE.with(|d| d.get()) {
        Some(d) if Instant::now() >= d => Err(QueryError::Cancelled),
        _ => Ok(()),
    }
}

/// Calls [`check`] once every `every` calls of [`Ticker::tick`]: the engine's loops tick
/// per row, and reading the clock per row would cost more than the row.
pub(crate) struct Ticker {
    n: u32,
}

impl Ticker {
    pub(crate) fn new() -> Self {
        Ticker { n: 0 }
    }

    #[inline]
    pub(crate) fn tick(&mut self) -> Result<(), QueryError> {
        self.n = self.n.wrapping_add(1);
        if self.n.is_multiple_of(4_096) { check() } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_passed_deadline_cancels_and_is_restored_after() {
        assert!(check().is_ok());
        let past = Instant::now() - Duration::from_millis(1);
        let far = Instant::now() + Duration::from_secs(3_600);
        within(far, || {
            assert!(check().is_ok());
            // An inner, later deadline cannot extend an earlier one.
            within(past, || assert!(matches!(check(), Err(QueryError::Cancelled))));
            within(far + Duration::from_secs(1), || assert!(check().is_ok()));
            assert!(check().is_ok());
        });
        within(past, || {
            let mut t = Ticker::new();
            let first_err = (0..10_000).position(|_| t.tick().is_err());
            assert_eq!(first_err, Some(4_095));
        });
        assert!(check().is_ok(), "the deadline ends with the call");
    }
}
