//! The agent: its builder, the cloneable [`Handle`] scorers record through, and the flusher
//! thread that turns shards into snapshots.

use crate::clock::{Clock, SystemClock, Timestamp, duration_nanos};
use crate::flusher::{Mirror, collect};
use crate::metrics::{MetricKind, MetricRegistry, Resolved};
use crate::registry::{Lease, ShardRegistry};
use crate::schema::{ErrorKindId, Feature, ModelIdentity, OTHER, OTHER_SEGMENT, SegmentId, resolve};
use crate::shard::{LatencyNanos, Layout, Shard};
use crate::sink::{Sink, SinkError};
use crate::snapshot::{ModelState, OverflowCounts, Snapshot};
use crate::sync::{self, AtomicU64, Ordering};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Snapshots a failing sink may hold back before the oldest are dropped (and counted).
const RETRY_QUEUE: usize = 1024;

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
    clock: Arc<dyn Clock>,
    background: bool,
}

impl AgentBuilder {
    fn new(model: &str) -> Self {
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
            clock: Arc::new(SystemClock),
            background: true,
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
    /// series, counted (default 1,000).
    pub fn max_series(mut self, n: usize) -> Self {
        self.max_series = n;
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
        let layout = Layout::new(segment_names.len(), error_kinds.len(), &self.features);
        let id = NEXT_AGENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.clock.now();
        let start = now.align_down(self.interval);
        let core = Arc::new(Core {
            shards: ShardRegistry::new(id, layout.len, self.max_series + 1),
            metrics: MetricRegistry::new(id, self.max_series),
            layout,
            segment_names,
            error_kinds,
            features: self.features,
            model: Arc::new(self.model),
            epoch: AtomicU64::new(0),
            interval: self.interval,
            clock: self.clock,
            loaded: AtomicI64::new(0),
            loaded_at: std::sync::atomic::AtomicU64::new(0),
            flush: sync::Mutex::new(FlushState {
                mirror: Mirror::default(),
                seq: 0,
                start,
                end: start.saturating_add(self.interval),
                pending: VecDeque::new(),
                sink: Box::new(sink),
                dropped_snapshots: 0,
                closed: false,
            }),
        });
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let flusher = if self.background {
            let core = core.clone();
            let thread = std::thread::Builder::new()
                .name(format!("modelwatch-flush-{}", core.model.name))
                .spawn(move || run_flusher(&core, &stopped))
                .map_err(|e| BuildError::Thread(e.to_string()))?;
            Some(thread)
        } else {
            None
        };
        Ok(Agent { handle: Handle { core }, stop, flusher })
    }
}

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

/// State shared by the agent, its handles and its flusher.
pub(crate) struct Core {
    pub layout: Layout,
    pub segment_names: Vec<Arc<str>>,
    pub error_kinds: Vec<Arc<str>>,
    pub features: Vec<Feature>,
    pub model: Arc<ModelIdentity>,
    /// Bumped by every flush; its parity picks the min/max bank (see `shard.rs`).
    pub epoch: AtomicU64,
    pub shards: ShardRegistry,
    pub metrics: MetricRegistry,
    interval: Duration,
    clock: Arc<dyn Clock>,
    loaded: AtomicI64,
    loaded_at: std::sync::atomic::AtomicU64,
    flush: sync::Mutex<FlushState>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shards.closed.store(true, Ordering::Relaxed);
    }
}

struct FlushState {
    mirror: Mirror,
    seq: u64,
    start: Timestamp,
    end: Timestamp,
    pending: VecDeque<Arc<Snapshot>>,
    sink: Box<dyn Sink>,
    dropped_snapshots: u64,
    closed: bool,
}

/// Counters about the agent itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Snapshots produced so far.
    pub snapshots: u64,
    /// Snapshots waiting for a failing sink.
    pub pending: usize,
    /// Snapshots dropped because the sink kept failing past the retry queue.
    pub dropped_snapshots: u64,
    /// Recording threads that have a shard (threads that exited leave theirs for reuse).
    pub shards: usize,
    /// Address space of one shard's cells, bytes (resident memory is what was touched).
    pub shard_bytes: usize,
}

