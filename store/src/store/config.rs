//! What a store is opened with.

use crate::objects::ObjectStoreConfig;
use crate::wal::Durability;
use std::path::PathBuf;
use std::time::Duration;

/// How the store behaves. `StoreConfig::new(dir)` gives the defaults; change fields with
/// `StoreConfig { buffer_rows: 10, ..StoreConfig::new(dir) }`.
#[derive(Clone, Debug)]
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
        }
    }
}
