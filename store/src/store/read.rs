//! Reads: the manifest's files that can hold the request's rows (through the decoded-file
//! cache), merged with acknowledged rows not published yet (read-your-writes).

use super::{Shared, Store, StoreError};
use crate::columns::Columns;
use crate::manifest::FileEntry;
use crate::objects::Objects;
use crate::rows::{DistributionRow, EventRow, Resolution, Rows, ScalarRow, SeriesKey};
use crate::table::{Table, read_parquet, rows_from};
use std::sync::Arc;

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
    /// At a roll-up resolution, also the raw rows the roll-ups do not hold yet (rows
    /// acknowledged or published since the last maintenance, late rows of an old interval
    /// among them), read from the same manifest as the roll-ups, so that no row is both
    /// rolled up and raw in the answer. Raw rows of a manifest written before raw files
    /// carried `rolled_up` are not included.
    pub unrolled: bool,
}

impl ReadRequest {
    /// Everything of `table` at `resolution` in `[from_ms, to_ms)`.
    pub fn new(table: Table, from_ms: i64, to_ms: i64, resolution: Resolution) -> Self {
        ReadRequest { table, from_ms, to_ms, resolution, tags: Vec::new(), unrolled: false }
    }

    /// Adds a tag filter.
    pub fn tag(mut self, k: &str, v: &str) -> Self {
        self.tags.push((k.into(), v.into()));
        self
    }

    /// With the raw rows not rolled up yet ([`ReadRequest::unrolled`]).
    pub fn with_unrolled(mut self) -> Self {
        self.unrolled = true;
        self
    }