/// The in-process recorder of one model variant. Dropping it flushes the last partial
/// interval and stops the flusher; use [`Agent::handle`] to record.
pub struct Agent {
    handle: Handle,
    stop: crossbeam_channel::Sender<()>,
    flusher: Option<JoinHandle<()>>,
}

impl Agent {
    /// Starts configuring an agent for the model `name`.
    pub fn builder(name: &str) -> AgentBuilder {
        AgentBuilder::new(name)
    }

    /// A cheap, cloneable handle for recording from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Flushes every interval whose end the clock has passed. The background flusher calls
    /// this; a backfill driving a manual clock calls it before recording a value whose
    /// timestamp is past the current interval.
    pub fn flush_due(&self) -> Result<(), SinkError> {
        self.handle.core.flush_due()
    }

    /// Flushes what was recorded so far as a partial interval ending now.
    pub fn flush_now(&self) -> Result<(), SinkError> {
        self.handle.core.flush_partial()
    }

    /// Counters about the agent itself.
    pub fn stats(&self) -> AgentStats {
        let f = sync::lock(&self.handle.core.flush);
        AgentStats {
            snapshots: f.seq,
            pending: f.pending.len(),
            dropped_snapshots: f.dropped_snapshots,
            shards: self.handle.core.shards.shards().len(),
            shard_bytes: self.handle.core.layout.len * 8,
        }
    }

    /// Stops the flusher, flushes the last partial interval and closes the sink. Values
    /// recorded through handles after this are not delivered.
    pub fn shutdown(mut self) -> Result<(), SinkError> {
        self.stop_and_flush()
    }

    fn stop_and_flush(&mut self) -> Result<(), SinkError> {
        let _ = self.stop.try_send(());
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
        let core = &self.handle.core;
        let result = core.flush_partial();
        let mut f = sync::lock(&core.flush);
        if f.closed {
            return result;
        }
        f.closed = true;
        let closed = f.sink.close();
        result.and(closed)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_flush() {
            tracing::error!(error = %e, "final flush failed at agent drop");
        }
    }
}

fn run_flusher(core: &Core, stop: &crossbeam_channel::Receiver<()>) {
    loop {
        let wait = if core.clock.is_real_time() {
            let end = sync::lock(&core.flush).end;
            end.saturating_duration_since(core.clock.now()).max(Duration::from_millis(1))
        } else {
            // A simulated clock can jump at any time: look often.
            Duration::from_millis(5)
        };
        match stop.recv_timeout(wait) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Err(e) = core.flush_due() {
                    tracing::warn!(error = %e, "sink failed; snapshot kept for retry");
                }
            }
            _ => return,
        }
    }
}

impl Core {
    fn flush_due(&self) -> Result<(), SinkError> {
        let mut f = sync::lock(&self.flush);
        let now = self.clock.now();
        if now < f.end || f.closed {
            return Ok(());
        }
        let end = f.end;
        self.emit(&mut f, end);
        f.start = now.align_down(self.interval);
        f.end = f.start.saturating_add(self.interval);
        self.deliver(&mut f)
    }

    fn flush_partial(&self) -> Result<(), SinkError> {
        let mut f = sync::lock(&self.flush);
        if f.closed {
            return Ok(());
        }
        let now = self.clock.now();
        let end = now.clamp(f.start, f.end);
        self.emit(&mut f, end);
        f.start = end;
        if f.start >= f.end {
            f.start = now.align_down(self.interval);
            f.end = f.start.saturating_add(self.interval);
        }
        self.deliver(&mut f)
    }

