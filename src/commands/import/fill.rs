//! The second pass's reading side, on a thread of its own: it reads the records from where
//! the store's progress left off, parses them into batches and hands each full batch over
//! a channel, while the importing thread replays and appends the one before. Two batches
//! circulate between the threads, so memory stays at two batches of parsed rows.

use super::columns::Columns;
use super::input::Source;
use super::replay::Batch;
use super::scan::Schema;
use anyhow::bail;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

/// Rejected rows kept for the report (`--format json` lists them; the table shows 20).
const REJECTS_KEPT: usize = 1_000;

/// What the reading side needs.
pub(super) struct Reading<'a> {
    pub(super) path: &'a Path,
    pub(super) columns: &'a Columns,
    pub(super) schema: &'a Schema,
    pub(super) now_ms: i64,
    pub(super) strict: bool,
    /// Records stored by an earlier run, skipped.
    pub(super) skip: u64,
    /// Records in the file (from the first pass).
    pub(super) total: u64,
    /// Input records in the next batch: set by the importing thread, from the store rows
    /// the last batch made.
    pub(super) batch_rows: &'a AtomicUsize,
    /// The agents' interval, in milliseconds.
    pub(super) interval_ms: i64,
}

/// Rejected rows: all counted, the first [`REJECTS_KEPT`] kept with their line and reason.
#[derive(Default)]
pub(super) struct Rejects {
    pub(super) total: u64,
    pub(super) kept: Vec<(u64, String)>,
    /// Rejects by the field named first in their reason.
    pub(super) by_field: BTreeMap<String, u64>,
}

impl Rejects {
    fn add(&mut self, line: Option<u64>, reason: String) {
        self.total += 1;
        let field = reason.split(' ').next().unwrap_or("").trim_end_matches(':').to_string();
        *self.by_field.entry(field).or_default() += 1;
        if let Some(line) = line {
            self.kept.push((line, reason));
        }
    }
}

/// Reads every record after `skip` into batches taken from `free` and sent to `full`; stops
/// early, without error, when the importing thread hangs up. Fails when a record is bad
/// under `--strict`, or the file is not the one the first pass read.
pub(super) fn read_batches(
    r: Reading<'_>,
    free: Receiver<Batch>,
    full: SyncSender<Batch>,
) -> anyhow::Result<Rejects> {
    let features: Vec<usize> = r.columns.features.iter().map(|f| f.0).collect();
    let mut source = Source::open(r.path)?;
    source.start(&r.columns.uses(), r.skip)?;
    let mut rejects = Rejects::default();
    let mut offset = r.skip;
    let mut carried = None;
    loop {
        let Ok(mut batch) = free.recv() else { return Ok(rejects) };
        batch.clear();
        if let Some(c) = carried.take() {
            batch.put(c);
        }
        // A batch ends where an interval does, when the input is in time order: with `want`
        // records, at the first row of a later interval than the rows before it (which
        // starts the next batch), or at twice `want`. An interval then spans two batches
        // only in unsorted input, and is stored as two rows, not one.
        let want = (r.batch_rows.load(Ordering::Relaxed) as u64).min(r.total - offset);
        let interval_of = |ts: i64| ts.div_euclid(r.interval_ms);
        let mut latest = batch.last_ts().map(interval_of);
        while batch.records < want.saturating_mul(2) && offset + batch.records < r.total {
            let Some(record) = source.next()? else { return Err(super::changed(r.path)) };
            batch.records += 1;
            let parsed = match &record.cells {
                Ok(cells) => r.columns.parse(cells, r.now_ms).map(|f| (f, cells)),
                Err(e) => Err(e.clone()),
            };
            let at = record.at;
            match parsed {
                Ok((fields, cells)) => {
                    if !batch.push(r.schema, &fields, cells, &features) {
                        return Err(super::changed(r.path));
                    }
                    let interval = batch.last_ts().map(interval_of);
                    if batch.records > want && interval > latest {
                        carried = batch.take_last(features.len());
                        break;
                    }
                    latest = latest.max(interval);
                }
                Err(reason) if r.strict => bail!("{}: line {}: {reason}", r.path.display(), source.line(at)?),
                Err(reason) => {
                    batch.rejected += 1;
                    // Lines are counted on a second reading: only for the rejects kept.
                    let line = if rejects.kept.len() < REJECTS_KEPT { Some(source.line(at)?) } else { None };
                    rejects.add(line, reason);
                }
            }
        }
        offset += batch.records;
        if full.send(batch).is_err() {
            return Ok(rejects);
        }
        if offset == r.total {
            if source.next()?.is_some() {
                return Err(super::changed(r.path));
            }
            return Ok(rejects);
        }
    }
}
