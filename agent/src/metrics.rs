//! Generic metrics: `log_metric(name, value, tags)` and the handles behind it.
//!
//! A series is a name plus tags. The first use of a series anywhere registers it under the
//! registry's mutex and fixes its kind; each thread then remembers the resolution (its own
//! series, or a diversion to the overflow series) in a thread-local cache, so later calls
//! take no lock. Past `capacity` series the registry is frozen: its index becomes immutable
//! and is searched without a lock or an allocation, and values of unknown series go to the
//! `__overflow__` distribution series, counted. Every series has cells per shard, created on
//! the shard's first use of it within the metric part of the memory budget; past that, the
//! shared shard's cells take the value, and past those it is dropped and counted.

use crate::registry::Budget;
use crate::shard::{
    ALL_REGIONS, Cells, GAUGE_STAMP, MetricCells, NUM_BLOCK, NUM_REGIONS, SCALAR_ALLOC, SeriesCells, Shard,
    own_line,
};
use crate::sync::{AtomicBool, Mutex, Ordering, lock};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// The flag an agent sets when it is dropped (loom's `Arc` under loom, like the shards').
type Closed = crate::sync::Arc<AtomicBool>;

/// Name of the series that receives values of series past the cardinality limit.
pub const OVERFLOW_SERIES: &str = "__overflow__";

/// Entries a thread's series cache holds (at least; twice an agent's series capacity when
/// that is more) before it drops those of dropped agents, and then all of them.
const CACHE_LIMIT: usize = 65_536;

/// What a generic metric measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A running total; snapshots hold the interval's increase.
    Counter,
    /// A level; snapshots hold the last value set.
    Gauge,
    /// Observed values; snapshots hold their summary and sketch.
    Distribution,
}

impl MetricKind {
    /// Cells a series of this kind takes in each shard that writes it.
    pub(crate) fn cells(self) -> usize {
        match self {
            MetricKind::Counter | MetricKind::Gauge => SCALAR_ALLOC,
            MetricKind::Distribution => NUM_BLOCK,
        }
    }
}

/// A registered series.
#[derive(Debug)]
pub(crate) struct SeriesInfo {
    pub name: Arc<str>,
    pub tags: Arc<[(Arc<str>, Arc<str>)]>,
    pub kind: MetricKind,
}

/// The id of the overflow series; registered series have ids `1..=capacity`.
pub(crate) const OVERFLOW_ID: usize = 0;

/// The series id and kind a lookup resolved to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resolved {
    pub id: usize,
    pub kind: MetricKind,
    /// The kind the caller asked for (differs from `kind` when diverted).
    pub asked: MetricKind,
    /// The series was past the limit (recorded into the overflow series) or of another kind.
    pub diverted: Option<Diversion>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Diversion {
    Overflow,
    KindConflict,
}

pub(crate) struct MetricRegistry {
    pub agent: u64,
    pub capacity: usize,
    inner: Mutex<Inner>,
    /// The index once every id is taken: immutable, searched without a lock.
    frozen: OnceLock<Frozen>,
    /// The metric part of the memory budget: cells of series on shards, with mirrors.
    pub budget: Budget,
    /// The agent's "dropped" flag, so threads can prune their caches of dropped agents.
    closed: Closed,
}

/// A series' identity: its name and tags sorted by key, duplicates removed.
type SeriesKey = (Box<str>, Vec<(Box<str>, Box<str>)>);

/// The registry once full: series by id, and ids by [`identity_hash`].
struct Frozen {
    series: Vec<Arc<SeriesInfo>>,
    index: HashMap<u64, Vec<usize>>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<SeriesKey, usize>,
    series: Vec<Arc<SeriesInfo>>,
}

/// A hash of a name and a set of tags that depends neither on the tags' order nor on
/// repeats (registration keeps a tag set).
fn identity_hash(name: &str, tags: &[(&str, &str)]) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    let mut acc = h.finish();
    for (i, t) in tags.iter().enumerate() {
        if tags[..i].contains(t) {
            continue;
        }
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        acc = acc.wrapping_add(h.finish());
    }
    acc
}

impl MetricRegistry {
    /// A registry for `capacity` series plus the overflow series (id [`OVERFLOW_ID`]).
    pub fn new(agent: u64, capacity: usize, budget: Budget, closed: Closed) -> Self {
        let overflow = Arc::new(SeriesInfo {
            name: OVERFLOW_SERIES.into(),
            tags: Arc::new([]),
            kind: MetricKind::Distribution,
        });
        let frozen = OnceLock::new();
        if capacity == 0 {
            let _ = frozen.set(Frozen { series: Vec::new(), index: HashMap::new() });
        }
        MetricRegistry {
            agent,
            capacity,
            inner: Mutex::new(Inner { by_key: HashMap::new(), series: vec![overflow] }),
            frozen,
            budget,
            closed,
        }
    }

