//! The decoded-file cache: published files kept decoded, as Arrow columns for the query
//! engine and as rows for the other readers, so repeated reads (a dashboard's panels, a
//! drift report's metrics) skip Parquet decoding. Both forms share one byte budget.

use super::read::{ReadRequest, read_file};
use super::{Shared, StoreError};
use crate::columns::{Columns, columns_from_parquet};
use crate::manifest::FileEntry;
use crate::rows::{Rows, ScalarRow};
use std::collections::HashMap;
use std::sync::Arc;

/// Files up to this size are decoded and cached whole, whatever the tags asked.
const WHOLE_FILE_BYTES: u64 = 2 << 20;

/// A file's path, the tag filters it was read with, whether as columns, and the span of
/// start times it was narrowed to (`None`: whole in time).
type CacheKey = (String, Vec<(String, String)>, bool, Option<(i64, i64)>);

/// A big file is read narrowed to a request's span of time when the span is at most this
/// share of the file's (a window's ragged edge in an hour of raw rows).
const NARROW_SHARE: i64 = 8;

/// A decoded file.
#[derive(Clone)]
pub(super) enum Decoded {
    /// As rows.
    Rows(Arc<Rows>),
    /// As columns (`None`: a table without a columnar form).
    Columns(Option<Arc<Columns>>),
}

impl Decoded {
    fn bytes(&self) -> usize {
        match self {
            Decoded::Rows(r) => approx_bytes(r),
            Decoded::Columns(c) => c.as_ref().map_or(0, |c| c.bytes()),
        }
    }
}

/// Decoded published files by (path, tag filters, form), least recently used first out.
/// Files are immutable once listed, so an entry never goes stale; a replaced file's entry
/// just ages out.
#[derive(Default)]
pub(super) struct FileCache {
    /// The decoded file, its approximate size and when it was last used.
    entries: HashMap<CacheKey, (Decoded, usize, u64)>,
    bytes: usize,
    tick: u64,
}

impl FileCache {
    fn get(&mut self, key: &CacheKey) -> Option<Decoded> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.2 = tick;
            e.0.clone()
        })
    }

    fn insert(&mut self, key: CacheKey, rows: Decoded, budget: usize) {
        let size = rows.bytes();
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
        + rows.scalars.len() * std::mem::size_of::<ScalarRow>()
        + rows.events.iter().map(|e| std::mem::size_of_val(e) + e.message.len()).sum::<usize>()
}

impl Shared {
    /// The rows of a listed file a read needs: from the cache, or decoded and cached. Rows
    /// can lie outside the request's time range and tags; the caller filters.
    pub(super) fn cached_file(&self, f: &FileEntry, req: &ReadRequest) -> Result<Arc<Rows>, StoreError> {
        let decoded = self.cached(f, req, false, |(from, to), _, tags| {
            Ok(Decoded::Rows(Arc::new(read_file(&*self.objects, f, from, to, tags)?)))
        })?;
        match decoded {
            Decoded::Rows(rows) => Ok(rows),
            Decoded::Columns(_) => Ok(Arc::default()),
        }
    }

    /// [`Shared::cached_file`] as columns.
    pub(super) fn cached_columns(
        &self,
        f: &FileEntry,
        req: &ReadRequest,
    ) -> Result<Option<Arc<Columns>>, StoreError> {
        let decoded = self.cached(f, req, true, |span, narrow, tags| {
            let bytes = super::read::file_bytes(&*self.objects, f)?;
            let path = self.objects.location(&f.path);
            columns_from_parquet(bytes.into(), f.table, f.resolution, span, tags, narrow)
                .map(|c| Decoded::Columns(c.map(Arc::new)))
                .map_err(|e| StoreError::Corrupt { path, problem: e.to_string() })
        })?;
        match decoded {
            Decoded::Columns(c) => Ok(c),
            Decoded::Rows(_) => Ok(None),
        }
    }

    fn cached(
        &self,
        f: &FileEntry,
        req: &ReadRequest,
        columns: bool,
        decode: impl FnOnce((i64, i64), bool, &[(String, String)]) -> Result<Decoded, StoreError>,
    ) -> Result<Decoded, StoreError> {
        // A few seconds of a big file (a ragged window edge in an hour of raw rows): only
        // those rows are decoded, and kept under that span.
        let span = (req.from_ms.max(f.min_ms), req.to_ms.min(f.max_ms.saturating_add(1)));
        let narrow = columns
            && f.bytes > WHOLE_FILE_BYTES
            && (span.1 - span.0).saturating_mul(NARROW_SHARE) <= f.max_ms.saturating_sub(f.min_ms);
        if self.config.read_cache_bytes == 0 {
            return decode((req.from_ms, req.to_ms), narrow, &req.tags);
        }
        // Cached whole in time, so any range of the file is served from it. A small file
        // (a day of hourly roll-ups, an hour of raw rows for a few series) is cached
        // whole in tags too: every metric of a dashboard or a drift report then decodes
        // it once; a big one only for the tags asked (its other row groups stay skipped).
        let whole = (f.path.clone(), Vec::new(), columns, None);
        let mut tags = req.tags.clone();
        tags.sort();
        let by_tags = (f.path.clone(), tags.clone(), columns, None);
        let key = if f.bytes <= WHOLE_FILE_BYTES {
            whole.clone()
        } else if narrow {
            (f.path.clone(), tags, columns, Some(span))
        } else {
            by_tags.clone()
        };
        let cached = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(&whole).or_else(|| cache.get(&by_tags)).or_else(|| cache.get(&key))
        };
        if let Some(d) = cached {
            return Ok(d);
        }
        let decoded =
            if narrow { decode(span, true, &key.1)? } else { decode((i64::MIN, i64::MAX), false, &key.1)? };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(key, decoded.clone(), self.config.read_cache_bytes);
        Ok(decoded)
    }
}
