//! Maintenance: roll-ups of raw rows to 1-minute and 1-hour rows, compaction of a
//! partition's raw files, retention; and the background worker that runs it (and publishes
//! a buffer that is due).

use super::read::{read_file, replaced_path};
use super::{Shared, Store, StoreError};
use crate::manifest::{FileEntry, Garbage, day_start};
use crate::rows::{DistributionRow, Resolution, Rows, ScalarKind, ScalarRow, SeriesKey};
use crate::table::Table;
use std::collections::{BTreeMap, HashSet};
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
    /// Distribution files of an older format written again as the current one.
    pub rewritten_files: usize,
}

/// At most this many files of an older format are written again per maintenance pass, so
/// that an upgraded store's first passes stay short; the rest follow in later passes.
const REWRITES_PER_PASS: usize = 32;

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
        // After a failed publication (disk full, bucket unreachable) the next try waits
        // 1 s, 2 s, 4 s … up to a minute; the rows stay in the WAL meanwhile.
        let mut retry_at = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let _ = woken.recv_timeout(self.tick());
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            self.sync_wal_if_due();
            let (due, failures) = {
                let i = self.lock();
                let due = i.buffer.len() >= self.config.buffer_rows
                    || i.buffered_since.is_some_and(|t| t.elapsed() >= self.config.publish_after);
                (due, i.publish_failures)
            };
            if due
                && Instant::now() >= retry_at
                && let Err(e) = self.publish()
            {
                let wait = Duration::from_secs(1 << failures.min(6)).min(Duration::from_secs(60));
                retry_at = Instant::now() + wait;
                tracing::error!(error = %e, retry_in = ?wait, "publishing Parquet files failed; rows stay in the WAL");
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

    /// How often the worker wakes: twice per group-commit interval, at most every 500 ms.
    fn tick(&self) -> Duration {
        let cap = Duration::from_millis(500);
        match self.config.durability {
            crate::wal::Durability::Interval(d) => (d / 2).clamp(Duration::from_millis(1), cap),
            _ => cap,
        }
    }

    /// Compacts, rolls up and applies retention, as of `now_ms`; deletes files whose grace
    /// period has passed and files a crash left unlisted.
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

        // Roll-ups. A raw file's `rolled_up` says its rows are in its day's 1m and 1h rows;
        // the roll-ups' `source_rows` counts the raw rows they hold. New raw rows of a day
        // that has roll-ups are merged into them (distributions merge exactly, counters
        // add). Scalars, whose gauges keep the latest value, are rolled up again from all
        // the day's raw rows instead while every raw row their roll-ups hold is still here;
        // once some have expired (a late or backfilled row for an old day) they are merged
        // too: recomputing from what is left would lose the rest.
        let mut rolled: HashSet<String> = HashSet::new();
        let mut days: BTreeMap<(Table, String), Vec<&FileEntry>> = BTreeMap::new();
        for f in manifest.files.iter().filter(|f| f.table != Table::Events) {
            days.entry((f.table, f.date.clone())).or_default().push(f);
        }
        for files in days.values() {
            let raw: Vec<&FileEntry> =
                files.iter().copied().filter(|f| f.resolution == Resolution::Raw).collect();
            let ups: Vec<&FileEntry> =
                files.iter().copied().filter(|f| f.resolution != Resolution::Raw).collect();
            let raw_rows: u64 = raw.iter().map(|f| f.rows).sum();
            let up_source = ups.first().map_or(0, |f| f.source_rows);
            // Manifests written before the flag: roll-ups made from exactly today's raw
            // rows cover them all.
            let legacy = !manifest.rolled_up_flags && !ups.is_empty() && up_source == raw_rows;
            let is_rolled = |f: &FileEntry| f.rolled_up || legacy;
            let fresh: Vec<&FileEntry> = raw.iter().copied().filter(|f| !is_rolled(f)).collect();
            if fresh.is_empty() {
                rolled.extend(raw.iter().map(|f| f.path.clone()));
                continue;
            }
            let present: u64 = raw.iter().filter(|f| is_rolled(f)).map(|f| f.rows).sum();
            // Distributions hold no gauge: merging the new rows into the stored roll-ups is
            // exact, and costs the new rows, not the day (late labels arrive every day).
            // Scalars are recomputed while their inputs are complete, for the gauges.
            let recompute =
                ups.is_empty() || (present == up_source && files[0].table != Table::Distributions);
            let (up, source_rows) = if recompute {
                let rows = read_all(&raw)?;
                let mut up = roll_up(&rows, Resolution::Minute);
                up.append(&mut roll_up(&rows, Resolution::Hour));
                (up, raw_rows)
            } else {
                let rows = read_all(&fresh)?;
                let mut up = roll_up(&rows, Resolution::Minute);
                up.append(&mut roll_up(&rows, Resolution::Hour));
                let stored = read_all(&ups)?;
                (merge_rolled(stored, up), up_source + fresh.iter().map(|f| f.rows).sum::<u64>())
            };
            report.rolled_up_rows += up.len();
            rolled.extend(raw.iter().map(|f| f.path.clone()));
            replace.push((ups.into_iter().cloned().collect(), up, source_rows));
        }
        // Compaction: the raw files of one hour (events: of one day) into one; files rolled
        // up and files not yet rolled up are kept apart.
        let is_rolled = |f: &FileEntry| f.rolled_up || rolled.contains(&f.path);
        let mut groups: BTreeMap<(Table, String, i64, bool), Vec<&FileEntry>> = BTreeMap::new();
        for f in manifest.files.iter().filter(|f| f.resolution == Resolution::Raw) {
            let hour = if f.table == Table::Events { 0 } else { f.min_ms.div_euclid(3_600_000) };
            groups.entry((f.table, f.date.clone(), hour, is_rolled(f))).or_default().push(f);
        }
        let mut compacted: Vec<(Vec<FileEntry>, Rows, bool)> = Vec::new();
        for ((.., flag), mut files) in groups.into_iter().filter(|g| g.1.len() > 1) {
            // Tiered: small files (late rows, recent publications) merge with each other,
            // and into the hour's big file only once together they are as big as it, so a
            // late row does not rewrite its whole hour (each row is rewritten O(log n) times).
            files.sort_by_key(|f| f.rows);
            let largest = files.last().map_or(0, |f| f.rows);
            let rest: u64 = files[..files.len() - 1].iter().map(|f| f.rows).sum();
            if rest < largest {
                files.pop();
            }
            if files.len() < 2 {
                continue;
            }
            let rows = read_all(&files)?;
            report.compacted_files += files.len();
            compacted.push((files.into_iter().cloned().collect(), rows, flag));
        }
        // Distribution files of format 1 (bucket bounds and quantiles stored: 2 to 3 times
        // the bytes) written again as the current format, each alone, unless this pass
        // rewrites them anyway (roll-ups of a changed day, compaction).
        let taken: HashSet<&str> = replace
            .iter()
            .flat_map(|r| &r.0)
            .chain(compacted.iter().flat_map(|c| &c.0))
            .map(|f| f.path.as_str())
            .collect();
        let to_rewrite: Vec<&FileEntry> = manifest
            .files
            .iter()
            .filter(|f| {
                f.table == Table::Distributions
                    && f.format < crate::table::FORMAT
                    && !taken.contains(f.path.as_str())
            })
            .collect();
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
        for (old, rows, flag) in compacted {
            let mut written = self.write_files(rows)?;
            written.iter_mut().for_each(|f| f.rolled_up = flag);
            added.extend(written);
            removed.extend(old);
        }
        // One file at a time (decoded rows of one file in memory, not of 32). A file that
        // cannot be read is named and left as it is: reads of it fail as they did, and the
        // rest of maintenance goes on.
        let mut rewrites: Vec<(FileEntry, Vec<FileEntry>)> = Vec::new();
        for old in to_rewrite.into_iter().filter(|f| !is_expired(f)) {
            if rewrites.len() == REWRITES_PER_PASS {
                break;
            }
            let rows = match read_all(&[old]) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, file = %old.path, "could not read a file of an older format to rewrite it");
                    continue;
                }
            };
            let mut written = self.write_files(rows)?;
            for f in &mut written {
                // As it stands after this pass: a raw file it just rolled up is rolled up.
                f.rolled_up = old.rolled_up || rolled.contains(&old.path);
                f.source_rows = old.source_rows;
            }
            rewrites.push((old.clone(), written));
        }
        report.rewritten_files = rewrites.len();
        removed.extend(rewrites.iter().map(|(old, _)| old.clone()));
        // Replaced and expired files stay readable for the grace period (a reader may
        // still hold the previous manifest); then they are deleted.
        let clock_ms = self.config.clock.now().as_millis() as i64;
        let grace_ms = i64::try_from(self.config.delete_grace.as_millis()).unwrap_or(i64::MAX);
        let mut due = Vec::new();
        {
            let mut m = self.lock().manifest.clone();
            m.next_file = self.next_file.load(Ordering::Relaxed);
            // A rewritten file takes its old place in the list: readers merge files in list
            // order, and the same order keeps every float bit.
            for (old, new) in &rewrites {
                if let Some(i) = m.files.iter().position(|f| f.path == old.path) {
                    m.files.splice(i..=i, new.iter().cloned());
                }
            }
            m.files.retain(|f| !removed.iter().any(|r| r.path == f.path));
            for f in m.files.iter_mut().filter(|f| rolled.contains(&f.path)) {
                f.rolled_up = true;
            }
            m.files.extend(added.iter().filter(|f| !is_expired(f)).cloned());
            let mut seen: HashSet<String> = m.garbage.iter().map(|g| g.path.clone()).collect();
            for f in &removed {
                if seen.insert(f.path.clone()) {
                    m.garbage.push(Garbage { path: f.path.clone(), since_ms: clock_ms });
                }
            }
            let (gone, keep): (Vec<Garbage>, Vec<Garbage>) = std::mem::take(&mut m.garbage)
                .into_iter()
                .partition(|g| clock_ms.saturating_sub(g.since_ms) >= grace_ms);
            m.garbage = keep;
            due.extend(gone.into_iter().map(|g| g.path));
            self.write_manifest(&mut m)?;
            let mut inner = self.lock();
            let started = Instant::now();
            inner.manifest = m;
            self.bump();
            inner.longest_hold = inner.longest_hold.max(started.elapsed());
        }
        // Unlisted now: out of the Hive layout (so a glob over it counts each row once),
        // still readable where a reader holding the previous manifest looks next.
        for f in &removed {
            if let Err(e) = self.objects.rename(&f.path, &replaced_path(&f.path)) {
                tracing::warn!(error = %e, file = %f.path, "could not move a replaced file aside");
            }
        }
        for path in &due {
            self.objects.delete(&replaced_path(path));
            self.objects.delete(path); // if a crash came before it was moved aside
        }
        // Roll-ups of a day already past retention were never listed: no reader has them.
        for f in added.iter().filter(|f| is_expired(f)) {
            self.objects.delete(&f.path);
        }
        let m = self.lock().manifest.clone();
        super::open::collect_orphans(&*self.objects, &self.writer_id, &m, clock_ms, self.config.delete_grace);
        Ok(report)
    }
}

/// Merges newly rolled-up rows into stored roll-up rows of the same resolution, series and
/// start: distributions merge exactly, counters add; for gauges the stored value stays (it
/// came from later raw rows than a late arrival, as far as anyone can tell once the raw
/// rows are gone) and a new one fills only a bucket that had none.
fn merge_rolled(stored: Rows, new: Rows) -> Rows {
    let mut dists: BTreeMap<(Resolution, SeriesKey, i64), DistributionRow> = BTreeMap::new();
    for r in stored.distributions.into_iter().chain(new.distributions) {
        match dists.entry((r.resolution, r.series.clone(), r.start_ms)) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&r),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(r);
            }
        }
    }
    let mut scalars: BTreeMap<(Resolution, SeriesKey, i64), ScalarRow> = BTreeMap::new();
    for r in stored.scalars.into_iter().chain(new.scalars) {
        match scalars.entry((r.resolution, r.series.clone(), r.start_ms)) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if r.kind == ScalarKind::Counter {
                    e.get_mut().value += r.value;
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(r);
            }
        }
    }
    Rows {
        distributions: dists.into_values().collect(),
        scalars: scalars.into_values().collect(),
        ..Rows::default()
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
        ..Rows::default()
    }
}