    /// Every series by id: the overflow series, then the registered ones. Grows with the
    /// series registered, never with the capacity.
    pub fn series(&self) -> Vec<Arc<SeriesInfo>> {
        lock(&self.inner).series.clone()
    }

    fn overflow(&self, d: Diversion, asked: MetricKind) -> Resolved {
        Resolved { id: OVERFLOW_ID, kind: MetricKind::Distribution, asked, diverted: Some(d) }
    }

    fn found(&self, id: usize, existing: MetricKind, kind: MetricKind) -> Resolved {
        if existing == kind {
            Resolved { id, kind, asked: kind, diverted: None }
        } else {
            self.overflow(Diversion::KindConflict, kind)
        }
    }

    fn register(&self, name: &str, tags: &[(&str, &str)], kind: MetricKind) -> Resolved {
        let mut sorted: Vec<(Box<str>, Box<str>)> =
            tags.iter().map(|(k, v)| (Box::from(*k), Box::from(*v))).collect();
        sorted.sort();
        sorted.dedup();
        let key = (Box::from(name), sorted);
        let mut inner = lock(&self.inner);
        if let Some(&id) = inner.by_key.get(&key) {
            return self.found(id, inner.series[id].kind, kind);
        }
        if inner.by_key.len() >= self.capacity {
            return self.overflow(Diversion::Overflow, kind);
        }
        let id = inner.series.len();
        let info = SeriesInfo {
            name: key.0.clone().into(),
            tags: key.1.iter().map(|(k, v)| (Arc::from(&**k), Arc::from(&**v))).collect(),
            kind,
        };
        inner.series.push(Arc::new(info));
        inner.by_key.insert(key, id);
        if inner.by_key.len() == self.capacity {
            let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
            for (id, s) in inner.series.iter().enumerate().skip(1) {
                let tags: Vec<(&str, &str)> = s.tags.iter().map(|(k, v)| (&**k, &**v)).collect();
                index.entry(identity_hash(&s.name, &tags)).or_default().push(id);
            }
            let _ = self.frozen.set(Frozen { series: inner.series.clone(), index });
        }
        Resolved { id, kind, asked: kind, diverted: None }
    }

    /// The frozen index's answer: no lock, no allocation.
    fn lookup_frozen(&self, f: &Frozen, name: &str, tags: &[(&str, &str)], kind: MetricKind) -> Resolved {
        let candidates = f.index.get(&identity_hash(name, tags)).map(Vec::as_slice).unwrap_or(&[]);
        for &id in candidates {
            let s = &f.series[id];
            // Set equality (tags were deduplicated at registration).
            let same_tags = tags.iter().all(|(k, v)| s.tags.iter().any(|t| &*t.0 == *k && &*t.1 == *v))
                && s.tags.iter().all(|t| tags.iter().any(|(k, v)| &*t.0 == *k && &*t.1 == *v));
            if &*s.name == name && same_tags {
                return self.found(id, s.kind, kind);
            }
        }
        self.overflow(Diversion::Overflow, kind)
    }

