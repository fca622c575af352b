//! One batch of input rows through the agent into one set of store rows.
//!
//! A batch holds its rows compactly (numbers and codes, no strings), sorts them by model
//! variant and time, and replays each model variant's rows through a fresh agent on a
//! manual clock set to each row's timestamp. Every interval it touches is closed at its
//! aligned end, so the batch's snapshots cover exactly its rows: the rows of a batch become
//! exactly one [`Rows`], which the caller appends in one WAL record. An interval that spans
//! two batches is stored as two rows of the same series and interval, which every reader
//! merges (counters add, distributions merge exactly).

use super::columns::Fields;
use super::input::Cells;
use super::scan::{OTHER_SEGMENT, Schema};
use anyhow::Context;
use modelwatch::agent::{
    CohortLabels, ConfidenceHistogram, Latency, ManualClock, OTHER_SEGMENT as OTHER, SegmentId, Sink,
    SinkError, Snapshot, Timestamp,
};
use modelwatch::{Agent, Prediction};
use modelwatch_store::Rows;
use modelwatch_store::examples::{Example, ExampleSet, ModelExamples};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One input row, parsed.
struct Row {
    ts_ms: i64,
    model: u32,
    /// Index among the model variant's segments, or [`OTHER_SEGMENT`].
    segment: u32,
    latency_ms: f64,
    confidence: f64,
    label: Option<bool>,
    /// When the label arrived, if not with the prediction.
    label_time_ms: Option<i64>,
    /// Index into [`Batch::errors`].
    error: Option<u32>,
}

/// The rows of one batch, and what became of its records.
#[derive(Default)]
pub(super) struct Batch {
    rows: Vec<Row>,
    /// Each row's feature values (numbers, or category codes), `features` per row.
    values: Vec<f64>,
    errors: Vec<String>,
    error_index: HashMap<String, u32>,
    key: String,
    /// Input records in the batch, readable or not.
    pub(super) records: u64,
    /// Records rejected (unreadable, or a bad field).
    pub(super) rejected: u64,
}

/// A valid record taken out of a full batch to start the next one (see `fill`).
pub(super) struct Carried {
    row: Row,
    values: Vec<f64>,
    error: Option<String>,
}

/// What a batch became.
pub(super) struct Replayed {
    pub(super) rows: Rows,
    pub(super) snapshots: u64,
    pub(super) imported: u64,
    /// The latest timestamp among the batch's rows.
    pub(super) latest_ms: Option<i64>,
}

impl Batch {
    /// Empties the batch, keeping its memory.
    pub(super) fn clear(&mut self) {
        self.rows.clear();
        self.values.clear();
        self.errors.clear();
        self.error_index.clear();
        self.records = 0;
        self.rejected = 0;
    }

    /// Adds a valid record. Fails only when its model variant is not in the schema (the
    /// file changed after the first pass).
    pub(super) fn push(
        &mut self,
        schema: &Schema,
        f: &Fields<'_>,
        cells: &Cells<'_>,
        features: &[usize],
    ) -> bool {
        let Some(model) = schema.model_of(&mut self.key, f) else { return false };
        let error = f.error.map(|e| self.error_code(e));
        self.rows.push(Row {
            ts_ms: f.ts_ms.max(0),
            model,
            segment: schema.segment_of(model, f.segment),
            latency_ms: f.latency_ms,
            confidence: f.confidence,
            label: f.label,
            label_time_ms: f.label_time_ms,
            error,
        });
        self.values.extend(features.iter().enumerate().map(|(i, &col)| schema.value(i, cells.get(col))));
        true
    }

    /// The timestamp of the last row added.
    pub(super) fn last_ts(&self) -> Option<i64> {
        self.rows.last().map(|r| r.ts_ms)
    }

    /// Takes the last row (a valid record, the last one added) out of the batch.
    pub(super) fn take_last(&mut self, width: usize) -> Option<Carried> {
        let row = self.rows.pop()?;
        let values = self.values.split_off(self.values.len() - width);
        let error = row.error.map(|e| self.errors[e as usize].clone());
        self.records -= 1;
        Some(Carried { row, values, error })
    }