    /// Collects the interval `[f.start, end)` and queues its snapshot if it holds anything.
    fn emit(&self, f: &mut FlushState, end: Timestamp) {
        let parts = collect(self, &mut f.mirror);
        let loaded_at = self.loaded_at.load(std::sync::atomic::Ordering::Acquire);
        let snapshot = Snapshot {
            seq: f.seq,
            start: f.start,
            end,
            model: self.model.clone(),
            segments: parts.segments,
            features: parts.features,
            metrics: parts.metrics,
            model_state: ModelState {
                loaded: self.loaded.load(std::sync::atomic::Ordering::Relaxed),
                loaded_at: (loaded_at != 0).then_some(Timestamp::from_nanos(loaded_at)),
            },
            overflow: OverflowCounts {
                metric_series: self.metrics.overflowed.swap(0, Ordering::Relaxed),
                kind_conflicts: self.metrics.kind_conflicts.swap(0, Ordering::Relaxed),
                dropped: self.shards.dropped.swap(0, Ordering::Relaxed),
            },
        };
        if snapshot.is_empty() {
            return;
        }
        f.seq += 1;
        if f.pending.len() == RETRY_QUEUE {
            f.pending.pop_front();
            f.dropped_snapshots += 1;
            tracing::error!("sink failing for {RETRY_QUEUE} snapshots; dropping the oldest");
        }
        f.pending.push_back(Arc::new(snapshot));
    }

    /// Offers queued snapshots to the sink in order; stops at the first failure.
    fn deliver(&self, f: &mut FlushState) -> Result<(), SinkError> {
        while let Some(s) = f.pending.front() {
            f.sink.write(s)?;
            f.pending.pop_front();
        }
        Ok(())
    }

    #[inline]
    fn record(&self, shard: &Shard, p: &Prediction<'_>) {
        let seg = self.segment_base(p.segment);
        let epoch = self.epoch.load(Ordering::Acquire);
        shard.record_prediction(
            &self.layout,
            epoch,
            seg,
            p.latency.0,
            p.confidence,
            p.predicted,
            p.features,
            p.categories,
        );
    }

    #[inline]
    fn record_latency(&self, shard: &Shard, segment: SegmentKey<'_>, latency: Latency) {
        shard.record_latency(&self.layout, self.segment_base(segment), latency.0);
    }

    #[inline]
    fn feedback(&self, shard: &Shard, segment: SegmentKey<'_>, confidence: f64, label: bool) {
        shard.record_feedback(&self.layout, self.segment_base(segment), confidence, label);
    }

    #[inline]
    fn error(&self, shard: &Shard, segment: SegmentKey<'_>, kind: ErrorKindId) {
        let kind = (kind.0 as usize).min(self.error_kinds.len() - 1);
        shard.record_error(self.segment_base(segment), kind);
    }

    #[inline]
    fn segment_base(&self, segment: SegmentKey<'_>) -> usize {
        let s = match segment {
            SegmentKey::Id(SegmentId(i)) => (i as usize).min(self.segment_names.len() - 1),
            SegmentKey::Name(n) => resolve(&self.segment_names, n),
        };
        self.layout.segment(s)
    }
}

/// A segment given by pre-resolved id or by name.
#[derive(Clone, Copy, Debug)]
pub enum SegmentKey<'a> {
    /// Resolved once with [`Handle::segment`].
    Id(SegmentId),
    /// Looked up per call (a short linear scan over the declared segments).
    Name(&'a str),
}

impl From<SegmentId> for SegmentKey<'_> {
    fn from(id: SegmentId) -> Self {
        SegmentKey::Id(id)
    }
}

impl<'a> From<&'a str> for SegmentKey<'a> {
    fn from(n: &'a str) -> Self {
        SegmentKey::Name(n)
    }
}

/// How long a prediction took.
#[derive(Clone, Copy, Debug)]
pub struct Latency(LatencyNanos);

impl Latency {
    /// From seconds as a float: NaN, infinite or negative values are counted as invalid.
    pub fn from_secs_f64(s: f64) -> Self {
        if s.is_finite() && s >= 0.0 {
            Latency(LatencyNanos::Valid((s * 1e9).min(u64::MAX as f64) as u64))
        } else {
            Latency(LatencyNanos::Invalid)
        }
    }

    /// From milliseconds as a float (as prediction logs often have them).
    pub fn from_millis_f64(ms: f64) -> Self {
        Self::from_secs_f64(ms / 1e3)
    }
}

impl From<Duration> for Latency {
    fn from(d: Duration) -> Self {
        Latency(LatencyNanos::Valid(duration_nanos(d)))
    }
}