    /// Resolves a series: through the calling thread's cache, then (once the registry is
    /// full) the frozen index, and only otherwise under the registry's lock.
    pub fn resolve(&self, name: &str, tags: &[(&str, &str)], kind: MetricKind) -> Resolved {
        let hash = {
            let mut h = DefaultHasher::new();
            (self.agent, name, tags, kind).hash(&mut h);
            h.finish()
        };
        let cached = SERIES_CACHE
            .try_with(|c| {
                let c = c.try_borrow().ok()?;
                c.entries
                    .get(&hash)?
                    .iter()
                    .find(|e| e.matches(self.agent, name, tags, kind))
                    .map(|e| e.resolved)
            })
            .ok()
            .flatten();
        if let Some(r) = cached {
            return r;
        }
        if let Some(f) = self.frozen.get() {
            // Not cached: the index answers without allocating, and caching every name a
            // runaway caller invents would grow the cache without bound.
            return self.lookup_frozen(f, name, tags, kind);
        }
        let resolved = self.register(name, tags, kind);
        if !matches!(resolved.diverted, Some(Diversion::Overflow)) {
            let _ = SERIES_CACHE.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.insert(
                        self.capacity,
                        hash,
                        CachedSeries {
                            agent: self.agent,
                            closed: self.closed.clone(),
                            name: name.into(),
                            tags: tags.iter().map(|(k, v)| (Box::from(*k), Box::from(*v))).collect(),
                            kind,
                            resolved,
                        },
                    );
                }
            });
        }
        resolved
    }

    /// The cells of series `id` on `shard`, created on first use within the budget. `None`
    /// while the budget has no room for them (asked again at the next call: a refusal can be
    /// transient, other threads' reservations racing this one).
    #[inline]
    pub fn cells<'a>(&self, shard: &'a Shard, id: usize, kind: MetricKind) -> Option<MetricCells<'a>> {
        let slot = shard.metrics.get(id)?;
        let series = match slot.get() {
            Some(c) => c,
            None => self.create_cells(slot, kind)?,
        };
        (series.cells.len() == kind.cells())
            .then_some(MetricCells { cells: Cells { c: &series.cells, shared: shard.shared } })
    }

    #[cold]
    #[inline(never)]
    fn create_cells<'a>(
        &self,
        slot: &'a crate::sync::OnceCell<SeriesCells>,
        kind: MetricKind,
    ) -> Option<&'a SeriesCells> {
        let bytes = kind.cells() * 16; // the cells and the flusher's mirror of them
        if self.budget.looks_full() || !self.budget.try_reserve(bytes) {
            return None;
        }
        let cells = crate::sync::zeroed_cells(kind.cells());
        if kind == MetricKind::Distribution {
            // A series' block is paid for whole: its sketch regions with it.
            cells[NUM_REGIONS].store(ALL_REGIONS, Ordering::Relaxed);
        }
        // On a shared shard another thread may have won: give the reservation back.
        if slot.set(SeriesCells { cells }).is_err() {
            self.budget.release(bytes);
        }
        slot.get()
    }

    /// Returns the bytes of `shard`'s metric cells to the budget (the shard is being freed).
    pub fn release_cells(&self, shard: &Shard) {
        for slot in shard.metrics.iter() {
            if let Some(c) = slot.get()
                && !c.cells.is_empty()
            {
                self.budget.release(c.cells.len() * 16);
            }
        }
    }
}

impl Diversion {
    /// The shard header cell that counts this diversion.
    pub(crate) fn cell(self) -> usize {
        match self {
            Diversion::Overflow => crate::shard::H_OVERFLOWED,
            Diversion::KindConflict => crate::shard::H_KIND_CONFLICTS,
        }
    }
}

/// A gauge set's stamp: nanoseconds since the process's first gauge set, plus one (0 means
/// never set). The flusher reports, per series, the value with the latest stamp over all
/// shards.
pub(crate) fn gauge_stamp() -> u64 {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1).saturating_add(1)
}

/// The stamp of a gauge's cells on one shard (see [`gauge_stamp`]).
pub(crate) fn gauge_cells(cells: &[crate::sync::AtomicU64]) -> (u64, f64) {
    let line = own_line(cells);
    let stamp = line[GAUGE_STAMP].load(Ordering::Acquire);
    (stamp, f64::from_bits(line[crate::shard::GAUGE_VALUE].load(Ordering::Relaxed)))
}

struct CachedSeries {
    agent: u64,
    closed: Closed,
    name: Box<str>,
    tags: Box<[(Box<str>, Box<str>)]>,
    kind: MetricKind,
    resolved: Resolved,
}

impl CachedSeries {
    fn matches(&self, agent: u64, name: &str, tags: &[(&str, &str)], kind: MetricKind) -> bool {
        self.agent == agent
            && self.kind == kind
            && &*self.name == name
            && self.tags.len() == tags.len()
            && self.tags.iter().zip(tags).all(|(a, b)| &*a.0 == b.0 && &*a.1 == b.1)
    }
}

/// A thread's resolved series, over every agent it recorded into.
#[derive(Default)]
struct SeriesCache {
    entries: HashMap<u64, Vec<CachedSeries>>,
    len: usize,
}

impl SeriesCache {
    fn insert(&mut self, capacity: usize, hash: u64, entry: CachedSeries) {
        // Room for every series of the agent in each of its kinds' resolutions, so that a
        // scorer using all its series never thrashes the cache (and the registry's lock).
        let limit = CACHE_LIMIT.max(capacity.saturating_mul(2));
        if self.len >= limit {
            for list in self.entries.values_mut() {
                list.retain(|e| !e.closed.load(Ordering::Relaxed));
            }
            self.entries.retain(|_, list| !list.is_empty());
            self.len = self.entries.values().map(Vec::len).sum();
            if self.len >= limit {
                self.entries.clear();
                self.len = 0;
            }
        }
        self.entries.entry(hash).or_default().push(entry);
        self.len += 1;
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static SERIES_CACHE: RefCell<SeriesCache> = RefCell::new(SeriesCache::default());
}
#[cfg(loom)]
loom::thread_local! {
    static SERIES_CACHE: RefCell<SeriesCache> = RefCell::new(SeriesCache::default());
}
