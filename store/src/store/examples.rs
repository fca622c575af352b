//! Labelled examples in the store: appended through the WAL like the tables' rows, published
//! as one wide Parquet file per model and day, read back merged across writer slots and the
//! acknowledged rows not published yet (see `crate::examples` for why they are a sibling
//! dataset rather than a fourth table).

use super::read::replaced_path;
use super::{Shared, Store, StoreError};
use crate::examples::{Example, ExampleFile, ExampleSet, ModelExamples, check_model_name};
use crate::rows::Rows;

impl Store {
    /// Appends labelled examples of `model` durably, acknowledged like [`Store::append`]
    /// (in the WAL and synced per the durability policy), and returns their sequence
    /// number. A bad model or feature name, or an example whose width is not the set's, is
    /// refused before anything is written. An empty set writes nothing and returns the last
    /// sequence number.
    pub fn append_examples(&self, model: &str, set: ExampleSet) -> Result<u64, StoreError> {
        check_model_name(model)?;
        set.validate()?;
        if set.is_empty() {
            return Ok(self.shared.lock().seq);
        }
        self.append(Rows { examples: vec![ModelExamples { model: model.into(), set }], ..Rows::default() })
    }

    /// The examples of `model` predicted in `[from_ms, to_ms)`, from every writer slot's
    /// files and acknowledged appends not published yet, ordered by prediction time, then
    /// prediction ID. Examples stored under different feature lists come back under their
    /// union, a value an example lacks being NaN. An unknown model has no examples.
    pub fn examples(&self, model: &str, from_ms: i64, to_ms: i64) -> Result<ExampleSet, StoreError> {
        check_model_name(model)?;
        self.shared.read_examples(model, &|f| f.min_ms < to_ms && f.max_ms >= from_ms, &|e| {
            e.predicted_ms >= from_ms && e.predicted_ms < to_ms
        })
    }

    /// "Everything since the last training": the examples of `model` whose label arrived
    /// after `after_ms` (the instant the last training read its data), whatever their
    /// prediction time, in the order of [`Store::examples`]. A label that arrives late for
    /// an old prediction is in the next training's data; an example is in exactly one of
    /// two reads cut at the same instant, `examples_labelled_after(t)` and the examples
    /// labelled at or before `t`.
    pub fn examples_labelled_after(&self, model: &str, after_ms: i64) -> Result<ExampleSet, StoreError> {
        check_model_name(model)?;
        self.shared.read_examples(model, &|f| f.max_label_ms > after_ms, &|e| e.label_ms > after_ms)
    }
}

impl Shared {
    fn read_examples(
        &self,
        model: &str,
        file: &dyn Fn(&ExampleFile) -> bool,
        keep: &dyn Fn(&Example) -> bool,
    ) -> Result<ExampleSet, StoreError> {
        match self.read_examples_once(model, file, keep) {
            // As for the tables' reads: a peer may have replaced a file since we read it.
            Err(StoreError::MissingFile { .. }) => {
                self.refresh()?;
                self.read_examples_once(model, file, keep)
            }
            r => r,
        }
    }

    fn read_examples_once(
        &self,
        model: &str,
        file: &dyn Fn(&ExampleFile) -> bool,
        keep: &dyn Fn(&Example) -> bool,
    ) -> Result<ExampleSet, StoreError> {
        // The file list and the unpublished examples are taken together under the lock, so
        // every acknowledged example is in exactly one of them.
        let (files, mut pending) = {
            let inner = self.lock();
            let manifests = std::iter::once(&inner.manifest).chain(inner.peers.iter().map(|p| &p.manifest));
            let files: Vec<ExampleFile> = manifests
                .flat_map(|m| &m.examples)
                .filter(|f| f.model == model && file(f))
                .cloned()
                .collect();
            let mut pending = Vec::new();
            let peers = inner.peers.iter().map(|p| &*p.buffer);
            for rows in inner.in_flight.iter().map(|r| &**r).chain([&inner.buffer]).chain(peers) {
                for m in rows.examples.iter().filter(|m| &*m.model == model) {
                    let mut set = ExampleSet::new(m.set.features.clone());
                    set.rows.extend(m.set.rows.iter().filter(|e| keep(e)).cloned());
                    pending.push(set);
                }
            }
            (files, pending)
        };
        let mut out = ExampleSet::default();
        for f in &files {
            let bytes = match self.objects.get(&f.path)? {
                Some(b) => b,
                None => self
                    .objects
                    .get(&replaced_path(&f.path))?
                    .ok_or_else(|| StoreError::MissingFile { path: self.objects.location(&f.path) })?,
            };
            let location = self.objects.location(&f.path).display().to_string();
            let mut set = ExampleSet::from_parquet(bytes, &location)?;
            set.rows.retain(|e| keep(e));
            out.absorb(set);
        }
        for set in pending.drain(..) {
            out.absorb(set);
        }
        out.sort();
        Ok(out)
    }
}