impl From<Timer> for Latency {
    fn from(t: Timer) -> Self {
        t.elapsed().into()
    }
}

/// Started before scoring; turns into the prediction's latency.
#[derive(Clone, Copy, Debug)]
pub struct Timer(Instant);

impl Timer {
    /// Starts timing now.
    pub fn start() -> Self {
        Timer(Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// One prediction, as the scorer hands it to [`Handle::record`].
#[derive(Clone, Copy, Debug)]
pub struct Prediction<'a> {
    segment: SegmentKey<'a>,
    latency: Latency,
    confidence: f64,
    features: &'a [f64],
    categories: &'a [Option<&'a str>],
    predicted: Option<bool>,
}

impl<'a> Prediction<'a> {
    /// A prediction in `segment` that took `latency` and gave `confidence` in [0, 1].
    pub fn new(segment: impl Into<SegmentKey<'a>>, latency: impl Into<Latency>, confidence: f64) -> Self {
        Prediction {
            segment: segment.into(),
            latency: latency.into(),
            confidence,
            features: &[],
            categories: &[],
            predicted: None,
        }
    }

    /// The feature vector in schema order: NaN for missing; categorical features by code.
    pub fn features(mut self, values: &'a [f64]) -> Self {
        self.features = values;
        self
    }

    /// Categorical features by string, in the order the categorical features appear in the
    /// schema; `None` falls back to the code in the feature vector.
    pub fn categories(mut self, values: &'a [Option<&'a str>]) -> Self {
        self.categories = values;
        self
    }

    /// The label the model predicted.
    pub fn predicted(mut self, positive: bool) -> Self {
        self.predicted = Some(positive);
        self
    }
}

/// A cheap, cloneable recorder. Each thread writes its own shard, so handles can be shared
/// freely; every method is wait-free once the thread has recorded once, and never fails:
/// odd values are counted (see [`crate::InvalidCounts`]).
#[derive(Clone)]
pub struct Handle {
    core: Arc<Core>,
}

impl Handle {
    /// Resolves a segment name once, for the fastest calls. Unknown names map to `other`.
    pub fn segment(&self, name: &str) -> SegmentId {
        SegmentId(resolve(&self.core.segment_names, name) as u16)
    }

    /// Resolves an error kind once.
    pub fn error_kind(&self, name: &str) -> ErrorKindId {
        ErrorKindId(resolve(&self.core.error_kinds, name) as u16)
    }

    /// The model this handle records for.
    pub fn model(&self) -> &ModelIdentity {
        &self.core.model
    }

    /// Records one prediction.
    #[inline]
    pub fn record(&self, p: &Prediction<'_>) {
        let core = &*self.core;
        core.shards.with_shard(|shard| core.record(shard, p));
    }

