//! The store: WAL-backed acknowledgement, buffered rows, Parquet publication through the
//! manifest, reads that merge files with not-yet-published rows, and maintenance
//! (compaction, roll-ups, retention).

use crate::fs::{Fs, RealFs};
use crate::manifest::{FileEntry, Manifest, date_of, day_start};
use crate::objects::{ObjectStoreConfig, Objects, objects_for};
use crate::rows::{DistributionRow, Resolution, Rows, ScalarKind, ScalarRow, SeriesKey};
use crate::table::{Table, read_parquet, rows_from, to_parquet};
use crate::wal::{Durability, Wal, WalDamage, WalEntry, WalError};
use modelwatch_agent::{Clock, Sink, SinkError, Snapshot};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the store behaves. `StoreConfig::new(dir)` gives the defaults.
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

/// Errors of the store, each naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The WAL failed; see the message.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{path}: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The store was opened read-only.
    #[error("the store at {0} is open read-only")]
    ReadOnly(PathBuf),
    /// The store stopped acknowledging after a WAL failure.
    #[error("the store at {0} stopped after a write or fsync failure; restart it to recover from the WAL")]
    Stopped(PathBuf),
}

/// What a read asks for.
#[derive(Clone, Debug)]
pub struct ReadRequest {
    /// The table.
    pub table: Table,
    /// Inclusive start, ms.
    pub from_ms: i64,
    /// Exclusive end, ms.
    pub to_ms: i64,
    /// The resolution to read.
    pub resolution: Resolution,
    /// Tag equality filters (`metric`, `model`, `segment`, `feature`, free tags...).
    pub tags: Vec<(String, String)>,
}

impl ReadRequest {
    /// Everything of `table` at `resolution` in `[from_ms, to_ms)`.
    pub fn new(table: Table, from_ms: i64, to_ms: i64, resolution: Resolution) -> Self {
        ReadRequest { table, from_ms, to_ms, resolution, tags: Vec::new() }
    }

    /// Adds a tag filter.
    pub fn tag(mut self, k: &str, v: &str) -> Self {
        self.tags.push((k.into(), v.into()));
        self
    }

    fn keeps(&self, series: &SeriesKey, start: i64, res: Resolution) -> bool {
        res == self.resolution
            && start >= self.from_ms
            && start < self.to_ms
            && self.tags.iter().all(|(k, v)| series.tag(k) == Some(v.as_str()))
    }

    /// Whether a distribution row belongs to the answer (for [`Store::read_parts`]).
    pub fn keeps_distribution(&self, r: &DistributionRow) -> bool {
        self.table == Table::Distributions && self.keeps(&r.series, r.start_ms, r.resolution)
    }

    /// Whether a scalar row belongs to the answer.
    pub fn keeps_scalar(&self, r: &ScalarRow) -> bool {
        self.table == Table::Scalars && self.keeps(&r.series, r.start_ms, r.resolution)
    }

    /// Whether an event belongs to the answer.
    pub fn keeps_event(&self, e: &crate::rows::EventRow) -> bool {
        self.table == Table::Events
            && e.time_ms >= self.from_ms
            && e.time_ms < self.to_ms
            && self.tags.iter().all(|(k, v)| match k.as_str() {
                "model" => &*e.model == v,
                "version" => &*e.version == v,
                "variant" => &*e.variant == v,
                "kind" => &*e.kind == v,
                _ => false,
            })
    }
}

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

struct Inner {
    /// `None` when the store was opened read-only.
    wal: Option<Wal>,
    buffer: Rows,
    /// Rows being written as Parquet by a publication, still visible to readers.
    in_flight: Option<Arc<Rows>>,
    /// When the oldest buffered row arrived (wall time, for `publish_after`).
    buffered_since: Option<Instant>,
    manifest: Manifest,
    seq: u64,
    stopped: bool,
    longest_ack: Duration,
    longest_hold: Duration,
}

