//! The decoded-file cache: rows of published files kept decoded, so repeated reads (a
//! dashboard's panels, a drift report's metrics) skip Parquet decoding.

use super::read::{ReadRequest, read_file};
use super::{Shared, StoreError};
use crate::manifest::FileEntry;
use crate::rows::{Rows, ScalarRow};
use std::collections::HashMap;
use std::sync::Arc;

/// Files up to this size are decoded and cached whole, whatever the tags asked.
const WHOLE_FILE_BYTES: u64 = 2 << 20;

/// A file's path and the tag filters its rows were read with.
type CacheKey = (String, Vec<(String, String)>);

/// Decoded rows of published files by (path, tag filters), least recently used first out.
/// Files are immutable once listed, so an entry never goes stale; a replaced file's entry
/// just ages out.
#[derive(Default)]
pub(super) struct FileCache {
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
        + rows.scalars.len() * std::mem::size_of::<ScalarRow>()
        + rows.events.iter().map(|e| std::mem::size_of_val(e) + e.message.len()).sum::<usize>()
}

impl Shared {
    /// The rows of a listed file a read needs: from the cache, or decoded and cached. Rows
    /// can lie outside the request's time range and tags; the caller filters.
    pub(super) fn cached_file(&self, f: &FileEntry, req: &ReadRequest) -> Result<Arc<Rows>, StoreError> {
        if self.config.read_cache_bytes == 0 {
            return Ok(Arc::new(read_file(&*self.objects, f, req.from_ms, req.to_ms, &req.tags)?));
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
        if let Some(rows) = cached {
            return Ok(rows);
        }
        let rows = Arc::new(read_file(&*self.objects, f, i64::MIN, i64::MAX, &key.1)?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(key, rows.clone(), self.config.read_cache_bytes);
        Ok(rows)
    }
}
