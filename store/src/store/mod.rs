//! The store: WAL-backed acknowledgement, buffered rows, Parquet publication through the
//! manifest, reads that merge files with not-yet-published rows, and maintenance
//! (compaction, roll-ups, retention).
//!
//! This file holds the [`Store`] handle, the state it shares with its background thread and
//! the lock protocol over that state. Each concern has its own file:
//!
//! - `config`: [`StoreConfig`], what a store is opened with;
//! - `error`: [`StoreError`];
//! - `open`: opening and WAL recovery, and a read-only store's refresh;
//! - `examples`: labelled examples' appends and reads;
//! - `publish`: appends, and publication (buffer → Parquet → manifest → WAL truncation);
//! - `read`: [`ReadRequest`] and the read paths, with read-your-writes;
//! - `cache`: the decoded-file cache behind reads;
//! - `maintain`: roll-ups, compaction, retention, and the background worker;
//! - `verify`: reading every file back to find damage;
//! - `slot`: the writer slots and their locks;
//! - `sources`: what a reader sees of one writer slot (its manifest and unpublished rows).

mod cache;
mod config;
mod error;
mod examples;
mod maintain;
mod open;
mod publish;
mod read;
mod slot;
mod sources;
mod verify;

#[cfg(test)]
mod tests;

pub use config::StoreConfig;
pub use error::StoreError;
pub use maintain::MaintenanceReport;
pub use open::Recovery;
pub use read::ReadRequest;
pub use slot::Holder;
pub(crate) use slot::WRITERS as WRITERS_DIR;
pub use sources::{WriterInfo, WriterSlot, list_writers, writer_slots};
pub use verify::{Repair, Verification, repair_dir, verify_dir};

use crate::fs::Fs;
use crate::manifest::Manifest;
use crate::objects::Objects;
use crate::rows::Rows;
use crate::wal::Wal;
use cache::FileCache;
use modelwatch_agent::{Sink, SinkError, Snapshot};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The manifest's name in a slot (and, for stores written before slots, at the root).
const MANIFEST: &str = "manifest.json";
/// The WAL's directory in a slot (and, before slots, at the root).
const WAL_DIR: &str = "wal";

