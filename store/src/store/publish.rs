//! The write path: an append is acknowledged once its rows are in the WAL and buffered;
//! publication writes the buffer as Parquet, swaps in a manifest that lists the files, and
//! only then lets the WAL forget the rows.

use super::{Inner, MANIFEST, Shared, Store, StoreError};
use crate::examples::{ExampleFile, ExampleSet, ModelExamples, model_dir};
use crate::manifest::{FileEntry, Manifest, date_of};
use crate::rows::{Resolution, Rows};
use crate::table::{Table, to_parquet};
use crate::wal::{Wal, WalEntry};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Store {
    /// Appends rows durably (WAL + sync per policy) and returns their sequence number.
    pub fn append(&self, rows: Rows) -> Result<u64, StoreError> {
        self.shared.append(rows)
    }

    /// Writes every buffered row as Parquet, lists the files in the manifest, then deletes
    /// the WAL segments that held them.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.publish()
    }

    /// The longest time an `append` took so far (its acknowledgement latency), and the
    /// longest time publication or maintenance held the store's lock.
    pub fn longest_acknowledgement(&self) -> (Duration, Duration) {
        let i = self.shared.lock();
        (i.longest_ack, i.longest_hold)
    }

    /// Bytes in the WAL (acknowledged rows not yet in Parquet, framed); for a read-only
    /// store, in every slot's WAL as last read.
    pub fn wal_bytes(&self) -> u64 {
        let inner = self.shared.lock();
        let peers: u64 =
            if self.shared.read_only { inner.peers.iter().map(|p| p.wal_bytes).sum() } else { 0 };
        inner.wal.as_ref().map_or(0, Wal::len) + peers
    }

    /// Rows acknowledged but not yet in Parquet files; for a read-only store, in every
    /// slot's WAL as last read.
    pub fn buffered_rows(&self) -> usize {
        let inner = self.shared.lock();
        let peers: usize =
            if self.shared.read_only { inner.peers.iter().map(|p| p.buffer.len()).sum() } else { 0 };
        inner.buffer.len() + peers
    }
}

