//! Configuring and starting an agent: [`AgentBuilder`], its defaults, and the checks that
//! refuse a bad configuration with a [`BuildError`] before any shard or thread exists.

use super::flush::{FlushState, run_flusher};
use super::{Agent, Core, Handle};
use crate::clock::Clock;
use crate::examples::ExampleQueue;
use crate::labels::{CohortTally, LabelQueue};
use crate::metrics::MetricRegistry;
use crate::registry::{Budget, ShardRegistry};
use crate::schema::{Feature, ModelIdentity, OTHER, OTHER_SEGMENT};
use crate::shard::{Layout, REGION_BYTES, SCALAR_ALLOC, ShardSize};
use crate::sink::Sink;
use crate::sync::{self, AtomicU64};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

/// The default of [`AgentBuilder::memory_budget`].
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;

/// How late a label may arrive after its prediction by default ([`AgentBuilder::max_label_delay`]):
/// 30 days.
pub const DEFAULT_MAX_LABEL_DELAY: Duration = Duration::from_secs(30 * 86_400);

/// Labels for past predictions held between two flushes by default
/// ([`AgentBuilder::max_pending_labels`]).
pub const DEFAULT_MAX_PENDING_LABELS: usize = 65_536;
/// Labelled examples held between two flushes by default
/// ([`AgentBuilder::max_pending_examples`]): about 250 KiB of records for an agent without
/// features, allocated at build whether or not examples are kept, so it stays small.
pub const DEFAULT_MAX_PENDING_EXAMPLES: usize = 1_024;
/// The most generic metric series an agent keeps apart ([`AgentBuilder::max_series`]).
const MAX_SERIES: usize = 1_000_000;

static NEXT_AGENT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A configuration the builder refused, with what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// Two features share a name.
    #[error("feature {0:?} is declared twice; feature names must be unique")]
    DuplicateFeature(String),
    /// Two segments, or two error kinds, share a name.
    #[error("{what} {name:?} is declared twice; names must be unique")]
    Duplicate {
        /// Segment or error kind.
        what: &'static str,
        /// The repeated name.
        name: String,
    },
    /// The interval is zero.
    #[error("flush interval must be positive")]
    ZeroInterval,
    /// More segments or error kinds than fit the 16-bit ids.
    #[error("{what}: {count} declared, at most 65,000 are supported")]
    TooMany {
        /// Segments or error kinds.
        what: &'static str,
        /// How many were declared.
        count: usize,
    },
    /// One shard of this schema does not fit the memory budget's share for shards.
    #[error(
        "one recording shard of this schema takes {shard_bytes} bytes of memory and {shard_address} \
         of address space (with its flusher mirror), more than the memory budget of {budget} \
         bytes allows (half of it, {available} bytes, for shards; twice it for their address \
         space): raise AgentBuilder::memory_budget, or declare fewer segments or features, or a \
         smaller max_series (each shard holds a slot per series)"
    )]
    Budget {
        /// Bytes of memory one shard and its mirror take before any value arrives.
        shard_bytes: usize,
        /// Address space one shard and its mirror take.
        shard_address: usize,
        /// Bytes the budget gives shards.
        available: usize,
        /// The whole budget.
        budget: usize,
    },
    /// The flusher thread could not be started.
    #[error("could not start the flusher thread: {0}")]
    Thread(String),
}

/// Builds an [`Agent`]. Every option has a default except the sink.
pub struct AgentBuilder {
    model: ModelIdentity,
    features: Vec<Feature>,
    segments: Vec<String>,
    error_kinds: Vec<String>,
    interval: Duration,
    max_series: usize,
    memory_budget: usize,
    clock: Arc<dyn Clock>,
    background: bool,
    max_pending_bytes: Option<usize>,
    max_label_delay: Duration,
    max_pending_labels: usize,
    max_pending_examples: usize,
}

impl AgentBuilder {
    pub(super) fn new(model: &str) -> Self {
        AgentBuilder {
            model: ModelIdentity {
                name: model.into(),
                version: "unversioned".into(),
                variant: "control".into(),
                instance: "local".into(),
            },
            features: Vec::new(),
            segments: Vec::new(),
            error_kinds: vec!["timeout".into(), "invalid_input".into(), "internal".into()],
            interval: Duration::from_secs(10),
            max_series: 1000,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            clock: system_clock(),
            background: true,
            max_pending_bytes: None,
            max_label_delay: DEFAULT_MAX_LABEL_DELAY,
            max_pending_labels: DEFAULT_MAX_PENDING_LABELS,
            max_pending_examples: DEFAULT_MAX_PENDING_EXAMPLES,
        }
    }