/// The durable columnar store. Implements [`Sink`]: a snapshot is acknowledged once its rows
/// are in the WAL and synced per the durability policy; publication to Parquet and
/// maintenance run on a background thread and hold the store's lock only to swap state.
pub struct Store {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// What changes with every append and publication; guarded by `Shared::inner`.
struct Inner {
    /// `None` when the store was opened read-only.
    wal: Option<Wal>,
    buffer: Rows,
    /// Rows being written as Parquet by a publication, still visible to readers.
    in_flight: Option<Arc<Rows>>,
    /// When the oldest buffered row arrived (wall time, for `publish_after`).
    buffered_since: Option<Instant>,
    manifest: Manifest,
    /// The manifest object's version (its ETag in a bucket), for the conditional put that
    /// keeps a second process claiming this writer ID on another host from publishing.
    manifest_version: Option<String>,
    /// The other writer slots, as last read (a read-only store: all of them).
    peers: Vec<sources::Source>,
    seq: u64,
    stopped: bool,
    longest_ack: Duration,
    longest_hold: Duration,
    /// Publications that failed in a row (the worker backs off by it), and the last error.
    publish_failures: u32,
    last_publish_error: Option<String>,
}

/// The state the [`Store`] handle and its background worker share.
///
/// # Lock protocol
///
/// - `publish_lock` admits one publication or maintenance pass at a time. Only those two
///   change a writer's file set, so its holder reads the manifest, writes Parquet files and
///   the next manifest durably and takes `next_file` ids without holding `inner`.
///   Maintenance publishes first, then holds it for its whole pass.
/// - `inner` ("the store's lock") guards [`Inner`]: the WAL, the buffer, the rows in flight,
///   the manifest in memory, the sequence number. An append holds it for its WAL write and
///   the fsync its durability asks for, so records are acknowledged in sequence order.
///   Publication and maintenance take it only briefly: to seal the WAL segment and move the
///   buffer to `in_flight`, then to swap in the new manifest and delete the WAL segments it
///   covers. A read takes it once to copy the file list and the unpublished rows together:
///   every acknowledged row is in exactly one of the listed files, `in_flight` and `buffer`.
///   A read-only store's refresh swaps the writer's manifest and WAL rows in under it alone.
/// - `cache` guards the decoded-file cache. It is a leaf: held for a lookup or an insert
///   only, never with `inner` or while a file is read.
///
/// Order: `publish_lock` before `inner`; nobody takes `publish_lock` while holding `inner`
/// (an append that fills the buffer releases `inner` before publishing).
///
/// Under `inner` the only I/O is the WAL's: an append's write and fsync, and deleting
/// covered segments. Publication and maintenance do the rest under `publish_lock` alone:
/// creating the next WAL segment, the group-commit fsync of the sealed one, encoding and
/// writing Parquet, writing the manifest, maintenance's reads and roll-ups, deleting
/// replaced files. A read decodes files, and a refresh reads the WAL and the manifest,
/// under no lock.
///
/// `generation` moves under `inner` whenever what a read sees changes and is read without
/// it; `stop` and `wake` end and nudge the worker.
struct Shared {
    config: StoreConfig,
    fs: Arc<dyn Fs>,
    objects: Box<dyn Objects>,
    inner: Mutex<Inner>,
    recovery: Recovery,
    publish_lock: Mutex<()>,
    next_file: AtomicU64,
    wake: std::sync::mpsc::SyncSender<()>,
    stop: AtomicBool,
    /// Equal generations mean equal answers, which lets readers cache.
    generation: AtomicU64,
    read_only: bool,
    cache: Mutex<FileCache>,
    /// This writer's slot, held for the store's life (`None` when read-only). Never read:
    /// holding it is the point.
    _slot: Option<slot::SlotLock>,
    /// This writer's slot ID (empty when read-only).
    writer_id: String,
    /// Random per open, in every file name this writer writes: two processes that claim one
    /// writer ID on a bucket (hosts share no lock) never overwrite each other's files
    /// before the manifest's conditional put stops one of them.
    nonce: u32,
}

impl Store {
    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.config.dir
    }

    /// The manifest of this writer's slot; for a read-only store, the files of every slot
    /// in one list (`next_file` and `covered_seq` then mean nothing).
    pub fn manifest(&self) -> Manifest {
        let inner = self.shared.lock();
        if !self.shared.read_only {
            return inner.manifest.clone();
        }
        let mut all = Manifest::default();
        for p in &inner.peers {
            all.files.extend(p.manifest.files.iter().cloned());
        }
        all
    }

    /// The writer slot this store writes (`None` when read-only).
    pub fn writer_id(&self) -> Option<&str> {
        (!self.shared.read_only).then_some(self.shared.writer_id.as_str())
    }

    /// A number that changes whenever the rows a read can see change: an answer computed
    /// at one generation stays right until it moves.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.wake.try_send(());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that what a read can see changed (append, publication, maintenance, refresh).
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Where this writer's objects live, relative to the store root: `writers/<id>/<rel>`.
    fn own(&self, rel: &str) -> String {
        format!("{}/{}/{rel}", slot::WRITERS, self.writer_id)
    }
}

impl Sink for Store {
    fn write(&self, snapshot: &Arc<Snapshot>) -> Result<(), SinkError> {
        let mut rows = Rows::from_snapshot(snapshot);
        // An agent whose feature is named like a fixed column of the examples layout
        // (`label`, `confidence`, ...) cannot have its examples stored; its metrics still are.
        rows.examples.retain(|m| match m.set.validate() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(model = %m.model, error = %e, "labelled examples not stored");
                false
            }
        });
        self.append(rows).map(|_| ()).map_err(|e| SinkError {
            sink: format!("store {}", self.dir().display()),
            seq: snapshot.seq,
            message: e.to_string(),
        })
    }

    fn close(&self) -> Result<(), SinkError> {
        self.flush().map_err(|e| SinkError {
            sink: format!("store {}", self.dir().display()),
            seq: 0,
            message: e.to_string(),
        })
    }
}
