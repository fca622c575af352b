//! Opening a store: the manifest, then the WAL records it does not cover, replayed into the
//! buffer; and a read-only store's refresh, which does the same again later.

use super::cache::FileCache;
use super::{Inner, MANIFEST, Shared, Store, StoreConfig, StoreError, WAL_DIR};
use crate::fs::{Fs, RealFs};
use crate::manifest::Manifest;
use crate::objects::{Objects, objects_for};
use crate::rows::Rows;
use crate::wal::{Wal, WalContents, WalDamage};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `open` found in the WAL.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// WAL records replayed into the buffer.
    pub replayed: usize,
    /// WAL records skipped because the manifest already covered them.
    pub skipped: usize,
    /// Damage found at the WAL's tail (records after it were dropped).
    pub damage: Option<WalDamage>,
}

impl Store {
    /// Opens (or creates) a store on the real file system.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        Self::open_with(config, Arc::new(RealFs))
    }

    /// Opens a store for reading only: nothing is written, no WAL segment is touched, no
    /// thread is started. Safe while another process writes the same data directory; reads
    /// see its published files and the acknowledged rows in its WAL.
    pub fn open_read_only(config: StoreConfig) -> Result<Store, StoreError> {
        Self::open_inner(StoreConfig { background: false, ..config }, Arc::new(RealFs), true)
    }

    /// Opens a store over the given file operations (for fault-injection tests).
    pub fn open_with(config: StoreConfig, fs: Arc<dyn Fs>) -> Result<Store, StoreError> {
        Self::open_inner(config, fs, false)
    }

    fn open_inner(config: StoreConfig, fs: Arc<dyn Fs>, read_only: bool) -> Result<Store, StoreError> {
        let dir = config.dir.clone();
        if !read_only {
            fs.create_dir_all(&dir.join(WAL_DIR))
                .map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        }
        let objects = objects_for(&fs, &dir, config.objects.as_ref())?;
        let manifest = read_manifest(&*objects)?;
        let (wal, contents) = if read_only {
            (None, Wal::read_only(&*fs, &dir.join(WAL_DIR))?)
        } else {
            let (mut wal, contents) = Wal::open(fs.clone(), &dir.join(WAL_DIR), config.durability)?;
            wal.remove_covered(manifest.covered_seq);
            (Some(wal), contents)
        };
        let damage = contents.damage.clone();
        let replay = Replay::of(contents, manifest.covered_seq);
        let recovery = Recovery { replayed: replay.replayed, skipped: replay.skipped, damage };
        if let Some(d) = &recovery.damage {
            tracing::warn!(wal = %d.path.display(), offset = d.offset, reason = %d.reason, "WAL damaged; records from this offset on were dropped");
        }
        let buffered_since = (!replay.buffer.is_empty()).then(Instant::now);
        let next_file = AtomicU64::new(manifest.next_file);
        let inner = Inner {
            wal,
            buffer: replay.buffer,
            in_flight: None,
            buffered_since,
            manifest,
            seq: replay.seq,
            stopped: false,
            longest_ack: Duration::ZERO,
            longest_hold: Duration::ZERO,
        };
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let background = config.background;
        let shared = Arc::new(Shared {
            config,
            fs,
            objects,
            inner: Mutex::new(inner),
            recovery,
            publish_lock: Mutex::new(()),
            next_file,
            wake,
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            read_only,
            cache: Mutex::new(FileCache::default()),
        });
        let worker = if background {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("modelwatch-store".into())
                    .spawn(move || s.run_worker(&woken))
                    .map_err(|source| StoreError::Io { path: dir.clone(), source })?,
            )
        } else {
            None
        };
        Ok(Store { shared, worker })
    }

    /// What `open` recovered from the WAL.
    pub fn recovery(&self) -> &Recovery {
        &self.shared.recovery
    }

    /// For a store opened with [`Store::open_read_only`]: picks up what the writing process
    /// has acknowledged and published since (the WAL, then the manifest, so a publication in
    /// between loses nothing). Returns whether anything changed. A no-op for a writer.
    pub fn refresh(&self) -> Result<bool, StoreError> {
        self.shared.refresh()
    }
}

/// The WAL records a manifest does not cover, gathered into a buffer.
struct Replay {
    buffer: Rows,
    /// The highest sequence number seen, covered or not.
    seq: u64,
    replayed: usize,
    skipped: usize,
}

impl Replay {
    fn of(contents: WalContents, covered_seq: u64) -> Replay {
        let mut r = Replay { buffer: Rows::default(), seq: covered_seq, replayed: 0, skipped: 0 };
        for mut e in contents.entries {
            r.seq = r.seq.max(e.seq);
            if e.seq <= covered_seq {
                r.skipped += 1;
            } else {
                r.replayed += 1;
                r.buffer.append(&mut e.rows);
            }
        }
        r
    }
}

impl Shared {
    pub(super) fn refresh(&self) -> Result<bool, StoreError> {
        if !self.read_only {
            return Ok(false);
        }
        // The WAL first: a record the writer publishes after this read is then covered by
        // the manifest read next, so every acknowledged row is seen (at worst twice, and the
        // covered ones are skipped).
        let contents = Wal::read_only(&*self.fs, &self.config.dir.join(WAL_DIR))?;
        let manifest = read_manifest(&*self.objects)?;
        let replay = Replay::of(contents, manifest.covered_seq);
        let mut inner = self.lock();
        if inner.manifest == manifest && inner.seq == replay.seq {
            return Ok(false);
        }
        inner.manifest = manifest;
        inner.seq = replay.seq;
        inner.buffer = replay.buffer;
        self.bump();
        Ok(true)
    }
}

/// The manifest in `objects`, or an empty one for a new store.
pub(super) fn read_manifest(objects: &dyn Objects) -> Result<Manifest, StoreError> {
    match objects.get(MANIFEST)? {
        Some(b) => Manifest::decode(&b)
            .map_err(|problem| StoreError::Corrupt { path: objects.location(MANIFEST), problem }),
        None => Ok(Manifest::default()),
    }
}