    fn keeps(&self, series: &SeriesKey, start: i64, res: Resolution) -> bool {
        (res == self.resolution || (self.unrolled && res == Resolution::Raw))
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
    pub fn keeps_event(&self, e: &EventRow) -> bool {
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

    /// Moves or copies the rows of `part` this request keeps into `out`.
    fn collect_into(&self, part: Arc<Rows>, out: &mut Rows) {
        match Arc::try_unwrap(part) {
            Ok(mut rows) => {
                rows.distributions.retain(|r| self.keeps_distribution(r));
                rows.scalars.retain(|r| self.keeps_scalar(r));
                rows.events.retain(|e| self.keeps_event(e));
                out.append(&mut rows);
            }
            Err(shared) => self.copy_into(&shared, out),
        }
    }

    /// Copies the rows of `rows` this request keeps into `out`.
    fn copy_into(&self, rows: &Rows, out: &mut Rows) {
        out.distributions.extend(rows.distributions.iter().filter(|r| self.keeps_distribution(r)).cloned());
        out.scalars.extend(rows.scalars.iter().filter(|r| self.keeps_scalar(r)).cloned());
        out.events.extend(rows.events.iter().filter(|e| self.keeps_event(e)).cloned());
    }
}

impl Store {
    /// Reads rows matching `req` from the files and from acknowledged rows not yet
    /// published (read-your-writes), skipping files by partition and time range and row
    /// groups by statistics.
    pub fn read(&self, req: &ReadRequest) -> Result<Rows, StoreError> {
        let mut out = Rows::default();
        for part in self.shared.read_parts(req)? {
            req.collect_into(part, &mut out);
        }
        Ok(out)
    }

    /// The rows of [`Store::read`] without copying them: the decoded rows of each file
    /// (shared with the read cache) and the acknowledged rows not yet published. Parts can
    /// hold rows outside the request; keep those for which `req.keeps_*` holds.
    pub fn read_parts(&self, req: &ReadRequest) -> Result<Vec<Arc<Rows>>, StoreError> {
        self.shared.read_parts(req)
    }

    /// The rows of [`Store::read_parts`] as Arrow columns: each file's columns (decoded once
    /// and shared with the read cache), then the acknowledged rows not yet published,
    /// converted. Parts can hold rows outside the request, as for `read_parts`. Events have
    /// no columnar form: an events request reads nothing.
    pub fn read_columns(&self, req: &ReadRequest) -> Result<Vec<Arc<Columns>>, StoreError> {
        self.shared.read_columns(req)
    }

    /// What any read of rows starting in `[from_ms, to_ms)` draws on: the paths of the
    /// listed files (every table and resolution, every writer slot) whose rows can start
    /// there, sorted, and whether acknowledged distribution or scalar rows not yet published
    /// start there. While both stay the same, so does every answer about the range: a late
    /// row publishes a new file, compaction and roll-ups replace files, retention drops
    /// them. What caches of computed answers key on.
    pub fn range_sources(&self, from_ms: i64, to_ms: i64) -> (Vec<String>, bool) {
        let inner = self.shared.lock();
        let manifests = std::iter::once(&inner.manifest).chain(inner.peers.iter().map(|p| &p.manifest));
        let mut files: Vec<String> = manifests
            .flat_map(|m| &m.files)
            .filter(|f| f.min_ms < to_ms && f.max_ms >= from_ms)
            .map(|f| f.path.clone())
            .collect();
        files.sort();
        let peers = inner.peers.iter().map(|p| &*p.buffer);
        let pending = inner.in_flight.iter().map(|r| &**r).chain([&inner.buffer]).chain(peers).any(|rows| {
            let inside = |t: i64| t >= from_ms && t < to_ms;
            rows.distributions.iter().any(|r| inside(r.start_ms))
                || rows.scalars.iter().any(|r| inside(r.start_ms))
        });
        (files, pending)
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
}

impl Shared {
    fn read_parts(&self, req: &ReadRequest) -> Result<Vec<Arc<Rows>>, StoreError> {
        match self.read_parts_once(req) {
            // Another slot's file may have been replaced by its writer's compaction (and its
            // grace period passed) since we read that slot: read the slots again, once.
            Err(StoreError::MissingFile { .. }) => {
                self.refresh()?;
                self.read_parts_once(req)
            }
            r => r,
        }
    }

    fn read_parts_once(&self, req: &ReadRequest) -> Result<Vec<Arc<Rows>>, StoreError> {
        let (files, pending) = self.sources(req);
        let mut parts = Vec::with_capacity(files.len() + 1);
        for f in &files {
            parts.push(self.cached_file(f, req)?);
        }
        parts.push(Arc::new(pending));
        Ok(parts)
    }

    fn read_columns(&self, req: &ReadRequest) -> Result<Vec<Arc<Columns>>, StoreError> {
        match self.read_columns_once(req) {
            // As for `read_parts`: a peer's compaction may have replaced a file.
            Err(StoreError::MissingFile { .. }) => {
                self.refresh()?;
                self.read_columns_once(req)
            }
            r => r,
        }
    }

    fn read_columns_once(&self, req: &ReadRequest) -> Result<Vec<Arc<Columns>>, StoreError> {
        let (files, pending) = self.sources(req);
        let mut parts = Vec::with_capacity(files.len() + 1);
        for f in &files {
            parts.extend(self.cached_columns(f, req)?);
        }
        // The acknowledged rows not yet published are few (a buffer's worth): converted per
        // read rather than cached, as they change with every append.
        if !pending.is_empty() {
            parts.extend(Columns::from_rows(req.table, &pending).map(Arc::new));
        }
        Ok(parts)
    }

    /// The listed files that can hold the request's rows, and the acknowledged rows not in
    /// a listed file yet that it keeps, taken together under the store's lock.
    fn sources(&self, req: &ReadRequest) -> (Vec<FileEntry>, Rows) {
        let inner = self.lock();
        let unrolled = req.unrolled && req.resolution != Resolution::Raw;
        let wanted = |flags: bool, f: &FileEntry| {
            f.table == req.table
                && (f.resolution == req.resolution
                    || (unrolled && flags && f.resolution == Resolution::Raw && !f.rolled_up))
                && f.min_ms < req.to_ms
                && f.max_ms >= req.from_ms
        };
        // This writer's files and every other slot's: their paths never collide.
        let manifests = std::iter::once(&inner.manifest).chain(inner.peers.iter().map(|p| &p.manifest));
        let files: Vec<FileEntry> = manifests
            .flat_map(|m| m.files.iter().filter(|f| wanted(m.rolled_up_flags, f)))
            .cloned()
            .collect();
        // Acknowledged rows not in a listed file yet: being published, or buffered, here or
        // in another slot's WAL.
        let mut pending = Rows::default();
        if req.resolution == Resolution::Raw || unrolled {
            let peers = inner.peers.iter().map(|p| &*p.buffer);
            for rows in inner.in_flight.iter().map(|r| &**r).chain([&inner.buffer]).chain(peers) {
                req.copy_into(rows, &mut pending);
            }
        }
        (files, pending)
    }
}

/// Reads the rows of a listed file in `[from_ms, to_ms)` matching `tags` (row groups are
/// skipped by their statistics; rows outside can remain). A file the objects no longer
/// hold is [`StoreError::MissingFile`].
pub(super) fn read_file(
    objects: &dyn Objects,
    f: &FileEntry,
    from_ms: i64,
    to_ms: i64,
    tags: &[(String, String)],
) -> Result<Rows, StoreError> {
    let path = objects.location(&f.path);
    let batches = read_parquet(file_bytes(objects, f)?.into(), from_ms, to_ms, tags)
        .map_err(|e| StoreError::Corrupt { path: path.clone(), problem: e.to_string() })?;
    rows_from(f.table, f.resolution, &batches)
        .map_err(|e| StoreError::Corrupt { path, problem: e.to_string() })
}

/// The bytes of a listed file. A file replaced by compaction waits out its grace period
/// moved aside, out of the Hive layout's glob, where a reader holding the previous manifest
/// still finds it; a file in neither place is [`StoreError::MissingFile`].
pub(super) fn file_bytes(objects: &dyn Objects, f: &FileEntry) -> Result<Vec<u8>, StoreError> {
    match objects.get(&f.path)? {
        Some(b) => Ok(b),
        None => objects
            .get(&replaced_path(&f.path))?
            .ok_or_else(|| StoreError::MissingFile { path: objects.location(&f.path) }),
    }
}

/// Where a replaced file waits out its grace period: `writers/<id>/.replaced/<the rest>`.
pub(super) fn replaced_path(path: &str) -> String {
    let mut parts = path.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(w), Some(id), Some(rest)) if w == super::slot::WRITERS => format!("{w}/{id}/.replaced/{rest}"),
        _ => format!(".replaced/{path}"),
    }
}
