//! What a store is opened with.

use crate::objects::ObjectStoreConfig;
use crate::wal::Durability;
use modelwatch_agent::Clock;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How the store behaves. `StoreConfig::new(dir)` gives the defaults; change fields with
/// `StoreConfig { buffer_rows: 10, ..StoreConfig::new(dir) }`.
#[derive(Clone)]
pub struct StoreConfig {
    /// The data directory (`./modelwatch-data` in the CLI).
    pub dir: PathBuf,
    /// When an acknowledgement is durable (default [`Durability::Sync`]).
    pub durability: Durability,
    /// Rows buffered (and held in the WAL) before they are written as Parquet.
    pub buffer_rows: usize,
    /// Retention per resolution, in days (defaults: raw 7, 1-minute 90, 1-hour 730).
    pub retention_days: [u32; 3],
    /// Publish and maintain on a background thread (default). Without it, an append that
    /// fills the buffer publishes inline, and maintenance runs only when called.
    pub background: bool,
    /// Buffered rows older than this (wall time) are published even below `buffer_rows`.
    pub publish_after: Duration,
    /// How often the background thread compacts, rolls up and applies retention.
    pub maintenance_every: Option<Duration>,
    /// An S3-compatible bucket for the Parquet files and the manifest (`None`: the data
    /// directory). The WAL stays in the data directory either way.
    pub objects: Option<ObjectStoreConfig>,
    /// Memory kept for decoded rows of published files (they never change), so repeated
    /// reads skip Parquet decoding; 0 turns the cache off. Default 256 MiB.
    pub read_cache_bytes: usize,
    /// The time the background maintenance applies retention as of (default: the system
    /// clock). A simulated clock makes retention follow simulated time.
    pub clock: Arc<dyn Clock>,
    /// The writer slot to claim (`writers/<id>/`); `None` takes the lowest free `w<N>`.
    /// A slot another live process holds is refused at once.
    pub writer: Option<String>,
    /// Wait for the slot's lock instead of failing when another process holds it.
    pub wait_for_writer: bool,
    /// How long a file replaced by compaction or dropped by retention stays readable
    /// before it is deleted, for readers that still hold the previous manifest (default
    /// 5 minutes, by [`StoreConfig::clock`]).
    pub delete_grace: Duration,
    /// Bytes of acknowledged rows waiting for publication (the WAL) past which appends are
    /// refused with [`StoreError::Full`](super::StoreError::Full) while publication fails
    /// (default 1 GiB). Nothing acknowledged is dropped either way.
    pub max_unpublished_bytes: u64,
}

impl StoreConfig {
    /// Defaults for a data directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            durability: Durability::Sync,
            buffer_rows: 50_000,
            retention_days: [7, 90, 730],
            background: true,
            publish_after: Duration::from_secs(60),
            maintenance_every: Some(Duration::from_secs(600)),
            objects: None,
            read_cache_bytes: 256 << 20,
            clock: system_clock(),
            writer: None,
            wait_for_writer: false,
            delete_grace: Duration::from_secs(300),
            max_unpublished_bytes: 1 << 30,
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // By hand because a `dyn Clock` has no `Debug`: the clock shows as its kind.
        let clock = if self.clock.is_real_time() { "real time" } else { "simulated" };
        f.debug_struct("StoreConfig")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .field("buffer_rows", &self.buffer_rows)
            .field("retention_days", &self.retention_days)
            .field("background", &self.background)
            .field("publish_after", &self.publish_after)
            .field("maintenance_every", &self.maintenance_every)
            .field("objects", &self.objects)
            .field("read_cache_bytes", &self.read_cache_bytes)
            .field("clock", &format_args!("{clock}"))
            .field("writer", &self.writer)
            .field("wait_for_writer", &self.wait_for_writer)
            .field("delete_grace", &self.delete_grace)
            .field("max_unpublished_bytes", &self.max_unpublished_bytes)
            .finish()
    }
}

/// The default for a store whose owner does not choose: the wall clock, the one place the
/// store's time comes from it (tests and simulations set a `ManualClock`).
#[allow(clippy::disallowed_types)]
fn system_clock() -> Arc<dyn Clock> {
    Arc::new(modelwatch_agent::SystemClock)
}