    /// Records only a latency (no confidence or features); counts as no prediction.
    #[inline]
    pub fn record_latency<'s>(&self, segment: impl Into<SegmentKey<'s>>, latency: impl Into<Latency>) {
        let (core, segment, latency) = (&*self.core, segment.into(), latency.into());
        core.shards.with_shard(|shard| core.record_latency(shard, segment, latency));
    }

    /// Records feedback: the confidence the model gave and the true label (a labelled
    /// training example).
    #[inline]
    pub fn feedback<'s>(&self, segment: impl Into<SegmentKey<'s>>, confidence: f64, label: bool) {
        let (core, segment) = (&*self.core, segment.into());
        core.shards.with_shard(|shard| core.feedback(shard, segment, confidence, label));
    }

    /// Records a failed scoring call.
    #[inline]
    pub fn error<'s>(&self, segment: impl Into<SegmentKey<'s>>, kind: ErrorKindId) {
        let (core, segment) = (&*self.core, segment.into());
        core.shards.with_shard(|shard| core.error(shard, segment, kind));
    }

    /// A recorder bound to the calling thread's shard, for a scorer's innermost loop: the
    /// same hooks without the thread-local lookup. It cannot leave the thread (`!Send`).
    pub fn local(&self) -> LocalRecorder {
        LocalRecorder { lease: self.core.shards.local_lease(), core: self.core.clone() }
    }

    /// Records that the model was loaded (for the loaded-models and model-age gauges).
    pub fn model_loaded(&self) {
        self.core.loaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.core.clock.now().as_nanos().max(1);
        self.core.loaded_at.store(now, std::sync::atomic::Ordering::Release);
    }

    /// Records that the model was unloaded.
    pub fn model_unloaded(&self) {
        self.core.loaded.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records one observation of a generic metric (a distribution): the seed's
    /// `MonitoringConnector.log_metric(name, value, tags)`.
    pub fn log_metric(&self, name: &str, value: f64, tags: &[(&str, &str)]) {
        let r = self.core.metrics.resolve(name, tags, MetricKind::Distribution);
        record_metric(&self.core, r, value);
    }

    /// A handle to a counter series: increments without any lookup.
    pub fn counter(&self, name: &str, tags: &[(&str, &str)]) -> MetricHandle {
        self.metric(name, tags, MetricKind::Counter)
    }

    /// A handle to a gauge series.
    pub fn gauge(&self, name: &str, tags: &[(&str, &str)]) -> MetricHandle {
        self.metric(name, tags, MetricKind::Gauge)
    }

    /// A handle to a distribution series.
    pub fn distribution(&self, name: &str, tags: &[(&str, &str)]) -> MetricHandle {
        self.metric(name, tags, MetricKind::Distribution)
    }

    fn metric(&self, name: &str, tags: &[(&str, &str)], kind: MetricKind) -> MetricHandle {
        MetricHandle { core: self.core.clone(), resolved: self.core.metrics.resolve(name, tags, kind) }
    }
}

/// Records a generic metric value; shared by `log_metric` and metric handles so that
/// neither clones the agent's `Arc` (a write to a shared line) per call.
#[inline]
fn record_metric(core: &Core, r: Resolved, value: f64) {
    if let Some(d) = r.diverted {
        core.metrics.count_diversion(d);
    }
    if r.kind == MetricKind::Gauge {
        core.metrics.set_gauge(r.id, value);
        return;
    }
    let epoch = core.epoch.load(Ordering::Acquire);
    core.shards.with_shard(|shard| {
        if let Some(cells) = shard.metric_cells(r.id, r.kind.cells()) {
            match r.kind {
                MetricKind::Counter => cells.increment(value),
                _ => cells.observe(epoch, value),
            }
        }
    });
}

/// A [`Handle`] bound to one thread's shard (see [`Handle::local`]).
pub struct LocalRecorder {
    core: Arc<Core>,
    lease: Rc<Lease>,
}

impl LocalRecorder {
    /// Records one prediction.
    #[inline]
    pub fn record(&self, p: &Prediction<'_>) {
        self.core.record(&self.lease.shard, p);
    }

    /// Records only a latency.
    #[inline]
    pub fn record_latency<'s>(&self, segment: impl Into<SegmentKey<'s>>, latency: impl Into<Latency>) {
        self.core.record_latency(&self.lease.shard, segment.into(), latency.into());
    }

    /// Records feedback.
    #[inline]
    pub fn feedback<'s>(&self, segment: impl Into<SegmentKey<'s>>, confidence: f64, label: bool) {
        self.core.feedback(&self.lease.shard, segment.into(), confidence, label);
    }

    /// Records a failed scoring call.
    #[inline]
    pub fn error<'s>(&self, segment: impl Into<SegmentKey<'s>>, kind: ErrorKindId) {
        self.core.error(&self.lease.shard, segment.into(), kind);
    }
}

/// A generic metric series resolved once. `record` increments a counter, sets a gauge or
/// observes a distribution value, by the series' kind.
#[derive(Clone)]
pub struct MetricHandle {
    core: Arc<Core>,
    resolved: Resolved,
}

impl MetricHandle {
    /// Records `value` by the series' kind.
    #[inline]
    pub fn record(&self, value: f64) {
        record_metric(&self.core, self.resolved, value);
    }

    /// The series' kind (the kind it was first registered with).
    pub fn kind(&self) -> MetricKind {
        self.resolved.kind
    }
}
