//! Time as the agent sees it: every interval boundary comes from a [`Clock`], never from the
//! wall directly, so tests, backfills and simulations can drive time themselves.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from nanoseconds since the Unix epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// A timestamp from milliseconds since the Unix epoch (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// A timestamp from seconds since the Unix epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// This timestamp moved forward by `d` (saturating).
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_nanos(d)))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// The start of the interval of length `interval` that holds this timestamp, with
    /// intervals aligned to the Unix epoch (as Prometheus aligns its steps).
    pub fn align_down(self, interval: Duration) -> Self {
        let step = duration_nanos(interval).max(1);
        Timestamp(self.0 - self.0 % step)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}.{:09})", self.0 / 1_000_000_000, self.0 % 1_000_000_000)
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The source of time for interval boundaries, model-load times and timestamps.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Whether this clock follows real time. The background flusher sleeps until the next
    /// boundary on a real clock and polls a simulated one.
    fn is_real_time(&self) -> bool {
        false
    }
}

#[allow(clippy::disallowed_types)] // defined here
pub use system::SystemClock;

/// The one place the workspace reads the wall clock (`clippy.toml` forbids it elsewhere).
mod system {
    #![allow(clippy::disallowed_types, clippy::disallowed_methods)]
    use super::{Clock, Timestamp, duration_nanos};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// The system's wall clock.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct SystemClock;

    impl Clock for SystemClock {
        fn now(&self) -> Timestamp {
            let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
            Timestamp(duration_nanos(since))
        }

        fn is_real_time(&self) -> bool {
            true
        }
    }
}

/// A clock that moves only when told to: for tests, backfills of historical data and
/// simulations. Share it with `Arc` and keep a clone to drive it.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A manual clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock { nanos: AtomicU64::new(start.0) }
    }

    /// Sets the time. Moving backwards is allowed (a backfill may restart), but interval
    /// boundaries already flushed are not revisited.
    pub fn set(&self, t: Timestamp) {
        self.nanos.store(t.0, Ordering::Release);
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(duration_nanos(d), Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.nanos.load(Ordering::Acquire))
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }

    fn is_real_time(&self) -> bool {
        (**self).is_real_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_down_snaps_to_interval_multiples() {
        let t = Timestamp::from_millis(12_345);
        assert_eq!(t.align_down(Duration::from_secs(10)), Timestamp::from_secs(10));
        assert_eq!(t.align_down(Duration::ZERO), t);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_secs(100));
        assert_eq!(c.now(), Timestamp::from_secs(100));
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now(), Timestamp::from_millis(101_500));
        c.set(Timestamp::from_secs(5));
        assert_eq!(c.now().as_millis(), 5_000);
    }
}