    /// Adds a record taken out of the batch before.
    pub(super) fn put(&mut self, c: Carried) {
        let error = c.error.as_deref().map(|e| self.error_code(e));
        self.rows.push(Row { error, ..c.row });
        self.values.extend(c.values);
        self.records += 1;
    }

    fn error_code(&mut self, e: &str) -> u32 {
        match self.error_index.get(e) {
            Some(&i) => i,
            None => {
                self.errors.push(e.to_string());
                self.error_index.insert(e.to_string(), (self.errors.len() - 1) as u32);
                (self.errors.len() - 1) as u32
            }
        }
    }

    /// Replays the batch's rows through the agents, one per model variant.
    pub(super) fn replay(&mut self, schema: &Schema, agents: &mut Agents) -> anyhow::Result<Replayed> {
        let width = schema.features.len();
        let mut order: Vec<u32> = (0..self.rows.len() as u32).collect();
        order.sort_by_key(|&i| (self.rows[i as usize].model, self.rows[i as usize].ts_ms));
        let interval = agents.interval;
        let mut used = Vec::new();
        let mut late = LateLabels::default();
        for group in order.chunk_by(|&a, &b| self.rows[a as usize].model == self.rows[b as usize].model) {
            let model = self.rows[group[0] as usize].model;
            used.push(model);
            let first = Timestamp::from_millis(self.rows[group[0] as usize].ts_ms as u64);
            let a = agents.get(schema, model, first)?;
            let h = a.agent.handle();
            let mut last = first;
            for &i in group {
                let r = &self.rows[i as usize];
                last = Timestamp::from_millis(r.ts_ms as u64);
                a.clock.set(last);
                a.agent.flush_due()?;
                let segment =
                    if r.segment == OTHER_SEGMENT { a.other } else { a.segments[r.segment as usize] };
                if let Some(e) = r.error {
                    h.error(segment, h.error_kind(&self.errors[e as usize]));
                    continue;
                }
                let values = &self.values[i as usize * width..(i as usize + 1) * width];
                h.record(
                    &Prediction::new(segment, Latency::from_millis_f64(r.latency_ms), r.confidence)
                        .features(values),
                );
                match (r.label, r.label_time_ms) {
                    (Some(label), Some(at)) if ConfidenceHistogram::bin_of(r.confidence).is_some() => {
                        late.add(model, r, at, label, interval)
                    }
                    // At prediction time, or a confidence the agent counts as invalid.
                    (Some(label), _) => h.feedback(segment, r.confidence, label),
                    (None, _) => {}
                }
            }
            // Close the last interval at its aligned end: the batch's snapshots hold exactly
            // its rows, and the agent goes on from there.
            a.open_from = last.align_down(interval).saturating_add(interval);
            a.clock.set(a.open_from);
            a.agent.flush_due()?;
        }
        agents.keep(&used)?;
        let mut collected = std::mem::take(&mut *agents.sink.0.lock().unwrap_or_else(|p| p.into_inner()));
        for snapshot in late.snapshots(schema, agents, interval) {
            collected.rows.append(&mut Rows::from_snapshot(&snapshot));
        }
        collected.rows.examples.extend(self.examples(schema));
        Ok(Replayed {
            rows: collected.rows,
            snapshots: collected.snapshots,
            imported: self.rows.len() as u64,
            latest_ms: self.rows.iter().map(|r| r.ts_ms).max(),
        })
    }
}

