//! Generic metrics: `log_metric(name, value, tags)` and the handles behind it.
//!
//! A series is a name plus tags. The first use of a series anywhere registers it under the
//! registry's mutex and fixes its kind; each thread then remembers the series id in a
//! thread-local cache, so later calls take no lock. Past `capacity` series, values go to the
//! `__overflow__` distribution series and are counted.

use crate::shard::{COUNTER_CELLS, NUM_BLOCK};
use crate::sync::{AtomicU64, Mutex, Ordering, lock};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Name of the series that receives values of series past the cardinality limit.
pub const OVERFLOW_SERIES: &str = "__overflow__";

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
            MetricKind::Counter => COUNTER_CELLS,
            MetricKind::Gauge => 0,
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

/// A gauge's shared cell: the value's bits and a version bumped on every set.
#[derive(Default)]
pub(crate) struct GaugeCell {
    pub value: AtomicU64,
    pub version: AtomicU64,
}

/// The series id and kind a lookup resolved to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resolved {
    pub id: usize,
    pub kind: MetricKind,
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
    pub gauges: Box<[GaugeCell]>,
    pub overflowed: AtomicU64,
    pub kind_conflicts: AtomicU64,
}

/// A series' identity: its name and tags sorted by key.
type SeriesKey = (Box<str>, Vec<(Box<str>, Box<str>)>);

#[derive(Default)]
struct Inner {
    by_key: HashMap<SeriesKey, usize>,
    series: Vec<Arc<SeriesInfo>>,
}

impl MetricRegistry {
    /// A registry for `capacity` series plus the overflow series (id `capacity`).
    pub fn new(agent: u64, capacity: usize) -> Self {
        let overflow = Arc::new(SeriesInfo {
            name: OVERFLOW_SERIES.into(),
            tags: Arc::new([]),
            kind: MetricKind::Distribution,
        });
        let mut inner = Inner::default();
        inner.series.resize(capacity + 1, overflow.clone());
        MetricRegistry {
            agent,
            capacity,
            inner: Mutex::new(Inner { by_key: HashMap::new(), series: inner.series }),
            gauges: (0..=capacity).map(|_| GaugeCell::default()).collect(),
            overflowed: AtomicU64::new(0),
            kind_conflicts: AtomicU64::new(0),
        }
    }

    /// The registered series by id (ids `len()..capacity` are unused and hold the overflow
    /// series' info), and how many are registered.
    pub fn series(&self) -> (Vec<Arc<SeriesInfo>>, usize) {
        let inner = lock(&self.inner);
        (inner.series.clone(), inner.by_key.len())
    }

    fn register(&self, name: &str, tags: &[(&str, &str)], kind: MetricKind) -> Resolved {
        let mut sorted: Vec<(Box<str>, Box<str>)> =
            tags.iter().map(|(k, v)| (Box::from(*k), Box::from(*v))).collect();
        sorted.sort();
        let key = (Box::from(name), sorted);
        let mut inner = lock(&self.inner);
        if let Some(&id) = inner.by_key.get(&key) {
            let existing = inner.series[id].kind;
            return if existing == kind {
                Resolved { id, kind, diverted: None }
            } else {
                Resolved {
                    id: self.capacity,
                    kind: MetricKind::Distribution,
                    diverted: Some(Diversion::KindConflict),
                }
            };
        }
        let id = inner.by_key.len();
        if id >= self.capacity {
            return Resolved {
                id: self.capacity,
                kind: MetricKind::Distribution,
                diverted: Some(Diversion::Overflow),
            };
        }
        let info = SeriesInfo {
            name: key.0.clone().into(),
            tags: key.1.iter().map(|(k, v)| (Arc::from(&**k), Arc::from(&**v))).collect(),
            kind,
        };
        inner.series[id] = Arc::new(info);
        inner.by_key.insert(key, id);
        Resolved { id, kind, diverted: None }
    }

    /// Resolves a series, through the calling thread's cache when it can.
    pub fn resolve(&self, name: &str, tags: &[(&str, &str)], kind: MetricKind) -> Resolved {
        let hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (self.agent, name, tags, kind).hash(&mut h);
            h.finish()
        };
        let cached = SERIES_CACHE
            .try_with(|c| {
                let c = c.try_borrow().ok()?;
                c.get(&hash)?.iter().find(|e| e.matches(self.agent, name, tags, kind)).map(|e| e.resolved)
            })
            .ok()
            .flatten();
        if let Some(r) = cached {
            return r;
        }
        let resolved = self.register(name, tags, kind);
        // Overflowed lookups are not cached: the series never gets its own id.
        if resolved.diverted.is_none() {
            let _ = SERIES_CACHE.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.entry(hash).or_default().push(CachedSeries {
                        agent: self.agent,
                        name: name.into(),
                        tags: tags.iter().map(|(k, v)| (Box::from(*k), Box::from(*v))).collect(),
                        kind,
                        resolved,
                    });
                }
            });
        }
        resolved
    }

    /// Sets a gauge (shared cell: the last writer wins).
    pub fn set_gauge(&self, id: usize, value: f64) {
        if let Some(g) = self.gauges.get(id) {
            g.value.store(value.to_bits(), Ordering::Relaxed);
            g.version.fetch_add(1, Ordering::Release);
        }
    }

    /// Counts a diverted value.
    pub fn count_diversion(&self, d: Diversion) {
        let c = match d {
            Diversion::Overflow => &self.overflowed,
            Diversion::KindConflict => &self.kind_conflicts,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

struct CachedSeries {
    agent: u64,
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

std::thread_local! {
    static SERIES_CACHE: RefCell<HashMap<u64, Vec<CachedSeries>>> = RefCell::new(HashMap::new());
}