/// The durable columnar store. Implements [`Sink`]: a snapshot is acknowledged once its rows
/// are in the WAL and synced per the durability policy; publication to Parquet and
/// maintenance run on a background thread and hold the store's lock only to swap state.
pub struct Store {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    config: StoreConfig,
    fs: Arc<dyn Fs>,
    objects: Box<dyn Objects>,
    inner: Mutex<Inner>,
    recovery: Recovery,
    /// One publication at a time; maintenance takes it too, so it sees a stable file set.
    publish_lock: Mutex<()>,
    next_file: std::sync::atomic::AtomicU64,
    wake: std::sync::mpsc::SyncSender<()>,
    stop: std::sync::atomic::AtomicBool,
    /// Bumped whenever what a read can see changes (append, publication, maintenance,
    /// refresh): equal generations mean equal answers, which lets readers cache.
    generation: std::sync::atomic::AtomicU64,
    read_only: bool,
    cache: Mutex<FileCache>,
}

/// Files up to this size are decoded and cached whole, whatever the tags asked.
const WHOLE_FILE_BYTES: u64 = 2 << 20;

/// A file's path and the tag filters its rows were read with.
type CacheKey = (String, Vec<(String, String)>);

/// Decoded rows of published files by (path, tag filters), least recently used first out.
/// Files are immutable once listed, so an entry never goes stale; a replaced file's entry
/// just ages out.
#[derive(Default)]
struct FileCache {
    /// Rows, their approximate size and when they were last used.
    entries: HashMap<CacheKey, (Arc<Rows>, usize, u64)>,
    bytes: usize,
    tick: u64,
}

impl FileCache {
    fn get(&mut self, key: &CacheKey) -> Option<Arc<Rows>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.2 = tick;
            e.0.clone()
        })
    }

    fn insert(&mut self, key: CacheKey, rows: Arc<Rows>, budget: usize) {
        let size = approx_bytes(&rows);
        if size > budget / 4 {
            return; // one huge file would flush everything else
        }
        while self.bytes + size > budget {
            let Some(oldest) = self.entries.iter().min_by_key(|e| (e.1).2).map(|e| e.0.clone()) else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.1;
            }
        }
        self.tick += 1;
        self.bytes += size;
        if let Some(old) = self.entries.insert(key, (rows, size, self.tick)) {
            self.bytes -= old.1;
        }
    }
}

fn approx_bytes(rows: &Rows) -> usize {
    rows.distributions.iter().map(|r| std::mem::size_of_val(r) + r.buckets.len() * 16).sum::<usize>()
        + rows.scalars.len() * std::mem::size_of::<crate::rows::ScalarRow>()
        + rows.events.iter().map(|e| std::mem::size_of_val(e) + e.message.len()).sum::<usize>()
}

