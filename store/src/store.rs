//! The store: WAL-backed acknowledgement, buffered rows, Parquet publication through the
//! manifest, reads that merge files with not-yet-published rows, and maintenance
//! (compaction, roll-ups, retention).

use crate::fs::{Fs, RealFs, publish};
use crate::manifest::{FileEntry, Manifest, date_of, day_start};
use crate::rows::{DistributionRow, Resolution, Rows, ScalarKind, ScalarRow, SeriesKey};
use crate::table::{Table, read_parquet, rows_from, to_parquet};
use crate::wal::{Durability, Wal, WalDamage, WalEntry, WalError};
use modelwatch_agent::{Sink, SinkError, Snapshot};
use std::collections::BTreeMap;
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
}

impl StoreConfig {
    /// Defaults for a data directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            durability: Durability::Sync,
            buffer_rows: 50_000,
            retention_days: [7, 90, 730],
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
    wal: Wal,
    buffer: Rows,
    manifest: Manifest,
    seq: u64,
    stopped: bool,
    longest_hold: Duration,
}

/// The durable columnar store. Implements [`Sink`]: a snapshot is acknowledged once its rows
/// are in the WAL and synced per the durability policy.
pub struct Store {
    config: StoreConfig,
    fs: Arc<dyn Fs>,
    inner: Mutex<Inner>,
    recovery: Recovery,
}

const MANIFEST: &str = "manifest.json";
const WAL_FILE: &str = "wal/current.wal";