    /// Model version (default `unversioned`).
    pub fn version(mut self, v: &str) -> Self {
        self.model.version = v.into();
        self
    }

    /// Deployment variant (default `control`).
    pub fn variant(mut self, v: &str) -> Self {
        self.model.variant = v.into();
        self
    }

    /// The instance tag that keeps replicas apart in a shared store (default `local`).
    pub fn instance(mut self, v: &str) -> Self {
        self.model.instance = v.into();
        self
    }

    /// The feature vector's schema, in vector order.
    pub fn features(mut self, features: impl IntoIterator<Item = Feature>) -> Self {
        self.features = features.into_iter().collect();
        self
    }

    /// Segment names (PII categories, tenants, ...). Predictions for other names go to
    /// the `other` segment, which is always present.
    pub fn segments<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.segments = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// Error kinds (default `timeout`, `invalid_input`, `internal`); others count as `other`.
    pub fn error_kinds<S: AsRef<str>>(mut self, kinds: impl IntoIterator<Item = S>) -> Self {
        self.error_kinds = kinds.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// Flush interval (default 10 s). Intervals are aligned to multiples of it since the
    /// Unix epoch.
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Most generic metric series (name + tags) kept apart; later ones go to the overflow
    /// series, counted (default 1,000; at most 1,000,000).
    pub fn max_series(mut self, n: usize) -> Self {
        self.max_series = n;
        self
    }

    /// The most memory the agent allocates for recording, in bytes (default 64 MiB, see
    /// "Memory" in the crate docs): half for recording shards and their flusher mirrors,
    /// a quarter for generic metric cells, a quarter for snapshots a failing sink holds back.
    /// Past its shards' share, further threads write one shared shard; past the metrics'
    /// share, values go to the shared shard's cells, then are dropped and counted.
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// The clock (default the system clock). A [`crate::ManualClock`] lets a backfill or a
    /// test record with its own timestamps.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Whether a background thread flushes at every interval boundary (default true). Turn
    /// it off to flush only through [`Agent::flush_due`] and [`Agent::flush_now`].
    pub fn background_flush(mut self, on: bool) -> Self {
        self.background = on;
        self
    }

    /// Most memory that snapshots waiting for a failing sink may take, bytes as
    /// [`crate::Snapshot::approx_bytes`] estimates them (default a quarter of the memory
    /// budget, 16 MiB; a value set here replaces that quarter). While the sink
    /// fails, waiting snapshots are merged, losing time resolution but no count; past this
    /// bound the oldest are dropped and counted in [`crate::OverflowCounts`]
    /// `snapshots_dropped`. The newest snapshot is always kept.
    pub fn max_pending_bytes(mut self, bytes: usize) -> Self {
        self.max_pending_bytes = Some(bytes);
        self
    }

    /// The longest a label may arrive after its prediction ([`crate::Handle::feedback_for`];
    /// default 30 days). A later label is counted in [`crate::OverflowCounts`]
    /// `labels_too_late`, not recorded: its cohort's quality has long been reported.
    pub fn max_label_delay(mut self, d: Duration) -> Self {
        self.max_label_delay = d;
        self
    }

    /// Labels for earlier predictions ([`crate::Handle::feedback_for`]) the agent holds
    /// between two snapshots (default 65,536): the queue from the callers to the flusher
    /// holds this many (about 32 bytes each, allocated at start), and the flusher's list
    /// as many again (24 bytes each, kept from one interval to the next): 3.6 MB at the
    /// default, outside the memory budget. The background flusher drains the queue whenever
    /// it is half full; with `background_flush(false)` only a flush drains it. A label
    /// finding both full is counted in [`crate::OverflowCounts`] `labels_dropped`. Each
    /// snapshot then holds a few hundred bytes per (prediction interval, segment) with
    /// labels. A backfill of millions of labels belongs in `modelwatch import`.
    pub fn max_pending_labels(mut self, n: usize) -> Self {
        self.max_pending_labels = n;
        self
    }

    /// Labelled examples ([`crate::Handle::example`]) held between two flushes (default
    /// [`DEFAULT_MAX_PENDING_EXAMPLES`]): a pool of that many records, each allocated at
    /// build with room for the declared features (about 250 bytes plus 8 per feature each),
    /// so a call never allocates for its values. An example that finds the pool empty is counted in
    /// [`crate::OverflowCounts`] `examples_dropped`. A backfill belongs in `modelwatch
    /// import`.
    pub fn max_pending_examples(mut self, n: usize) -> Self {
        self.max_pending_examples = n;
        self
    }

    /// Starts the agent, delivering snapshots to `sink`.
    pub fn build(self, sink: impl Sink) -> Result<Agent, BuildError> {
        if self.interval.is_zero() {
            return Err(BuildError::ZeroInterval);
        }
        for (i, f) in self.features.iter().enumerate() {
            if self.features[..i].iter().any(|g| g.name == f.name) {
                return Err(BuildError::DuplicateFeature(f.name.to_string()));
            }
        }
        let segment_names = with_other(&self.segments, OTHER_SEGMENT, "segment")?;
        let error_kinds = with_other(&self.error_kinds, OTHER, "error kind")?;
        if self.max_series > MAX_SERIES {
            return Err(BuildError::TooMany { what: "generic metric series", count: self.max_series });
        }
        let layout = Layout::new(segment_names.len(), error_kinds.len(), &self.features);
        let id = NEXT_AGENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.clock.now();
        let start = now.align_down(self.interval);
        let size = ShardSize {
            cells: layout.len,
            sketch_cells: layout.sketch_cells(),
            metric_series: self.max_series + 1,
        };
        // Address space of shards: twice the budget, so that with the metric and backlog
        // shares the agent's address space stays within four times its budget.
        let address = Budget::new(self.memory_budget.saturating_mul(2), size.address());
        let memory = Budget::new(self.memory_budget / 2, REGION_BYTES);
        let shards = ShardRegistry::new(id, size, memory, address).ok_or(BuildError::Budget {
            shard_bytes: size.bytes(),
            shard_address: size.address(),
            available: self.memory_budget / 2,
            budget: self.memory_budget,
        })?;
        let metrics = MetricRegistry::new(
            id,
            self.max_series,
            Budget::new(self.memory_budget / 4, SCALAR_ALLOC * 16),
            shards.closed.clone(),
        );
        let core = Arc::new(Core {
            shards,
            metrics,
            labels: LabelQueue::new(self.max_pending_labels, self.max_label_delay),
            examples: ExampleQueue::new(self.max_pending_examples, self.features.len()),
            layout,
            segment_names,
            error_kinds,
            features: self.features,
            model: Arc::new(self.model),
            epoch: AtomicU64::new(0),
            interval: self.interval,
            memory_budget: self.memory_budget,
            clock: self.clock,
            loaded: AtomicI64::new(0),
            loaded_at: std::sync::atomic::AtomicU64::new(0),
            flush: sync::Mutex::new(FlushState::new(
                start,
                self.interval,
                Box::new(sink),
                self.max_pending_bytes.unwrap_or(self.memory_budget / 4),
                CohortTally::new(self.interval, self.max_pending_labels.max(1)),
            )),
        });
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let flusher = if self.background {
            let core = core.clone();
            let thread = std::thread::Builder::new()
                // A thread name may not hold NUL; the model name may.
                .name(format!("modelwatch-flush-{}", core.model.name.replace('\0', "")))
                .spawn(move || run_flusher(&core, &stopped))
                .map_err(|e| BuildError::Thread(e.to_string()))?;
            Some(thread)
        } else {
            None
        };
        Ok(Agent { handle: Handle { core }, stop, flusher })
    }
}

/// The declared names with `other` last (dropped where it was declared), checked for
/// repeats and for the 16-bit id range.
fn with_other(names: &[String], other: &str, what: &'static str) -> Result<Vec<Arc<str>>, BuildError> {
    let mut out: Vec<Arc<str>> = Vec::with_capacity(names.len() + 1);
    for n in names {
        if out.iter().any(|o| **o == **n) {
            return Err(BuildError::Duplicate { what, name: n.clone() });
        }
        if n != other {
            out.push(n.as_str().into());
        }
    }
    out.push(other.into());
    if out.len() > 65_000 {
        return Err(BuildError::TooMany { what, count: out.len() });
    }
    Ok(out)
}

/// The clock of an agent whose scorer does not choose one: the wall clock (tests, backfills
/// and simulations set a `ManualClock` with [`AgentBuilder::clock`]).
#[allow(clippy::disallowed_types)]
fn system_clock() -> Arc<dyn Clock> {
    Arc::new(crate::clock::SystemClock)
}