impl Shared {
    fn append(&self, mut rows: Rows) -> Result<u64, StoreError> {
        let started = Instant::now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let dir = self.config.dir.clone();
        let Some(wal) = inner.wal.as_mut() else { return Err(StoreError::ReadOnly(dir)) };
        if inner.stopped || wal.is_stopped() {
            return Err(StoreError::Stopped(dir));
        }
        // Refused before the WAL write: a refusal is never an acknowledgement, and nothing
        // acknowledged is dropped; the WAL is exactly the rows waiting for publication.
        // Examples that could not be published (a feature named like a fixed column) would
        // stay in the WAL for good: refused here, by name.
        for m in &rows.examples {
            crate::examples::check_model_name(&m.model)?;
            m.set.validate()?;
        }
        let limit = self.config.max_unpublished_bytes;
        if wal.len() >= limit {
            return Err(StoreError::Full {
                dir,
                bytes: wal.len(),
                limit,
                last_error: inner
                    .last_publish_error
                    .clone()
                    .unwrap_or_else(|| "publication has not caught up with appends".into()),
            });
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

    /// Publishes the buffer (below), and keeps count of failures in a row for the
    /// worker's back-off and the refusal message.
    pub(super) fn publish(&self) -> Result<(), StoreError> {
        let result = self.publish_once();
        let mut inner = self.lock();
        match &result {
            Ok(()) => {
                inner.publish_failures = 0;
                inner.last_publish_error = None;
            }
            Err(e) => {
                inner.publish_failures = inner.publish_failures.saturating_add(1);
                inner.last_publish_error = Some(e.to_string());
            }
        }
        result
    }

    /// Publishes the buffer: seals the WAL segment, writes the rows as Parquet, swaps in a
    /// manifest that lists the files, then deletes the WAL segments it covers.
    fn publish_once(&self) -> Result<(), StoreError> {
        let _one = self.publish_lock.lock().unwrap_or_else(|p| p.into_inner());
        // The next WAL segment is created (with its fsyncs) before `inner` is taken to
        // switch to it.
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
            let unsynced = inner.wal.as_mut().ok_or(StoreError::ReadOnly(dir))?.seal(true)?;
            inner.buffered_since = None;
            // Readers keep seeing the rows while they are being written (`in_flight`), until
            // the manifest that lists their files replaces them in one step.
            let rows = Arc::new(std::mem::take(&mut inner.buffer));
            inner.in_flight = Some(rows.clone());
            inner.longest_hold = inner.longest_hold.max(started.elapsed());
            (rows, inner.seq, unsynced)
        };
        // Group commit: the sealed segment's last appends are made durable here; a failure
        // stops the store like any fsync error.
        if let Some(mut sealed) = unsynced
            && let Err(e) = sealed.sync()
        {
            let path = sealed.path().to_path_buf();
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
        let examples = match self.write_example_files(&rows.examples) {
            Ok(w) => w,
            Err(e) => {
                restore(&mut self.lock());
                return Err(e);
            }
        };
        // The next manifest is durable before it replaces the one readers see.
        let mut manifest = self.lock().manifest.clone();
        manifest.files.extend(written);
        manifest.examples.extend(examples);
        manifest.covered_seq = manifest.covered_seq.max(seq_end);
        manifest.next_file = self.next_file.load(Ordering::Relaxed);
        if let Err(e) = self.write_manifest(&mut manifest) {
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

    /// Makes `m` this writer's durable manifest (atomically replaced). In a bucket the put
    /// is conditional on the version this writer last read or wrote: if another process
    /// published under the same writer ID, this one stops instead of overwriting it.
    pub(super) fn write_manifest(&self, m: &mut Manifest) -> Result<(), StoreError> {
        let version = self.lock().manifest_version.clone();
        m.host = super::slot::host_name();
        m.rolled_up_flags = true;
        match self.objects.put_versioned(&self.own(MANIFEST), &m.encode(), version.as_deref()) {
            Ok(v) => {
                self.lock().manifest_version = v;
                Ok(())
            }
            Err(e @ StoreError::Conflict { .. }) => {
                self.lock().stopped = true;
                tracing::error!(error = %e, "writer ID conflict: this store stops");
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes rows as one file per (table, resolution, date), and per hour for raw rows
    /// (so a read of a short range opens few files); returns their entries.
    pub(super) fn write_files(&self, rows: Rows) -> Result<Vec<FileEntry>, StoreError> {
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
            let id = self.next_file.fetch_add(1, Ordering::Relaxed);
            let rel = self.own(&format!(
                "{}/date={date}/resolution={}/part-{id:08}-{:08x}.parquet",
                table.as_str(),
                resolution.as_str(),
                self.nonce
            ));
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
                rolled_up: false,
                format: crate::table::FORMAT,
            });
        }
        Ok(out)
    }
}

impl Shared {
    /// Writes labelled examples as one file per (model, feature list, UTC day of prediction
    /// time), in the wide layout, under `writers/<id>/examples/model=<name>/date=<day>/`;
    /// returns their entries.
    pub(super) fn write_example_files(
        &self,
        examples: &[ModelExamples],
    ) -> Result<Vec<ExampleFile>, StoreError> {
        let mut groups: BTreeMap<(&str, &[String], String), ExampleSet> = BTreeMap::new();
        for m in examples {
            for e in &m.set.rows {
                groups
                    .entry((&*m.model, &m.set.features[..], date_of(e.predicted_ms)))
                    .or_insert_with(|| ExampleSet::new(m.set.features.clone()))
                    .rows
                    .push(e.clone());
            }
        }
        let mut out = Vec::new();
        for ((model, _, date), mut set) in groups {
            // Sorted as reads return them, so a file read alone is in read order too.
            set.sort();
            let bytes = set.to_parquet()?;
            let id = self.next_file.fetch_add(1, Ordering::Relaxed);
            let rel = self.own(&format!(
                "examples/{}/date={date}/part-{id:08}-{:08x}.parquet",
                model_dir(model),
                self.nonce
            ));
            self.objects.put(&rel, &bytes)?;
            out.push(ExampleFile {
                model: model.to_string(),
                date,
                path: rel,
                rows: set.len() as u64,
                bytes: bytes.len() as u64,
                min_ms: set.rows.iter().map(|e| e.predicted_ms).min().unwrap_or(i64::MAX),
                max_ms: set.rows.iter().map(|e| e.predicted_ms).max().unwrap_or(i64::MIN),
                max_label_ms: set.rows.iter().map(|e| e.label_ms).max().unwrap_or(i64::MIN),
            });
        }
        Ok(out)
    }
}

/// The earliest and latest row time of `rows`, ms.
fn time_range(rows: &Rows) -> (i64, i64) {
    let times = rows
        .distributions
        .iter()
        .map(|r| r.start_ms)
        .chain(rows.scalars.iter().map(|r| r.start_ms))
        .chain(rows.events.iter().map(|r| r.time_ms));
    times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)))
}

impl Shared {
    /// Group commit's timer: syncs the WAL when `Durability::Interval(d)` has appends older
    /// than `d` and no append came to sync them.
    pub(super) fn sync_wal_if_due(&self) {
        let mut inner = self.lock();
        if let Some(wal) = inner.wal.as_mut()
            && let Err(e) = wal.sync_if_due()
        {
            inner.stopped = true;
            tracing::error!(error = %e, "WAL fsync failed; the store stops acknowledging");
        }
    }
}
