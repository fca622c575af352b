//! Opening a store: claiming a writer slot, adopting the old single-writer layout, the
//! slot's manifest, then the WAL records it does not cover, replayed into the buffer, and
//! every other slot as a reader sees it; and `refresh`, which reads the other slots again.

use super::cache::FileCache;
use super::slot::{self, LEGACY_SLOT, WRITERS};
use super::{Inner, MANIFEST, Shared, Store, StoreConfig, StoreError, WAL_DIR, sources};
use crate::fs::{Fs, RealFs};
use crate::manifest::Manifest;
use crate::objects::{Objects, objects_for};
use crate::rows::Rows;
use crate::wal::{Wal, WalContents, WalDamage};
use std::path::Path;
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

/// How a store is opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reads every slot; writes nothing, locks nothing.
    ReadOnly,
    /// Writes one slot. `os_lock`: claim it with the operating system's file lock (the
    /// real file system); a test double's file system is claimed by configuration alone.
    Write { os_lock: bool },
}

impl Store {
    /// Opens (or creates) a store on the real file system, claiming a writer slot: the one
    /// [`StoreConfig::writer`] names (refused at once if a live process holds it), or the
    /// lowest free `w<N>`. The slot is held until the store is dropped or the process dies.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        Self::open_inner(config, Arc::new(RealFs), Mode::Write { os_lock: true })
    }

    /// Opens a store for reading only: nothing is written, no lock is taken, no WAL segment
    /// is touched, no thread is started. Safe while other processes write the same root;
    /// reads see every writer slot's published files and the acknowledged rows in its WAL.
    pub fn open_read_only(config: StoreConfig) -> Result<Store, StoreError> {
        Self::open_inner(StoreConfig { background: false, ..config }, Arc::new(RealFs), Mode::ReadOnly)
    }

    /// Opens a store over the given file operations (for fault-injection tests). No
    /// operating-system lock is taken: the slot is [`StoreConfig::writer`] or `w0`.
    pub fn open_with(config: StoreConfig, fs: Arc<dyn Fs>) -> Result<Store, StoreError> {
        Self::open_inner(config, fs, Mode::Write { os_lock: false })
    }

    fn open_inner(config: StoreConfig, fs: Arc<dyn Fs>, mode: Mode) -> Result<Store, StoreError> {
        let dir = config.dir.clone();
        let objects = objects_for(&fs, &dir, config.objects.as_ref())?;
        let read_only = mode == Mode::ReadOnly;
        let (slot, writer_id) = match mode {
            Mode::ReadOnly => (None, String::new()),
            Mode::Write { os_lock: true } => {
                let clock = &*config.clock;
                let lock = match &config.writer {
                    Some(id) => slot::claim(&dir, id, config.wait_for_writer, clock)?,
                    None => {
                        let prefix =
                            if config.objects.is_some() { slot::host_prefix() } else { String::new() };
                        slot::claim_free(&dir, &prefix, clock)?
                    }
                };
                let id = lock.id.clone();
                (Some(lock), id)
            }
            Mode::Write { os_lock: false } => {
                let id = config.writer.clone().unwrap_or_else(|| LEGACY_SLOT.to_string());
                slot::check_id(&id)?;
                (None, id)
            }
        };
        let mut own = Own::default();
        if !read_only {
            let wal_dir = slot::slot_dir(&dir, &writer_id).join(WAL_DIR);
            fs.create_dir_all(&wal_dir).map_err(|source| StoreError::Io { path: wal_dir.clone(), source })?;
            if writer_id == LEGACY_SLOT {
                adopt_legacy(&*fs, &*objects, &dir)?;
            }
            let (manifest, version, _) = sources::read_slot_manifest(&*objects, &writer_id)?;
            let (mut wal, contents) = Wal::open(fs.clone(), &wal_dir, config.durability)?;
            // A manifest another host published under this ID does not cover this host's WAL
            // records (their sequence numbers are this host's): replaying against it would
            // skip them, and trimming the WAL would delete them. Refuse instead.
            let me = slot::host_name();
            if !manifest.host.is_empty() && manifest.host != me && !contents.entries.is_empty() {
                return Err(StoreError::ForeignManifest {
                    id: writer_id,
                    host: manifest.host,
                    wal: wal_dir,
                    records: contents.entries.len(),
                });
            }
            wal.remove_covered(manifest.covered_seq);
            let damage = contents.damage.clone();
            let replay = Replay::of(contents, manifest.covered_seq);
            if let Some(d) = &damage {
                tracing::warn!(wal = %d.path.display(), offset = d.offset, reason = %d.reason, "WAL tail torn by a crash: the unacknowledged bytes from this offset on were dropped");
            }
            let now_ms = config.clock.now().as_millis() as i64;
            collect_orphans(&*objects, &writer_id, &manifest, now_ms, config.delete_grace);
            own = Own {
                wal: Some(wal),
                recovery: Recovery { replayed: replay.replayed, skipped: replay.skipped, damage },
                buffer: replay.buffer,
                seq: replay.seq,
                manifest,
                version,
            };
        }
        let peers = sources::load_all(&*fs, &*objects, &dir, (!read_only).then_some(writer_id.as_str()))?;
        let buffered_since = (!own.buffer.is_empty()).then(Instant::now);
        let next_file = AtomicU64::new(own.manifest.next_file);
        let inner = Inner {
            wal: own.wal,
            buffer: own.buffer,
            in_flight: None,
            buffered_since,
            manifest: own.manifest,
            manifest_version: own.version,
            peers,
            seq: own.seq,
            stopped: false,
            longest_ack: Duration::ZERO,
            longest_hold: Duration::ZERO,
            publish_failures: 0,
            last_publish_error: None,
        };
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let background = config.background;
        let shared = Arc::new(Shared {
            config,
            fs,
            objects,
            inner: Mutex::new(inner),
            recovery: own.recovery,
            publish_lock: Mutex::new(()),
            next_file,
            wake,
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            read_only,
            cache: Mutex::new(FileCache::default()),
            _slot: slot,
            writer_id,
            nonce: {
                use std::hash::{BuildHasher, Hasher};
                // Seeded from the operating system's randomness.
                std::collections::hash_map::RandomState::new().build_hasher().finish() as u32
            },
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

    /// Picks up what the other writer slots (for a read-only store: all of them) have
    /// acknowledged and published since the last look: each slot's WAL, then its manifest,
    /// so a publication in between loses nothing. Returns whether anything changed.
    pub fn refresh(&self) -> Result<bool, StoreError> {
        self.shared.refresh()
    }
}

/// What a writer recovers of its own slot at open.
#[derive(Default)]
struct Own {
    wal: Option<Wal>,
    recovery: Recovery,
    buffer: Rows,
    seq: u64,
    manifest: Manifest,
    version: Option<String>,
}

/// Moves a store written before slots (`manifest.json` and `wal/` at the root) into slot
/// `w0`, under `w0`'s lock. Every step can be interrupted: readers take `w0`'s manifest when
/// it exists and the root one otherwise, and read the root WAL and `w0`'s as one.
fn adopt_legacy(fs: &dyn Fs, objects: &dyn Objects, root: &Path) -> Result<(), StoreError> {
    let legacy_wal = root.join(WAL_DIR);
    let segments = crate::wal::segment_paths(fs, &legacy_wal)?;
    if !segments.is_empty() {
        let to = slot::slot_dir(root, LEGACY_SLOT).join(WAL_DIR);
        for from in &segments {
            let target = to.join(from.file_name().unwrap_or_default());
            if fs.exists(&target) {
                return Err(StoreError::Corrupt {
                    path: from.clone(),
                    problem: format!(
                        "a WAL segment of the store's old layout, and {} exists too; move one aside after checking which holds unpublished rows",
                        target.display()
                    ),
                });
            }
            fs.rename(from, &target).map_err(|source| StoreError::Io { path: from.clone(), source })?;
        }
        let sync =
            |d: &Path| fs.sync_dir(d).map_err(|source| StoreError::Io { path: d.to_path_buf(), source });
        sync(&to)?;
        sync(&legacy_wal)?;
        tracing::info!(
            segments = segments.len(),
            "moved the WAL of the store's old layout into writer slot w0"
        );
    }
    if let Some(bytes) = objects.get(MANIFEST)? {
        let rel = format!("{WRITERS}/{LEGACY_SLOT}/{MANIFEST}");
        if objects.get(&rel)?.is_none() {
            objects.put(&rel, &bytes)?;
        }
        objects.delete(MANIFEST);
    }
    Ok(())
}

/// Deletes what a crashed holder of this slot wrote but never listed: Parquet files written
/// before the manifest that would have listed them, and temporary files. Locally only the
/// slot's holder writes there, so anything neither listed nor waiting out its grace period
/// is garbage (and would make a glob over the Hive layout count rows twice). In a bucket,
/// where hosts share no lock, only objects older than the grace period are taken: a file
/// another process (misusing this writer ID) is about to list is never deleted under it.
pub(super) fn collect_orphans(
    objects: &dyn Objects,
    id: &str,
    manifest: &Manifest,
    now_ms: i64,
    grace: Duration,
) -> usize {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let known: std::collections::HashSet<&str> = manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(manifest.garbage.iter().map(|g| g.path.as_str()))
        .collect();
    let listed = match objects.list_files(&format!("{WRITERS}/{id}")) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the writer slot's files to collect orphans");
            return 0;
        }
    };
    let mut n = 0;
    for (rel, modified) in listed.iter().filter(|(rel, _)| !known.contains(rel.as_str())) {
        if modified.is_some_and(|m| now_ms.saturating_sub(m) < grace_ms) {
            continue;
        }
        objects.delete(rel);
        n += 1;
    }
    if n > 0 {
        tracing::info!(files = n, slot = id, "deleted files a crashed writer wrote but never listed");
    }
    n
}

/// The WAL records a manifest does not cover, gathered into a buffer.
pub(super) struct Replay {
    pub buffer: Rows,
    /// The highest sequence number seen, covered or not.
    pub seq: u64,
    pub replayed: usize,
    pub skipped: usize,
}

impl Replay {
    pub(super) fn of(contents: WalContents, covered_seq: u64) -> Replay {
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
        let except = (!self.read_only).then_some(self.writer_id.as_str());
        let peers = sources::load_all(&*self.fs, &*self.objects, &self.config.dir, except)?;
        let mut inner = self.lock();
        let same = inner.peers.len() == peers.len() && inner.peers.iter().zip(&peers).all(|(a, b)| a.same(b));
        if same {
            return Ok(false);
        }
        inner.peers = peers;
        self.bump();
        Ok(true)
    }
}
