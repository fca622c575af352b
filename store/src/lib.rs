//! modelwatch-store: the durable columnar store of modelwatch.
//!
//! # Data flow
//!
//! 1. The agent hands a [`Snapshot`](modelwatch_agent::Snapshot) to [`Store`] (a
//!    [`Sink`](modelwatch_agent::Sink)); it becomes [`Rows`] of three tables
//!    (`distributions`, `scalars`, `events`).
//! 2. The rows are framed into the write-ahead log (magic, version, length and CRC per
//!    record) and synced per the [`Durability`] policy; then the write is acknowledged.
//! 3. Buffered rows are written as immutable Parquet files (ZSTD, sorted by series then time,
//!    dictionary-encoded tags, page statistics, format version in the footer) under
//!    Hive-style paths `<table>/date=YYYY-MM-DD/resolution=<raw|1m|1h>/part-N.parquet`,
//!    published atomically and listed in a versioned manifest. Only then is the WAL emptied.
//! 4. Reads merge the manifest's files with acknowledged rows still in the buffer.
//! 5. Maintenance compacts a partition's files, rolls raw rows up to 1-minute and 1-hour
//!    rows by merging distributions exactly, and drops partitions past their retention.
//!
//! # Example
//!
//! ```
//! use modelwatch_agent::{Agent, MemorySink, Prediction};
//! use modelwatch_store::{ReadRequest, Resolution, Store, StoreConfig, Table};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(StoreConfig::new(dir.path()))?);
//! let agent = Agent::builder("pii").segments(["email"]).build(store.clone())?;
//! agent.handle().record(&Prediction::new("email", Duration::from_millis(3), 0.9));
//! agent.shutdown()?; // the last snapshot is acknowledged and published
//!
//! let req = ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw).tag("metric", "predictions");
//! let rows = store.read(&req)?;
//! assert_eq!(rows.scalars.iter().map(|r| r.value).sum::<f64>(), 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod fs;
mod manifest;
mod objects;
mod rows;
mod store;
mod table;
mod wal;

pub use fs::{Fs, RealFs, publish};
pub use manifest::{FileEntry, Manifest, date_of};
pub use objects::ObjectStoreConfig;
pub use rows::{
    DistributionRow, EventRow, Resolution, Rows, ScalarKind, ScalarRow, Scheme, SeriesKey, latency_buckets,
    merge_buckets,
};
pub use store::{
    MaintenanceReport, ReadRequest, Recovery, Store, StoreConfig, StoreError, roll_up, verify_dir,
};
pub use table::{
    DecodeError, FORMAT_VERSION, Table, distributions_batch, events_batch, read_parquet, rows_from,
    scalars_batch, to_parquet,
};
pub use wal::{
    Durability, WAL_MAGIC, WAL_VERSION, WalContents, WalDamage, WalEntry, WalError, decode as decode_wal,
};
