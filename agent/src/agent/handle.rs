//! The record calls: [`Handle`], [`LocalRecorder`] and [`MetricHandle`], and what each call
//! does once it has the calling thread's shard. A call's whole path on the scorer's thread is
//! this file, `registry.rs` (the thread's shard, found through a thread-local) and `shard.rs`
//! (the cells it writes); the concurrency protocol is stated once, at the top of `shard.rs`.

use super::Core;
use super::prediction::{Latency, Prediction, SegmentKey};
use crate::clock::Timestamp;
use crate::confidence::confidence_bin;
use crate::examples::LabelledPrediction;
use crate::metrics::{MetricKind, Resolved, gauge_stamp};
use crate::registry::Lease;
use crate::schema::{ErrorKindId, ModelIdentity, SegmentId, resolve};
use crate::shard::{H_METRIC_DROPPED, H_METRIC_INVALID, MetricCells, Shard};
use std::rc::Rc;
use std::sync::Arc;

/// A cheap, cloneable recorder. Each thread writes its own shard, so handles can be shared
/// freely; every method is wait-free once the thread has recorded once, and never fails:
/// odd values are counted (see [`crate::InvalidCounts`]).
#[derive(Clone)]
pub struct Handle {
    pub(super) core: Arc<Core>,
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

    /// Records the true label of a prediction made at `predicted_at` (its time, from the same
    /// clock as the agent's), with the confidence the model gave it. Quality is reported over
    /// the predictions made in a window, so a label is counted with its prediction's
    /// interval, however late it arrives (up to [`crate::AgentBuilder::max_label_delay`]); see
    /// "Labels" in the crate docs. Lock-free and allocation-free like the other calls; a full
    /// label queue is counted, never waited for.
    #[inline]
    pub fn feedback_for<'s>(
        &self,
        predicted_at: Timestamp,
        segment: impl Into<SegmentKey<'s>>,
        confidence: f64,
        label: bool,
    ) {
        self.core.feedback_for(predicted_at, segment.into(), confidence, label);
    }

    /// Keeps a labelled example for training: the prediction's feature vector (the declared
    /// features in schema order), segment, confidence, time and ID, with its label and the
    /// label's arrival (by default the agent's clock now). The next snapshot carries it to
    /// the sink, which for a store appends it to the model's examples. Never blocks or
    /// allocates for the values (see `examples.rs`): a full queue is counted in
    /// [`crate::OverflowCounts`] `examples_dropped`, a vector of another width than the
    /// declared features in `examples_wrong_width`. Returns whether the example was kept.
    pub fn example(&self, e: &LabelledPrediction<'_>) -> bool {
        let core = &*self.core;
        let segment = core.segment_index(e.segment) as u16;
        core.examples.push(e, segment, core.clock.now())
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

// What a record call does once it has the calling thread's shard.
impl Core {
    #[inline]
    fn record(&self, shard: &Shard, p: &Prediction<'_>) {
        let seg = self.segment_base(p.segment);
        let record = |epoch| {
            shard.record_prediction(
                &self.layout,
                epoch,
                seg,
                p.latency.0,
                p.confidence,
                p.predicted,
                p.features,
                p.categories,
            )
        };
        if self.layout.has_numeric {
            let epoch = shard.enter(&self.epoch);
            record(epoch);
            shard.leave(epoch);
        } else {
            record(0);
        }
    }

    #[inline]
    fn record_latency(&self, shard: &Shard, segment: SegmentKey<'_>, latency: Latency) {
        shard.record_latency(&self.layout, self.segment_base(segment), latency.0);
    }

    #[inline]
    fn feedback(&self, shard: &Shard, segment: SegmentKey<'_>, confidence: f64, label: bool) {
        shard.record_feedback(&self.layout, self.segment_base(segment), confidence, label);
    }

    fn feedback_for(&self, predicted_at: Timestamp, segment: SegmentKey<'_>, confidence: f64, label: bool) {
        match confidence_bin(confidence) {
            Some(bin) => {
                let seg = self.segment_index(segment);
                self.labels.push(self.clock.now(), predicted_at, seg as u16, bin as u16, label);
            }
            // Counted with the segment's other invalid feedback.
            None => self.shards.with_shard(|shard| self.feedback(shard, segment, confidence, label)),
        }
    }

    #[inline]
    fn error(&self, shard: &Shard, segment: SegmentKey<'_>, kind: ErrorKindId) {
        let kind = (kind.0 as usize).min(self.error_kinds.len() - 1);
        shard.record_error(self.segment_base(segment), kind);
    }

    #[inline]
    fn segment_base(&self, segment: SegmentKey<'_>) -> usize {
        self.layout.segment(self.segment_index(segment))
    }

    #[inline]
    fn segment_index(&self, segment: SegmentKey<'_>) -> usize {
        match segment {
            SegmentKey::Id(SegmentId(i)) => (i as usize).min(self.segment_names.len() - 1),
            SegmentKey::Name(n) => resolve(&self.segment_names, n),
        }
    }
}

/// Records a generic metric value; shared by `log_metric` and metric handles so that
/// neither clones the agent's `Arc` (a write to a shared line) per call.
#[inline]
fn record_metric(core: &Core, r: Resolved, value: f64) {
    core.shards.with_shard(|shard| {
        if let Some(d) = r.diverted {
            shard.count(d.cell());
        }
        // By the kind the caller asked for: a counter diverted to the overflow distribution
        // still refuses NaN.
        if r.asked != MetricKind::Distribution && !value.is_finite() {
            shard.count(H_METRIC_INVALID);
            return;
        }
        match core.metrics.cells(shard, r.id, r.kind) {
            Some(cells) => apply_metric(core, shard, &cells, r.kind, value),
            None => {
                match core.shards.shared().and_then(|s| Some((s, core.metrics.cells(s, r.id, r.kind)?))) {
                    Some((shared, cells)) => apply_metric(core, shared, &cells, r.kind, value),
                    None => shard.count(H_METRIC_DROPPED),
                }
            }
        }
    });
}

#[inline]
fn apply_metric(core: &Core, shard: &Shard, cells: &MetricCells<'_>, kind: MetricKind, value: f64) {
    match kind {
        MetricKind::Gauge => cells.set(value, gauge_stamp()),
        MetricKind::Counter => {
            let epoch = shard.enter(&core.epoch);
            cells.increment(epoch, value);
            shard.leave(epoch);
        }
        MetricKind::Distribution => {
            let epoch = shard.enter(&core.epoch);
            cells.observe(epoch, value, &core.metrics.budget);
            shard.leave(epoch);
        }
    }
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

    /// Records the label of a prediction made at `predicted_at` ([`Handle::feedback_for`]).
    #[inline]
    pub fn feedback_for<'s>(
        &self,
        predicted_at: Timestamp,
        segment: impl Into<SegmentKey<'s>>,
        confidence: f64,
        label: bool,
    ) {
        self.core.feedback_for(predicted_at, segment.into(), confidence, label);
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