impl Batch {
    /// The batch's labelled examples: each row with a label and a `label_time` (the time
    /// the label is known by, which "labelled since" reads cut on), with its feature values
    /// (categorical ones by code), by model. A row labelled without a `label_time` feeds
    /// the quality metrics only: when its label became known is not in the input.
    ///
    /// Two things keep a file's labelled rows out of the examples, said once on stderr: a
    /// feature named like a column of the examples layout (`label`, `date`, ...: the rows
    /// are imported, the metrics and labels stored, but no training example could hold
    /// that feature), and, for categorical features, the value is NaN: a file's category
    /// codes are its own (the first seen is 0), so codes from two files would mix
    /// categories in one training set.
    fn examples(&self, schema: &Schema) -> Vec<ModelExamples> {
        static SAID: std::sync::Once = std::sync::Once::new();
        let width = schema.features.len();
        let names: Vec<String> = schema.features.iter().map(|f| f.name.to_string()).collect();
        if let Err(e) = ExampleSet::new(names.clone()).validate() {
            SAID.call_once(|| {
                eprintln!("modelwatch: labelled rows are imported without training examples: {e}");
            });
            return Vec::new();
        }
        let categorical: Vec<bool> = schema.codes.iter().map(Option::is_some).collect();
        let mut by_model: BTreeMap<&str, ExampleSet> = BTreeMap::new();
        for (i, r) in self.rows.iter().enumerate() {
            let (Some(label), Some(label_ms), None) = (r.label, r.label_time_ms, r.error) else { continue };
            let mv = &schema.models[r.model as usize];
            let segment = match mv.segments.get(r.segment as usize) {
                Some(s) if r.segment != OTHER_SEGMENT => s.clone(),
                _ => OTHER.to_string(),
            };
            by_model.entry(mv.model.as_str()).or_insert_with(|| ExampleSet::new(names.clone())).rows.push(
                Example {
                    prediction_id: String::new(),
                    predicted_ms: r.ts_ms,
                    label_ms,
                    segment,
                    features: self.values[i * width..(i + 1) * width]
                        .iter()
                        .zip(&categorical)
                        .map(|(&v, &c)| if c { f64::NAN } else { v })
                        .collect(),
                    confidence: r.confidence,
                    label,
                },
            );
        }
        let nan: Vec<&str> =
            names.iter().zip(&categorical).filter(|(_, c)| **c).map(|(n, _)| n.as_str()).collect();
        if !nan.is_empty() && !by_model.is_empty() {
            static CATEGORICAL: std::sync::Once = std::sync::Once::new();
            CATEGORICAL.call_once(|| {
                eprintln!(
                    "modelwatch: categorical features are NaN in the training examples (category codes are per file): {}",
                    nan.join(", ")
                );
            });
        }
        by_model.into_iter().map(|(model, set)| ModelExamples { model: model.into(), set }).collect()
    }
}

/// Labels that arrived after their prediction (`label_time`): as an agent's
/// `feedback_for` would have them, by model variant and arrival interval, then prediction
/// interval and segment.
#[derive(Default)]
struct LateLabels {
    by_arrival: BTreeMap<(u32, i64), BTreeMap<(i64, u32), CohortLabels>>,
}

impl LateLabels {
    fn add(&mut self, model: u32, r: &Row, at_ms: i64, label: bool, interval: Duration) {
        let step = interval.as_millis().max(1) as i64;
        let (arrival, cohort) = (at_ms - at_ms.rem_euclid(step), r.ts_ms - r.ts_ms.rem_euclid(step));
        let c = self.by_arrival.entry((model, arrival)).or_default().entry((cohort, r.segment)).or_default();
        let Some(bin) = ConfidenceHistogram::bin_of(r.confidence) else { return };
        let bins = if label { &mut c.positive } else { &mut c.negative };
        match bins.binary_search_by_key(&(bin as u16), |b| b.0) {
            Ok(i) => bins[i].1 += 1,
            Err(i) => bins.insert(i, (bin as u16, 1)),
        }
        c.delay.push((at_ms - r.ts_ms) as f64 / 1_000.0);
    }