const MANIFEST: &str = "manifest.json";
/// The problem of a file the manifest lists and the objects no longer hold.
const MISSING_FILE: &str = "listed in the manifest but missing";
const WAL_DIR: &str = "wal";

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
        let mut recovery = Recovery { damage: contents.damage.clone(), ..Default::default() };
        let mut buffer = Rows::default();
        let mut seq = manifest.covered_seq;
        for mut e in contents.entries {
            seq = seq.max(e.seq);
            if e.seq <= manifest.covered_seq {
                recovery.skipped += 1;
            } else {
                recovery.replayed += 1;
                buffer.append(&mut e.rows);
            }
        }
        if let Some(d) = &recovery.damage {
            tracing::warn!(wal = %d.path.display(), offset = d.offset, reason = %d.reason, "WAL damaged; records from this offset on were dropped");
        }
        let buffered_since = (!buffer.is_empty()).then(Instant::now);
        let next_file = std::sync::atomic::AtomicU64::new(manifest.next_file);
        let inner = Inner {
            wal,
            buffer,
            in_flight: None,
            buffered_since,
            manifest,
            seq,
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
            stop: std::sync::atomic::AtomicBool::new(false),
            generation: std::sync::atomic::AtomicU64::new(0),
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

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.config.dir
    }

    /// Appends rows durably (WAL + sync per policy) and returns their sequence number.
    pub fn append(&self, rows: Rows) -> Result<u64, StoreError> {
        self.shared.append(rows)
    }

    /// The longest time an `append` took so far (its acknowledgement latency), and the
    /// longest time publication or maintenance held the store's lock.
    pub fn longest_acknowledgement(&self) -> (Duration, Duration) {
        let i = self.shared.lock();
        (i.longest_ack, i.longest_hold)
    }

    /// Writes every buffered row as Parquet, lists the files in the manifest, then deletes
    /// the WAL segments that held them.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.publish()
    }

    /// The current manifest.
    pub fn manifest(&self) -> Manifest {
        self.shared.lock().manifest.clone()
    }

    /// A number that changes whenever the rows a read can see change: an answer computed
    /// at one generation stays right until it moves.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// For a store opened with [`Store::open_read_only`]: picks up what the writing process
    /// has acknowledged and published since (the WAL, then the manifest, so a publication in
    /// between loses nothing). Returns whether anything changed. A no-op for a writer.
    pub fn refresh(&self) -> Result<bool, StoreError> {
        self.shared.refresh()
    }

    /// Bytes in the WAL (acknowledged rows not yet in Parquet, framed).
    pub fn wal_bytes(&self) -> u64 {
        self.shared.lock().wal.as_ref().map_or(0, Wal::len)
    }

    /// Rows acknowledged but not yet in Parquet files.
    pub fn buffered_rows(&self) -> usize {
        self.shared.lock().buffer.len()
    }

    /// Reads rows matching `req` from the files and from acknowledged rows not yet
    /// published (read-your-writes), skipping files by partition and time range and row
    /// groups by statistics.
    pub fn read(&self, req: &ReadRequest) -> Result<Rows, StoreError> {
        self.shared.read(req)
    }

    /// The rows of [`Store::read`] without copying them: the decoded rows of each file
    /// (shared with the read cache) and the acknowledged rows not yet published. Parts can
    /// hold rows outside the request; keep those for which `req.keeps_*` holds.
    pub fn read_parts(&self, req: &ReadRequest) -> Result<Vec<Arc<Rows>>, StoreError> {
        self.shared.read_parts(req)
    }

    /// Reads rows matching `req` as Arrow record batches (one per table read).
    pub fn read_batches(&self, req: &ReadRequest) -> Result<Vec<arrow_array::RecordBatch>, StoreError> {
        let rows = self.read(req)?;
        Ok(vec![match req.table {
            Table::Distributions => crate::table::distributions_batch(&rows.distributions),
            Table::Scalars => crate::table::scalars_batch(&rows.scalars),
            Table::Events => crate::table::events_batch(&rows.events),
        }])
    }

    /// Reads every file of the manifest and every WAL segment; returns what is damaged
    /// (empty when all is well).
    pub fn verify(&self) -> Vec<String> {
        self.shared.verify()
    }

    /// Compacts, rolls up and applies retention, as of `now_ms`.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StoreError> {
        self.shared.maintain(now_ms)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = self.shared.wake.try_send(());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Shared {
    fn run_worker(&self, woken: &std::sync::mpsc::Receiver<()>) {
        let mut last_maintenance = Instant::now();
        while !self.stop.load(std::sync::atomic::Ordering::Acquire) {
            let _ = woken.recv_timeout(Duration::from_millis(500));
            if self.stop.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            let due = {
                let i = self.lock();
                i.buffer.len() >= self.config.buffer_rows
                    || i.buffered_since.is_some_and(|t| t.elapsed() >= self.config.publish_after)
            };
            if due && let Err(e) = self.publish() {
                tracing::error!(error = %e, "publishing Parquet files failed; rows stay in the WAL");
            }
            if let Some(every) = self.config.maintenance_every
                && last_maintenance.elapsed() >= every
            {
                last_maintenance = Instant::now();
                let now = modelwatch_agent::SystemClock.now().as_millis() as i64;
                if let Err(e) = self.maintain(now) {
                    tracing::error!(error = %e, "store maintenance failed");
                }
            }
        }
    }

    fn bump(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn refresh(&self) -> Result<bool, StoreError> {
        if !self.read_only {
            return Ok(false);
        }
        // The WAL first: a record the writer publishes after this read is then covered by
        // the manifest read next, so every acknowledged row is seen (at worst twice, and the
        // covered ones are skipped below).
        let contents = Wal::read_only(&*self.fs, &self.config.dir.join(WAL_DIR))?;
        let manifest = read_manifest(&*self.objects)?;
        let mut buffer = Rows::default();
        let mut seq = manifest.covered_seq;
        for mut e in contents.entries {
            seq = seq.max(e.seq);
            if e.seq > manifest.covered_seq {
                buffer.append(&mut e.rows);
            }
        }
        let mut inner = self.lock();
        if inner.manifest == manifest && inner.seq == seq {
            return Ok(false);
        }
        inner.manifest = manifest;
        inner.seq = seq;
        inner.buffer = buffer;
        self.bump();
        Ok(true)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, mut rows: Rows) -> Result<u64, StoreError> {
        let started = Instant::now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let dir = self.config.dir.clone();
        let Some(wal) = inner.wal.as_mut() else { return Err(StoreError::ReadOnly(dir)) };
        if inner.stopped || wal.is_stopped() {
            return Err(StoreError::Stopped(dir));
        }
        let seq = inner.seq + 1;
        let entry = WalEntry { seq, rows };
        if let Err(e) = wal.append(&entry) {
            inner.stopped = true;
            return Err(e.into());
        }
        inner.seq = seq;
        rows = entry.rows;
        inner.buffer.append(&mut rows);
        self.bump();
        inner.buffered_since.get_or_insert_with(Instant::now);
        let full = inner.buffer.len() >= self.config.buffer_rows;
        let elapsed = started.elapsed();
        inner.longest_ack = inner.longest_ack.max(elapsed);
        drop(guard);
        if full {
            if self.config.background {
                let _ = self.wake.try_send(());
            } else if let Err(e) = self.publish() {
                // The rows are durable in the WAL: a failed publication is retried later and
                // does not fail the acknowledgement.
                tracing::error!(error = %e, "publishing Parquet files failed; rows stay in the WAL");
            }
        }
        Ok(seq)
    }

    /// Publishes the buffer: seals the WAL segment under the lock, writes Parquet without
    /// it, then swaps the manifest and deletes the covered segments under it again.
    fn publish(&self) -> Result<(), StoreError> {
        let _one = self.publish_lock.lock().unwrap_or_else(|p| p.into_inner());
        // The next WAL segment is created (with its fsyncs) before taking the lock that
        // appends wait for; under it the WAL only switches segments.
        let next = {
            let inner = self.lock();
            if inner.buffer.is_empty() {
                return Ok(());
            }
            if inner.stopped {
                return Err(StoreError::Stopped(self.config.dir.clone()));
            }
            inner.wal.as_ref().ok_or_else(|| StoreError::ReadOnly(self.config.dir.clone()))?.next_segment()
        };
        crate::wal::prepare_segment(&*next.0, &next.1)?;
        let (rows, seq_end, unsynced) = {
            let mut inner = self.lock();
            let started = Instant::now();
            if inner.buffer.is_empty() {
                return Ok(());
            }
            let dir = self.config.dir.clone();
            let unsynced = inner.wal.as_mut().ok_or(StoreError::ReadOnly(dir))?.rotate(true)?;
            inner.buffered_since = None;
            // Readers keep seeing the rows while they are being written (`in_flight`), until
            // the manifest that lists their files replaces them in one step.
            let rows = Arc::new(std::mem::take(&mut inner.buffer));
            inner.in_flight = Some(rows.clone());
            inner.longest_hold = inner.longest_hold.max(started.elapsed());
            (rows, inner.seq, unsynced)
        };
        // Group commit: the sealed segment's last appends are made durable here, without
        // the lock; a failure stops the store like any fsync error.
        if let Some(path) = unsynced
            && let Err(e) = self.fs.sync(&path)
        {
            let mut inner = self.lock();
            inner.stopped = true;
            let err = inner.wal.as_mut().map(|w| w.sync_failed(&path, e));
            let restore_rows = inner.in_flight.take();
            if let Some(r) = restore_rows {
                let mut older = (*r).clone();
                older.append(&mut std::mem::take(&mut inner.buffer));
                inner.buffer = older;
            }
            return Err(err.map_or_else(|| StoreError::Stopped(self.config.dir.clone()), Into::into));
        }
        let restore = |inner: &mut Inner| {
            let mut older = inner.in_flight.take().map(|r| (*r).clone()).unwrap_or_default();
            let newer = std::mem::take(&mut inner.buffer);
            older.append(&mut { newer });
            inner.buffer = older;
            inner.buffered_since.get_or_insert_with(Instant::now);
        };
        let written = match self.write_files((*rows).clone()) {
            Ok(w) => w,
            Err(e) => {
                restore(&mut self.lock());
                return Err(e);
            }
        };
        // Only publication and maintenance change the manifest, and both hold
        // `publish_lock`: it can be written durably without the lock appends wait for.
        let mut manifest = self.lock().manifest.clone();
        manifest.files.extend(written);
        manifest.covered_seq = manifest.covered_seq.max(seq_end);
        manifest.next_file = self.next_file.load(std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.write_manifest(&manifest) {
            restore(&mut self.lock());
            return Err(e);
        }
        let mut inner = self.lock();
        let started = Instant::now();
        inner.manifest = manifest;
        inner.in_flight = None;
        self.bump();
        // Only now may the WAL forget the rows.
        if let Some(wal) = inner.wal.as_mut() {
            wal.remove_covered(seq_end);
        }
        inner.longest_hold = inner.longest_hold.max(started.elapsed());
        Ok(())
    }

    fn write_manifest(&self, m: &Manifest) -> Result<(), StoreError> {
        self.objects.put(MANIFEST, &m.encode())
    }

    /// Writes rows as one file per (table, resolution, date), and per hour for raw rows
    /// (so a read of a short range opens few files); returns their entries.
    fn write_files(&self, rows: Rows) -> Result<Vec<FileEntry>, StoreError> {
        let hour =
            |res: Resolution, ms: i64| if res == Resolution::Raw { ms.div_euclid(3_600_000) } else { 0 };
        let mut groups: BTreeMap<(Table, Resolution, String, i64), Rows> = BTreeMap::new();
        for r in rows.distributions {
            let k = (Table::Distributions, r.resolution, date_of(r.start_ms), hour(r.resolution, r.start_ms));
            groups.entry(k).or_default().distributions.push(r);
        }
        for r in rows.scalars {
            let k = (Table::Scalars, r.resolution, date_of(r.start_ms), hour(r.resolution, r.start_ms));
            groups.entry(k).or_default().scalars.push(r);
        }
        for r in rows.events {
            groups.entry((Table::Events, Resolution::Raw, date_of(r.time_ms), 0)).or_default().events.push(r);
        }
        let mut out = Vec::new();
        for ((table, resolution, date, _), mut g) in groups {
            let (min_ms, max_ms) = time_range(&g);
            let n = g.len() as u64;
            let bytes = to_parquet(table, &mut g).map_err(|e| StoreError::Corrupt {
                path: self.config.dir.join(table.as_str()),
                problem: format!("encoding Parquet: {e}"),
            })?;
            let id = self.next_file.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let rel = format!(
                "{}/date={date}/resolution={}/part-{id:08}.parquet",
                table.as_str(),
                resolution.as_str()
            );
            self.objects.put(&rel, &bytes)?;
            out.push(FileEntry {
                table,
                resolution,
                date,
                path: rel,
                rows: n,
                bytes: bytes.len() as u64,
                min_ms,
                max_ms,
                source_rows: 0,
            });
        }
        Ok(out)
    }

    fn read_parts(&self, req: &ReadRequest) -> Result<Vec<Arc<Rows>>, StoreError> {
        match self.read_parts_once(req) {
            // A read-only view can list a file the writer's compaction has since replaced:
            // look at the current manifest and read again, once.
            Err(StoreError::Corrupt { problem, .. }) if self.read_only && problem == MISSING_FILE => {
                self.refresh()?;
                self.read_parts_once(req)
            }
            r => r,
        }
    }

    fn read_parts_once(&self, req: &ReadRequest) -> Result<Vec<Arc<Rows>>, StoreError> {
        let (files, pending) = {
            let inner = self.lock();
            let files: Vec<FileEntry> = inner
                .manifest
                .files
                .iter()
                .filter(|f| {
                    f.table == req.table
                        && f.resolution == req.resolution
                        && f.min_ms < req.to_ms
                        && f.max_ms >= req.from_ms
                })
                .cloned()
                .collect();
            // Acknowledged rows not in a listed file yet: being published, or buffered.
            let mut pending = Rows::default();
            if req.resolution == Resolution::Raw {
                for rows in inner.in_flight.iter().map(|r| &**r).chain([&inner.buffer]) {
                    pending
                        .distributions
                        .extend(rows.distributions.iter().filter(|r| req.keeps_distribution(r)).cloned());
                    pending.scalars.extend(rows.scalars.iter().filter(|r| req.keeps_scalar(r)).cloned());
                    pending.events.extend(rows.events.iter().filter(|e| req.keeps_event(e)).cloned());
                }
            }
            (files, pending)
        };
        let mut parts = Vec::with_capacity(files.len() + 1);
        for f in &files {
            if self.config.read_cache_bytes == 0 {
                parts.push(Arc::new(self.read_file(f, req.from_ms, req.to_ms, &req.tags)?));
                continue;
            }
            // Cached whole in time, so any range of the file is served from it. A small file
            // (a day of hourly roll-ups, an hour of raw rows for a few series) is cached
            // whole in tags too: every metric of a dashboard or a drift report then decodes
            // it once; a big one only for the tags asked (its other row groups stay skipped).
            let whole = (f.path.clone(), Vec::new());
            let mut tags = req.tags.clone();
            tags.sort();
            let key = if f.bytes <= WHOLE_FILE_BYTES { whole.clone() } else { (f.path.clone(), tags) };
            let cached = {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.get(&whole).or_else(|| cache.get(&key))
            };
            parts.push(match cached {
                Some(rows) => rows,
                None => {
                    let rows = Arc::new(self.read_file(f, i64::MIN, i64::MAX, &key.1)?);
                    let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    cache.insert(key, rows.clone(), self.config.read_cache_bytes);
                    rows
                }
            });
        }
        parts.push(Arc::new(pending));
        Ok(parts)
    }

    fn read(&self, req: &ReadRequest) -> Result<Rows, StoreError> {
        let mut out = Rows::default();
        for part in self.read_parts(req)? {
            match Arc::try_unwrap(part) {
                Ok(mut rows) => {
                    rows.distributions.retain(|r| req.keeps_distribution(r));
                    rows.scalars.retain(|r| req.keeps_scalar(r));
                    rows.events.retain(|e| req.keeps_event(e));
                    out.append(&mut rows);
                }
                Err(shared) => {
                    out.distributions
                        .extend(shared.distributions.iter().filter(|r| req.keeps_distribution(r)).cloned());
                    out.scalars.extend(shared.scalars.iter().filter(|r| req.keeps_scalar(r)).cloned());
                    out.events.extend(shared.events.iter().filter(|e| req.keeps_event(e)).cloned());
                }
            }
        }
        Ok(out)
    }

    fn read_file(
        &self,
        f: &FileEntry,
        from_ms: i64,
        to_ms: i64,
        tags: &[(String, String)],
    ) -> Result<Rows, StoreError> {
        let path = self.objects.location(&f.path);
        let bytes = self
            .objects
            .get(&f.path)?
            .ok_or_else(|| StoreError::Corrupt { path: path.clone(), problem: MISSING_FILE.into() })?;
        let batches = read_parquet(bytes.into(), from_ms, to_ms, tags)
            .map_err(|e| StoreError::Corrupt { path: path.clone(), problem: e.to_string() })?;
        rows_from(f.table, f.resolution, &batches)
            .map_err(|e| StoreError::Corrupt { path, problem: e.to_string() })
    }

    fn verify(&self) -> Vec<String> {
        let manifest = self.lock().manifest.clone();
        verify_files(&*self.objects, &*self.fs, &self.config.dir, &manifest)
    }

    /// Compacts, rolls up and applies retention, as of `now_ms`. Heavy work runs without
    /// the store's lock (appends go on); the lock is held only to swap the manifest.
    fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StoreError> {
        let mut report = MaintenanceReport::default();
        self.publish()?;
        // No publication while the file set is being rewritten.
        let _one = self.publish_lock.lock().unwrap_or_else(|p| p.into_inner());
        let manifest = self.lock().manifest.clone();
        let mut replace: Vec<(Vec<FileEntry>, Rows, u64)> = Vec::new();

        // Roll-ups: a day's 1m and 1h rows are recomputed from all its raw rows when raw
        // rows arrived since they were made (their `source_rows` no longer matches).
        let mut days: BTreeMap<(Table, String), Vec<&FileEntry>> = BTreeMap::new();
        for f in manifest.files.iter().filter(|f| f.table != Table::Events) {
            days.entry((f.table, f.date.clone())).or_default().push(f);
        }
        for files in days.values() {
            let raw: Vec<&FileEntry> =
                files.iter().copied().filter(|f| f.resolution == Resolution::Raw).collect();
            let raw_rows: u64 = raw.iter().map(|f| f.rows).sum();
            let rolled: Vec<FileEntry> =
                files.iter().filter(|f| f.resolution != Resolution::Raw).map(|f| (*f).clone()).collect();
            let fresh = !rolled.is_empty() && rolled.iter().all(|f| f.source_rows == raw_rows);
            if raw.is_empty() || fresh {
                continue;
            }
            let mut rows = Rows::default();
            for f in &raw {
                rows.append(&mut self.read_file(f, i64::MIN, i64::MAX, &[])?);
            }
            let mut up = roll_up(&rows, Resolution::Minute);
            up.append(&mut roll_up(&rows, Resolution::Hour));
            report.rolled_up_rows += up.len();
            replace.push((rolled, up, raw_rows));
        }
        // Compaction: the raw files of one hour (events: of one day) into one.
        let mut groups: BTreeMap<(Table, String, i64), Vec<&FileEntry>> = BTreeMap::new();
        for f in manifest.files.iter().filter(|f| f.resolution == Resolution::Raw) {
            let hour = if f.table == Table::Events { 0 } else { f.min_ms.div_euclid(3_600_000) };
            groups.entry((f.table, f.date.clone(), hour)).or_default().push(f);
        }
        for files in groups.into_values().filter(|g| g.len() > 1) {
            let mut rows = Rows::default();
            for f in &files {
                rows.append(&mut self.read_file(f, i64::MIN, i64::MAX, &[])?);
            }
            report.compacted_files += files.len();
            replace.push((files.into_iter().cloned().collect(), rows, 0));
        }
        // Retention: whole partitions past their resolution's age, roll-ups written in this
        // pass included.
        let is_expired = |f: &FileEntry| {
            let days = self.config.retention_days
                [Resolution::ALL.iter().position(|r| *r == f.resolution).unwrap_or(0)];
            f.max_ms < day_start(now_ms) - i64::from(days) * 86_400_000
        };
        let expired: Vec<FileEntry> = manifest.files.iter().filter(|f| is_expired(f)).cloned().collect();
        report.dropped_files = expired.len();

        let mut added = Vec::new();
        let mut removed: Vec<FileEntry> = expired.clone();
        for (old, rows, source_rows) in replace {
            let mut written = self.write_files(rows)?;
            written.iter_mut().for_each(|f| f.source_rows = source_rows);
            added.extend(written);
            removed.extend(old);
        }
        {
            // Under `publish_lock` (held since the start): written without the store's lock.
            let mut m = self.lock().manifest.clone();
            m.next_file = self.next_file.load(std::sync::atomic::Ordering::Relaxed);
            m.files.retain(|f| !removed.iter().any(|r| r.path == f.path));
            m.files.extend(added.iter().filter(|f| !is_expired(f)).cloned());
            self.write_manifest(&m)?;
            let mut inner = self.lock();
            let started = Instant::now();
            inner.manifest = m;
            self.bump();
            inner.longest_hold = inner.longest_hold.max(started.elapsed());
        }
        for f in removed.iter().chain(added.iter().filter(|f| is_expired(f))) {
            self.objects.delete(&f.path);
        }
        Ok(report)
    }
}

/// Reads every file a manifest lists and every WAL segment, changing nothing; returns what
/// is damaged, each naming the file (and for the WAL the offset).
fn verify_files(objects: &dyn Objects, fs: &dyn Fs, dir: &Path, manifest: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for f in &manifest.files {
        let path = objects.location(&f.path);
        let rows = objects
            .get(&f.path)
            .map_err(|e| e.to_string())
            .and_then(|b| b.ok_or_else(|| MISSING_FILE.to_string()))
            .and_then(|b| read_parquet(b.into(), i64::MIN, i64::MAX, &[]).map_err(|e| e.to_string()))
            .and_then(|batches| rows_from(f.table, f.resolution, &batches).map_err(|e| e.to_string()));
        match rows {
            Ok(rows) if rows.len() as u64 != f.rows => problems.push(format!(
                "{}: {} rows, the manifest says {}",
                path.display(),
                rows.len(),
                f.rows
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    let wal_dir = dir.join(WAL_DIR);
    let segments = match crate::wal::segment_paths(fs, &wal_dir) {
        Ok(s) => s,
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    for wal in segments {
        match fs.read(&wal).map(|b| crate::wal::decode(&b)) {
            Ok(Ok(c)) => {
                if let Some(d) = c.damage {
                    problems.push(format!("{}: damaged at offset {}: {}", wal.display(), d.offset, d.reason));
                }
            }
            Ok(Err(e)) => problems.push(format!("{}: {e}", wal.display())),
            Err(e) => problems.push(format!("{}: {e}", wal.display())),
        }
    }
    problems
}

/// Verifies a data directory without opening it as a store (nothing is repaired or
/// written): every file of the manifest and every WAL segment is read back.
/// Returns the number of files the manifest lists and the problems found.
pub fn verify_dir(
    dir: &Path,
    bucket: Option<&ObjectStoreConfig>,
) -> Result<(usize, Vec<String>), StoreError> {
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let objects = objects_for(&fs, dir, bucket)?;
    let manifest = read_manifest(&*objects)?;
    Ok((manifest.files.len(), verify_files(&*objects, &*fs, dir, &manifest)))
}

fn read_manifest(objects: &dyn Objects) -> Result<Manifest, StoreError> {
    match objects.get(MANIFEST)? {
        Some(b) => Manifest::decode(&b)
            .map_err(|problem| StoreError::Corrupt { path: objects.location(MANIFEST), problem }),
        None => Ok(Manifest::default()),
    }
}

/// What a maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Raw files merged into one per partition.
    pub compacted_files: usize,
    /// Rows written at the 1m and 1h resolutions.
    pub rolled_up_rows: usize,
    /// Files dropped by retention.
    pub dropped_files: usize,
}

fn time_range(rows: &Rows) -> (i64, i64) {
    let times = rows
        .distributions
        .iter()
        .map(|r| r.start_ms)
        .chain(rows.scalars.iter().map(|r| r.start_ms))
        .chain(rows.events.iter().map(|r| r.time_ms));
    times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)))
}

/// Merges raw rows into `res` buckets: distributions merge exactly (buckets add, moments
/// combine), counters add, gauges keep the latest value.
pub fn roll_up(raw: &Rows, res: Resolution) -> Rows {
    let Some(step) = res.step_ms() else { return raw.clone() };
    let mut dists: BTreeMap<(SeriesKey, i64), DistributionRow> = BTreeMap::new();
    for r in raw.distributions.iter().filter(|r| r.resolution == Resolution::Raw) {
        let start = r.start_ms.div_euclid(step) * step;
        let e = dists
            .entry((r.series.clone(), start))
            .or_insert_with(|| DistributionRow::empty(start, start + step, res, r.series.clone(), r.scheme));
        e.merge(r);
        e.start_ms = start;
        e.end_ms = start + step;
    }
    let mut scalars: BTreeMap<(SeriesKey, i64), (ScalarRow, i64)> = BTreeMap::new();
    for r in raw.scalars.iter().filter(|r| r.resolution == Resolution::Raw) {
        let start = r.start_ms.div_euclid(step) * step;
        let e = scalars.entry((r.series.clone(), start)).or_insert_with(|| {
            (
                ScalarRow { start_ms: start, end_ms: start + step, resolution: res, value: 0.0, ..r.clone() },
                i64::MIN,
            )
        });
        match r.kind {
            ScalarKind::Counter => e.0.value += r.value,
            ScalarKind::Gauge => {
                if r.start_ms >= e.1 {
                    e.0.value = r.value;
                    e.1 = r.start_ms;
                }
            }
        }
    }
    Rows {
        distributions: dists.into_values().collect(),
        scalars: scalars.into_values().map(|v| v.0).collect(),
        events: Vec::new(),
    }
}

impl Sink for Store {
    fn write(&self, snapshot: &Arc<Snapshot>) -> Result<(), SinkError> {
        self.append(Rows::from_snapshot(snapshot)).map(|_| ()).map_err(|e| SinkError {
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
