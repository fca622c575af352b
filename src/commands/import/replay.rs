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
    Latency, ManualClock, OTHER_SEGMENT as OTHER, SegmentId, Sink, SinkError, Snapshot, Timestamp,
};
use modelwatch::{Agent, Prediction};
use modelwatch_store::Rows;
use std::collections::HashMap;
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
        let error = f.error.map(|e| match self.error_index.get(e) {
            Some(&i) => i,
            None => {
                self.errors.push(e.to_string());
                self.error_index.insert(e.to_string(), (self.errors.len() - 1) as u32);
                (self.errors.len() - 1) as u32
            }
        });
        self.rows.push(Row {
            ts_ms: f.ts_ms.max(0),
            model,
            segment: schema.segment_of(model, f.segment),
            latency_ms: f.latency_ms,
            confidence: f.confidence,
            label: f.label,
            error,
        });
        self.values.extend(features.iter().enumerate().map(|(i, &col)| schema.value(i, cells.get(col))));
        true
    }

    /// Replays the batch's rows through one agent per model variant.
    pub(super) fn replay(&mut self, schema: &Schema, interval: Duration) -> anyhow::Result<Replayed> {
        let width = schema.features.len();
        let mut order: Vec<u32> = (0..self.rows.len() as u32).collect();
        order.sort_by_key(|&i| (self.rows[i as usize].model, self.rows[i as usize].ts_ms));
        let sink = Collector::default();
        for group in order.chunk_by(|&a, &b| self.rows[a as usize].model == self.rows[b as usize].model) {
            let mv = &schema.models[self.rows[group[0] as usize].model as usize];
            let first = Timestamp::from_millis(self.rows[group[0] as usize].ts_ms as u64);
            let clock = Arc::new(ManualClock::new(first));
            let agent = Agent::builder(&mv.model)
                .version(&mv.version)
                .variant(&mv.variant)
                .instance("import")
                .segments(&mv.segments)
                .features(schema.features.clone())
                .interval(interval)
                .clock(clock.clone())
                .background_flush(false)
                .build(sink.clone())
                .with_context(|| format!("model {} {} {}", mv.model, mv.version, mv.variant))?;
            let h = agent.handle();
            let segments: Vec<SegmentId> = mv.segments.iter().map(|s| h.segment(s)).collect();
            let other = h.segment(OTHER);
            let mut last = first;
            for &i in group {
                let r = &self.rows[i as usize];
                last = Timestamp::from_millis(r.ts_ms as u64);
                clock.set(last);
                agent.flush_due()?;
                let segment = if r.segment == OTHER_SEGMENT { other } else { segments[r.segment as usize] };
                if let Some(e) = r.error {
                    h.error(segment, h.error_kind(&self.errors[e as usize]));
                    continue;
                }
                let values = &self.values[i as usize * width..(i as usize + 1) * width];
                h.record(
                    &Prediction::new(segment, Latency::from_millis_f64(r.latency_ms), r.confidence)
                        .features(values),
                );
                if let Some(label) = r.label {
                    h.feedback(segment, r.confidence, label);
                }
            }
            // Close the last interval at its aligned end: the next batch starts its own.
            clock.set(last.align_down(interval).saturating_add(interval));
            agent.flush_due()?;
            agent
                .shutdown()
                .with_context(|| format!("model {} {} {}: final flush", mv.model, mv.version, mv.variant))?;
        }
        let collected = std::mem::take(&mut *sink.0.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Replayed {
            rows: collected.rows,
            snapshots: collected.snapshots,
            imported: self.rows.len() as u64,
            latest_ms: self.rows.iter().map(|r| r.ts_ms).max(),
        })
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