    /// One snapshot per model variant and arrival interval, holding only these labels.
    fn snapshots(self, schema: &Schema, agents: &Agents, interval: Duration) -> Vec<Snapshot> {
        let step = interval.as_millis().max(1) as i64;
        let ms = |t: i64| Timestamp::from_millis(t.max(0) as u64);
        self.by_arrival
            .into_iter()
            .filter_map(|((model, arrival), cohorts)| {
                let mv = &schema.models[model as usize];
                let identity = agents.agents.get(&model).map(|a| a.agent.handle().model().clone())?;
                let cohorts = cohorts
                    .into_iter()
                    .map(|((cohort, segment), c)| CohortLabels {
                        start: ms(cohort),
                        end: ms(cohort + step),
                        segment: match mv.segments.get(segment as usize) {
                            Some(s) if segment != OTHER_SEGMENT => s.as_str().into(),
                            _ => OTHER.into(),
                        },
                        ..c
                    })
                    .collect();
                Some(Snapshot {
                    seq: 0,
                    start: ms(arrival),
                    end: ms(arrival + step),
                    model: Arc::new(identity),
                    segments: Vec::new(),
                    features: Vec::new(),
                    metrics: Vec::new(),
                    model_state: Default::default(),
                    overflow: Default::default(),
                    cohorts,
                    examples: Vec::new(),
                    example_features: Default::default(),
                })
            })
            .collect()
    }
}

/// Agents kept for more than this many model variants are shut down when their model
/// variant is not in a batch (each holds about a megabyte per segment-feature block).
const KEPT_AGENTS: usize = 8;

/// The agents that replay the batches, one per model variant, on manual clocks. An agent
/// goes on from batch to batch while its rows come in time order; a row earlier than the
/// interval it has open gets a fresh agent (unsorted input).
pub(super) struct Agents {
    interval: Duration,
    sink: Collector,
    agents: HashMap<u32, Replayer>,
}

struct Replayer {
    agent: Agent,
    clock: Arc<ManualClock>,
    segments: Vec<SegmentId>,
    other: SegmentId,
    /// The start of the interval the agent has open.
    open_from: Timestamp,
}

impl Agents {
    pub(super) fn new(interval: Duration) -> Agents {
        Agents { interval, sink: Collector::default(), agents: HashMap::new() }
    }

    /// The agent of model variant `model`, able to record at `first`.
    fn get(&mut self, schema: &Schema, model: u32, first: Timestamp) -> anyhow::Result<&mut Replayer> {
        if self.agents.get(&model).is_some_and(|a| a.open_from > first)
            && let Some(old) = self.agents.remove(&model)
        {
            old.agent.shutdown()?;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.agents.entry(model) {
            let mv = &schema.models[model as usize];
            let clock = Arc::new(ManualClock::new(first));
            let agent = Agent::builder(&mv.model)
                .version(&mv.version)
                .variant(&mv.variant)
                .instance("import")
                .segments(&mv.segments)
                .features(schema.features.clone())
                .interval(self.interval)
                .clock(clock.clone())
                .background_flush(false)
                .build(self.sink.clone())
                .with_context(|| format!("model {} {} {}", mv.model, mv.version, mv.variant))?;
            let h = agent.handle();
            let segments = mv.segments.iter().map(|s| h.segment(s)).collect();
            let other = h.segment(OTHER);
            e.insert(Replayer { agent, clock, segments, other, open_from: first.align_down(self.interval) });
        }
        self.agents.get_mut(&model).context("an agent was just built")
    }

    /// Shuts down the agents of model variants not `used`, when there are many.
    fn keep(&mut self, used: &[u32]) -> anyhow::Result<()> {
        if self.agents.len() > KEPT_AGENTS {
            let unused: Vec<u32> = self.agents.keys().copied().filter(|m| !used.contains(m)).collect();
            for m in unused {
                if let Some(a) = self.agents.remove(&m) {
                    a.agent.shutdown()?;
                }
            }
        }
        Ok(())
    }

    /// Shuts every agent down (their intervals are closed: nothing is left to flush).
    pub(super) fn finish(self) -> anyhow::Result<()> {
        for (_, a) in self.agents {
            a.agent.shutdown()?;
        }
        Ok(())
    }
}

/// The agents' sink: turns each snapshot into store rows at once, for one append later.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Collected>>);

#[derive(Default)]
struct Collected {
    rows: Rows,
    snapshots: u64,
}

impl Sink for Collector {
    fn write(&self, snapshot: &Arc<Snapshot>) -> Result<(), SinkError> {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.rows.append(&mut Rows::from_snapshot(snapshot));
        c.snapshots += 1;
        Ok(())
    }
}