impl Store {
    /// Opens (or creates) a store on the real file system.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        Self::open_with(config, Arc::new(RealFs))
    }

    /// Opens a store over the given file operations (for fault-injection tests).
    pub fn open_with(config: StoreConfig, fs: Arc<dyn Fs>) -> Result<Store, StoreError> {
        let dir = config.dir.clone();
        fs.create_dir_all(&dir.join("wal")).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        let mpath = dir.join(MANIFEST);
        let manifest = if fs.exists(&mpath) {
            let b = fs.read(&mpath).map_err(|source| StoreError::Io { path: mpath.clone(), source })?;
            Manifest::decode(&b).map_err(|problem| StoreError::Corrupt { path: mpath.clone(), problem })?
        } else {
            Manifest::default()
        };
        let (wal, contents) = Wal::open(fs.clone(), &dir.join(WAL_FILE), config.durability)?;
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
            tracing::warn!(wal = %dir.join(WAL_FILE).display(), offset = d.offset, reason = %d.reason, "WAL damaged; records from this offset on were dropped");
        }
        let inner = Inner { wal, buffer, manifest, seq, stopped: false, longest_hold: Duration::ZERO };
        Ok(Store { config, fs, inner: Mutex::new(inner), recovery })
    }

    /// What `open` recovered from the WAL.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends rows durably (WAL + sync per policy) and returns their sequence number.
    pub fn append(&self, mut rows: Rows) -> Result<u64, StoreError> {
        let started = Instant::now();
        let mut inner = self.lock();
        if inner.stopped || inner.wal.is_stopped() {
            return Err(StoreError::Stopped(self.config.dir.clone()));
        }
        let seq = inner.seq + 1;
        let entry = WalEntry { seq, rows };
        if let Err(e) = inner.wal.append(&entry) {
            inner.stopped = true;
            return Err(e.into());
        }
        inner.seq = seq;
        rows = entry.rows;
        inner.buffer.append(&mut rows);
        if inner.buffer.len() >= self.config.buffer_rows {
            // The rows are durable in the WAL: a failed publication is retried later and
            // does not fail the acknowledgement.
            if let Err(e) = self.publish_locked(&mut inner) {
                tracing::error!(error = %e, "publishing Parquet files failed; rows stay in the WAL");
            }
        }
        let held = started.elapsed();
        inner.longest_hold = inner.longest_hold.max(held);
        Ok(seq)
    }

    /// The longest time an `append` took so far (its acknowledgement latency).
    pub fn longest_acknowledgement(&self) -> Duration {
        self.lock().longest_hold
    }

    /// Writes every buffered row as Parquet, lists the files in the manifest, then empties
    /// the WAL.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut inner = self.lock();
        self.publish_locked(&mut inner)
    }

    fn publish_locked(&self, inner: &mut Inner) -> Result<(), StoreError> {
        if inner.buffer.is_empty() {
            return Ok(());
        }
        if inner.stopped {
            return Err(StoreError::Stopped(self.config.dir.clone()));
        }
        let mut manifest = inner.manifest.clone();
        let rows = std::mem::take(&mut inner.buffer);
        let result = self.write_files(&mut manifest, rows.clone());
        let written = match result {
            Ok(w) => w,
            Err(e) => {
                inner.buffer = rows;
                return Err(e);
            }
        };
        manifest.files.extend(written);
        manifest.covered_seq = inner.seq;
        if let Err(e) = self.write_manifest(&manifest) {
            inner.buffer = rows;
            return Err(e);
        }
        inner.manifest = manifest;
        // Only now may the WAL forget the rows.
        inner.wal.reset()?;
        Ok(())
    }

    fn write_manifest(&self, m: &Manifest) -> Result<(), StoreError> {
        let path = self.config.dir.join(MANIFEST);
        publish(&*self.fs, &path, &m.encode()).map_err(|source| StoreError::Io { path, source })
    }

    /// Writes rows as one file per (table, resolution, date); returns their entries.
    fn write_files(&self, manifest: &mut Manifest, rows: Rows) -> Result<Vec<FileEntry>, StoreError> {
        let mut groups: BTreeMap<(Table, Resolution, String), Rows> = BTreeMap::new();
        for r in rows.distributions {
            groups
                .entry((Table::Distributions, r.resolution, date_of(r.start_ms)))
                .or_default()
                .distributions
                .push(r);
        }
        for r in rows.scalars {
            groups.entry((Table::Scalars, r.resolution, date_of(r.start_ms))).or_default().scalars.push(r);
        }
        for r in rows.events {
            groups.entry((Table::Events, Resolution::Raw, date_of(r.time_ms))).or_default().events.push(r);
        }
        let mut out = Vec::new();
        for ((table, resolution, date), mut g) in groups {
            let (min_ms, max_ms) = time_range(&g);
            let n = g.len() as u64;
            let bytes = to_parquet(table, &mut g).map_err(|e| StoreError::Corrupt {
                path: self.config.dir.join(table.as_str()),
                problem: format!("encoding Parquet: {e}"),
            })?;
            let id = manifest.next_file;
            manifest.next_file += 1;
            let rel = format!(
                "{}/date={date}/resolution={}/part-{id:08}.parquet",
                table.as_str(),
                resolution.as_str()
            );
            let path = self.config.dir.join(&rel);
            publish(&*self.fs, &path, &bytes)
                .map_err(|source| StoreError::Io { path: path.clone(), source })?;
            out.push(FileEntry {
                table,
                resolution,
                date,
                path: rel,
                rows: n,
                bytes: bytes.len() as u64,
                min_ms,
                max_ms,
            });
        }
        Ok(out)
    }

    /// The current manifest.
    pub fn manifest(&self) -> Manifest {
        self.lock().manifest.clone()
    }

    /// Bytes in the WAL (acknowledged rows not yet in Parquet, framed).
    pub fn wal_bytes(&self) -> u64 {
        self.lock().wal.len()
    }

    /// Rows acknowledged but not yet in Parquet files.
    pub fn buffered_rows(&self) -> usize {
        self.lock().buffer.len()
    }

    /// Reads rows matching `req` from the files and from acknowledged rows not yet
    /// published (read-your-writes), skipping files by partition and time range and row
    /// groups by statistics.
    pub fn read(&self, req: &ReadRequest) -> Result<Rows, StoreError> {
        let (files, mut pending) = {
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
            let buffered =
                if req.resolution == Resolution::Raw { inner.buffer.clone() } else { Rows::default() };
            (files, buffered)
        };
        let mut out = Rows::default();
        for f in &files {
            let mut rows = self.read_file(f, req.from_ms, req.to_ms)?;
            out.append(&mut rows);
        }
        out.append(&mut pending);
        out.distributions.retain(|r| req.keeps(&r.series, r.start_ms, r.resolution));
        out.scalars.retain(|r| req.keeps(&r.series, r.start_ms, r.resolution));
        out.events.retain(|e| {
            e.time_ms >= req.from_ms
                && e.time_ms < req.to_ms
                && req.tags.iter().all(|(k, v)| match k.as_str() {
                    "model" => &*e.model == v,
                    "kind" => &*e.kind == v,
                    "variant" => &*e.variant == v,
                    _ => true,
                })
        });
        Ok(out)
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

    fn read_file(&self, f: &FileEntry, from_ms: i64, to_ms: i64) -> Result<Rows, StoreError> {
        let path = self.config.dir.join(&f.path);
        let bytes = self.fs.read(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
        let batches = read_parquet(bytes.into(), from_ms, to_ms)
            .map_err(|e| StoreError::Corrupt { path: path.clone(), problem: e.to_string() })?;
        rows_from(f.table, f.resolution, &batches)
            .map_err(|e| StoreError::Corrupt { path, problem: e.to_string() })
    }

    /// Reads every file of the manifest and the WAL; returns what is damaged (empty when
    /// all is well).
    pub fn verify(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for f in self.manifest().files {
            match self.read_file(&f, i64::MIN, i64::MAX) {
                Ok(rows) if rows.len() as u64 != f.rows => {
                    problems.push(format!("{}: {} rows, the manifest says {}", f.path, rows.len(), f.rows))
                }
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        let wal = self.config.dir.join(WAL_FILE);
        match self.fs.read(&wal).map(|b| crate::wal::decode(&b)) {
            Ok(Ok(c)) => {
                if let Some(d) = c.damage {
                    problems.push(format!("{}: damaged at offset {}: {}", wal.display(), d.offset, d.reason));
                }
            }
            Ok(Err(e)) => problems.push(format!("{}: {e}", wal.display())),
            Err(e) => problems.push(format!("{}: {e}", wal.display())),
        }
        problems
    }

    /// Compacts, rolls up and applies retention, as of `now_ms`. Heavy work runs without
    /// the lock; the lock is held only to swap the manifest.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StoreError> {
        let mut report = MaintenanceReport::default();
        self.flush()?;
        let manifest = self.manifest();
        let mut replace: Vec<(Vec<FileEntry>, Rows)> = Vec::new();
        // Roll-ups: recompute each day's 1m and 1h rows from its raw rows.
        let mut days: BTreeMap<(Table, String), Vec<FileEntry>> = BTreeMap::new();
        for f in &manifest.files {
            if f.table != Table::Events {
                days.entry((f.table, f.date.clone())).or_default().push(f.clone());
            }
        }
        for ((table, _date), files) in &days {
            let raw: Vec<&FileEntry> = files.iter().filter(|f| f.resolution == Resolution::Raw).collect();
            if raw.is_empty() {
                continue;
            }
            let mut rows = Rows::default();
            for f in &raw {
                rows.append(&mut self.read_file(f, i64::MIN, i64::MAX)?);
            }
            for res in [Resolution::Minute, Resolution::Hour] {
                let old: Vec<FileEntry> = files.iter().filter(|f| f.resolution == res).cloned().collect();
                let rolled = roll_up(&rows, res);
                if !rolled.is_empty() {
                    report.rolled_up_rows += rolled.len();
                    replace.push((old, rolled));
                }
            }
            // Compaction of the raw partition.
            if raw.len() > 1 && *table != Table::Events {
                report.compacted_files += raw.len();
                replace.push((raw.iter().map(|f| (*f).clone()).collect(), rows));
            }
        }
        // Events compaction.
        let mut event_days: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
        for f in manifest.files.iter().filter(|f| f.table == Table::Events) {
            event_days.entry(f.date.clone()).or_default().push(f.clone());
        }
        for files in event_days.into_values().filter(|f| f.len() > 1) {
            let mut rows = Rows::default();
            for f in &files {
                rows.append(&mut self.read_file(f, i64::MIN, i64::MAX)?);
            }
            report.compacted_files += files.len();
            replace.push((files, rows));
        }
        // Retention: whole partitions past their resolution's age.
        let mut drop = Vec::new();
        for f in &manifest.files {
            let days = self.config.retention_days
                [Resolution::ALL.iter().position(|r| *r == f.resolution).unwrap_or(0)];
            let cutoff = day_start(now_ms) - i64::from(days) * 86_400_000;
            if f.max_ms < cutoff {
                drop.push(f.clone());
            }
        }
        report.dropped_files = drop.len();

        // Write the new files (no lock), then swap them into the manifest.
        let mut new_manifest_files = Vec::new();
        let mut removed: Vec<FileEntry> = drop.clone();
        {
            let mut scratch = self.manifest();
            for (old, rows) in replace {
                let written = self.write_files(&mut scratch, rows)?;
                new_manifest_files.extend(written);
                removed.extend(old);
            }
            let mut inner = self.lock();
            let started = Instant::now();
            let mut m = inner.manifest.clone();
            m.next_file = m.next_file.max(scratch.next_file);
            m.files.retain(|f| !removed.iter().any(|r| r.path == f.path));
            m.files.extend(new_manifest_files.into_iter().filter(|f| {
                !drop.iter().any(|d| d.date == f.date && d.table == f.table && d.resolution == f.resolution)
            }));
            self.write_manifest(&m)?;
            inner.manifest = m;
            inner.longest_hold = inner.longest_hold.max(started.elapsed());
        }
        for f in removed {
            let _ = self.fs.remove(&self.config.dir.join(&f.path));
        }
        Ok(report)
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
        let e = dists.entry((r.series.clone(), start)).or_insert_with(|| DistributionRow {
            start_ms: start,
            end_ms: start + step,
            resolution: res,
            count: 0,
            missing: 0,
            invalid: 0,
            sum: None,
            min: None,
            max: None,
            mean: None,
            m2: None,
            buckets: Vec::new(),
            ..r.clone()
        });
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
            sink: format!("store {}", self.config.dir.display()),
            seq: snapshot.seq,
            message: e.to_string(),
        })
    }

    fn close(&self) -> Result<(), SinkError> {
        self.flush().map_err(|e| SinkError {
            sink: format!("store {}", self.config.dir.display()),
            seq: 0,
            message: e.to_string(),
        })
    }
}
