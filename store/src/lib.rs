//! modelwatch-store: the durable columnar store of modelwatch.
//!
//! # Data flow
//!
//! 1. The agent hands a [`Snapshot`](modelwatch_agent::Snapshot) to [`Store`] (a
//!    [`Sink`](modelwatch_agent::Sink)); it becomes [`Rows`] of three tables
//!    (`distributions`, `scalars`, `events`).
//! 2. The rows are framed into the write-ahead log (magic, version, length and CRC per
//!    record) and synced per the [`Durability`] policy; then the write is acknowledged.
//! 3. Buffered rows are written as immutable Parquet files (ZSTD, sorted by metric, feature,
//!    the other tags, then time, dictionary-encoded tags, page statistics, format version in
//!    the footer) under Hive-style paths
//!    `writers/<id>/<table>/date=YYYY-MM-DD/resolution=<raw|1m|1h>/part-N-<nonce>.parquet`,
//!    published atomically and listed in the writer's versioned manifest. Only then is the
//!    WAL emptied.
//! 4. Each writing process holds one writer slot `writers/<id>/` (an `flock` the OS releases
//!    when it dies) and writes only there; the next claimer replays a slot's WAL. Reads
//!    merge every slot's manifest files (decoded once, then served from a cache: files never
//!    change) with acknowledged rows not yet published, so a write is readable at once, by
//!    its writer and by every reader.
//! 5. Maintenance compacts a partition's files, rolls raw rows up to 1-minute and 1-hour
//!    rows by merging distributions exactly (late rows merge into stored roll-ups), and
//!    drops partitions past their retention; replaced files are deleted after a grace period.
//!    The background thread runs it as of [`StoreConfig::clock`], so simulated time ages data
//!    too.
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
//!
//! # Modules
//!
//! - `store`: the [`Store`]: writer slots, opening and recovery, appends and publication,
//!   reads across slots, maintenance, verification and repair, and the lock protocol they
//!   share;
//! - `wal`: the write-ahead log, its segments and its record format;
//! - `rows`: the rows of the three tables ([`Rows`]) and the distributions' bucket layouts;
//! - `table`: the tables' Arrow schemas and their Parquet encoding;
//! - `columns`: files decoded as Arrow columns for the query engine ([`Columns`]);
//! - [`examples`]: labelled examples ([`examples::ExampleSet`]) and their wide Parquet
//!   layout, what trainers read;
//! - [`registry`]: the model registry ([`registry::Registry`]): versions, their artifacts,
//!   the `control`/`challenger`/`latest` aliases and the audit log, under `registry/`;
//! - `manifest`: the versioned list of published files ([`Manifest`]);
//! - `objects`: where published files live, the data directory or an S3 bucket;
//! - `fs`: the file operations durability rests on ([`Fs`]).
#![forbid(unsafe_code)]

mod columns;
pub mod examples;
mod fs;
mod manifest;
mod objects;
pub mod registry;
mod rows;
mod store;
mod table;
mod wal;

// Opening, writing, reading, maintaining and verifying a store.
pub use store::{
    Holder, MaintenanceReport, ReadRequest, Recovery, Repair, Store, StoreConfig, StoreError, Verification,
    WriterInfo, WriterSlot, list_writers, repair_dir, verify_dir, writer_slots,
};
// What reads return.
pub use rows::{
    DistributionRow, EventRow, Resolution, Rows, ScalarKind, ScalarRow, Scheme, SeriesKey, sum_buckets,
};
pub use table::{FORMAT, FORMAT_VERSION, Table};
// What columnar reads (`Store::read_columns`) return.
pub use columns::{
    Columns, Common, DistributionColumns, ScalarColumns, TAG_COLUMNS, TagColumn, free_tag, tag_column,
};
// What `Store::manifest`, `Store::recovery` and `StoreError` carry.
pub use manifest::{FileEntry, Garbage, Manifest};
pub use wal::{
    DamageKind, Durability, RepairAction, RepairReport, SegmentRepair, SegmentReport, SegmentState,
    WalDamage, WalError, WalGap, WalReport, inspect as inspect_wal, repair as repair_wal,
};
// Where files live; the root package publishes its own files (baselines, trigger state)
// through the same durable `publish`, and fault tests open a store over their own `Fs`.
pub use fs::{AppendFile, Fs, RealFs, publish};
pub use objects::ObjectStoreConfig;

// For the fuzz target `fuzz/fuzz_targets/wal_reader.rs` only (the cargo-fuzz crate is
// outside the workspace and can reach nothing private); not part of the API.
#[doc(hidden)]
pub use wal::decode as decode_wal;
