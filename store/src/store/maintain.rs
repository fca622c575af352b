//! Maintenance: roll-ups of raw rows to 1-minute and 1-hour rows, compaction of a
//! partition's raw files, retention; and the background worker that runs it (and publishes
//! a buffer that is due).

use super::read::read_file;
use super::{Shared, Store, StoreError};
use crate::manifest::{FileEntry, day_start};
use crate::rows::{DistributionRow, Resolution, Rows, ScalarKind, ScalarRow, SeriesKey};
use crate::table::Table;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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

impl Store {
    /// Compacts, rolls up and applies retention, as of `now_ms`.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StoreError> {
        self.shared.maintain(now_ms)
    }
}

impl Shared {
    /// The background thread: publishes the buffer when it is full or old enough, and
    /// maintains every `maintenance_every`, as of the configured clock's time.
    pub(super) fn run_worker(&self, woken: &std::sync::mpsc::Receiver<()>) {
        let mut last_maintenance = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let _ = woken.recv_timeout(Duration::from_millis(500));
            if self.stop.load(Ordering::Acquire) {
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
                let now = self.config.clock.now().as_millis() as i64;
                if let Err(e) = self.maintain(now) {
                    tracing::error!(error = %e, "store maintenance failed");
                }
            }
        }
    }

    /// Compacts, rolls up and applies retention, as of `now_ms`.
    fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StoreError> {
        let mut report = MaintenanceReport::default();
        self.publish()?;
        let _one = self.publish_lock.lock().unwrap_or_else(|p| p.into_inner());
        let manifest = self.lock().manifest.clone();
        let mut replace: Vec<(Vec<FileEntry>, Rows, u64)> = Vec::new();
        let read_all = |files: &[&FileEntry]| -> Result<Rows, StoreError> {
            let mut rows = Rows::default();
            for f in files {
                rows.append(&mut read_file(&*self.objects, f, i64::MIN, i64::MAX, &[])?);
            }
            Ok(rows)
        };

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
            let rows = read_all(&raw)?;
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
            let rows = read_all(&files)?;
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
            let mut m = self.lock().manifest.clone();
            m.next_file = self.next_file.load(Ordering::Relaxed);
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

/// Merges raw rows into `res` buckets: distributions merge exactly (buckets add, moments
/// combine), counters add, gauges keep the latest value.
fn roll_up(raw: &Rows, res: Resolution) -> Rows {
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
